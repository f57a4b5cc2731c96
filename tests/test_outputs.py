"""Outputs never overwrite inputs (issue 12, class 3): every file a command writes at a path
the user names is refused when it is a dataset's manifest, checksum sheet or capture, lies in a
captures folder, or is the base config; through links and ``..`` too. And a manifest whose
``captures_dir`` leaves the dataset's root is refused before anything is read or hashed."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.config import overlay

from .conftest import REPO, Dataset, assert_one_line_error, call_cli

BASE = REPO / "configs" / "examples" / "poc_hybrid.yaml"


def snapshot(ds: Dataset) -> dict[str, bytes]:
    """Every file of the dataset, by path relative to its root."""
    return {
        p.relative_to(ds.root).as_posix(): p.read_bytes()
        for p in sorted(ds.root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


# Each target: a name, and how to get the path from the dataset (some make a link first).
TARGETS: dict[str, Callable[[Dataset, Path], Path]] = {
    "manifest": lambda ds, tmp: ds.manifest_path,
    "sheet": lambda ds, tmp: ds.sheet_path,
    "capture": lambda ds, tmp: ds.capture("a"),
    "rejected capture": lambda ds, tmp: ds.capture("noisy"),
    "new file in the captures folder": lambda ds, tmp: ds.captures / "new.txt",
    "manifest through ..": lambda ds, tmp: ds.captures / ".." / ".." / "manifests" / "small.json",
    "symbolic link to the sheet": lambda ds, tmp: _symlink(tmp / "link.json", ds.sheet_path),
    "hard link to the manifest": lambda ds, tmp: _hardlink(tmp / "hard.json", ds.manifest_path),
}
ROLES = {
    "manifest": "is the manifest of dataset 'small'",
    "sheet": "is the checksum sheet of dataset 'small'",
    "capture": "is capture 'a' of dataset 'small'",
    "rejected capture": "is capture 'noisy' of dataset 'small'",
    "new file in the captures folder": "lies in the captures folder",
    "manifest through ..": "is the manifest of dataset 'small'",
    "symbolic link to the sheet": "is the checksum sheet of dataset 'small'",
    "hard link to the manifest": "is the manifest of dataset 'small'",
}


def _symlink(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def _hardlink(link: Path, target: Path) -> Path:
    os.link(target, link)
    return link


@pytest.fixture
def config(small_dataset: Dataset, tmp_path: Path) -> Path:
    """The base config on the small dataset, outputs under tmp_path/run."""
    out = tmp_path / "configs" / "small.yaml"
    overlay(
        BASE,
        out,
        [
            f"output.log_dir={tmp_path / 'run/logs'}",
            f"output.checkpoint_dir={tmp_path / 'run/ckpt'}",
        ],
        dataset=str(small_dataset.manifest_path),
    )
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_ppo_log_onto_a_dataset_input_is_refused(
    small_dataset: Dataset, config: Path, tmp_path: Path, target: str
) -> None:
    path = TARGETS[target](small_dataset, tmp_path)
    before = snapshot(small_dataset)
    result = call_cli("train", config, "--mode", "mixed", "--ppo-log", path)
    assert_one_line_error(result, "the PPO log", ROLES[target], "nothing written")
    assert snapshot(small_dataset) == before
    assert not (tmp_path / "run").exists()


def test_ppo_log_onto_the_config_and_outputs_in_the_captures_folder_are_refused(
    small_dataset: Dataset, config: Path, tmp_path: Path
) -> None:
    text = config.read_bytes()
    result = call_cli("train", config, "--mode", "ppo", "--ppo-log", config)
    assert_one_line_error(result, "is the run's config")
    assert config.read_bytes() == text
    before = snapshot(small_dataset)
    result = call_cli("train", config, "--mode", "bc", "--log-dir", small_dataset.captures)
    assert_one_line_error(result, "the run log", "lies in the captures folder")
    assert snapshot(small_dataset) == before


@pytest.mark.parametrize("target", TARGETS)
def test_export_onto_a_dataset_input_is_refused(
    small_dataset: Dataset, tmp_path: Path, target: str
) -> None:
    path = TARGETS[target](small_dataset, tmp_path)
    before = snapshot(small_dataset)
    result = call_cli("dataset", "export", small_dataset.manifest_path, "-o", path)
    assert_one_line_error(result, "SHA256SUMS", ROLES[target])
    assert snapshot(small_dataset) == before
    # Its own place in the captures folder is the default, and stays allowed.
    assert call_cli("dataset", "export", small_dataset.manifest_path).returncode == 0
    assert (small_dataset.captures / "SHA256SUMS").is_file()


@pytest.mark.parametrize("target", TARGETS)
def test_overlay_onto_a_dataset_input_is_refused(
    small_dataset: Dataset, config: Path, tmp_path: Path, target: str
) -> None:
    path = TARGETS[target](small_dataset, tmp_path)
    before = snapshot(small_dataset)
    result = call_cli("config", "overlay", config, "-o", path, "--set", "seed=3")
    assert_one_line_error(result, "the overlay", ROLES[target])
    assert snapshot(small_dataset) == before


def test_overlay_onto_the_base_config_through_a_link_is_refused(
    config: Path, tmp_path: Path
) -> None:
    text = config.read_bytes()
    link = _symlink(tmp_path / "base_link.yaml", config)
    assert_one_line_error(
        call_cli("config", "overlay", config, "-o", link, "--set", "seed=3"), "base config"
    )
    assert config.read_bytes() == text


def test_record_onto_a_reviewed_capture_is_refused_but_not_into_the_folder(
    small_dataset: Dataset,
) -> None:
    record = ("capture", "record", "--env", "CartPole-v1", "--episodes", "1", "--seed", "7")
    before = snapshot(small_dataset)
    for target, role in (
        (small_dataset.capture("a"), "is capture 'a' of dataset 'small'"),
        (small_dataset.manifest_path, "is the manifest of dataset 'small'"),
    ):
        assert_one_line_error(call_cli(*record, "-o", target, "--force"), "a new capture", role)
    assert snapshot(small_dataset) == before
    # Recording a new capture into the captures folder is how a dataset grows.
    assert call_cli(*record, "-o", small_dataset.captures / "new.h5").returncode == 0


def test_a_sheet_written_over_the_manifest_is_refused(small_dataset: Dataset) -> None:
    before = snapshot(small_dataset)
    for command in (
        ("dataset", "sheet", small_dataset.manifest_path),
        ("dataset", "review", small_dataset.manifest_path, "noisy", "--pending"),
    ):
        result = call_cli(*command, "--checksums", small_dataset.manifest_path)
        assert_one_line_error(result, "the checksum sheet", "is the manifest of dataset 'small'")
    assert snapshot(small_dataset) == before


@pytest.mark.parametrize(
    ("captures_dir", "capture"),
    [
        ("/", "etc/hostname"),
        ("../../..", "hostname.txt"),
        ("..", "checksums/small.json"),
        (".", "small.json"),
        ("../checksums", "small.json"),
        ("link_out", "hostname.txt"),
    ],
)
def test_a_captures_dir_outside_the_dataset_root_is_refused(
    small_dataset: Dataset, tmp_path: Path, captures_dir: str, capture: str
) -> None:
    (tmp_path / "hostname.txt").write_text("a file outside the dataset\n")
    (small_dataset.root / "manifests" / "link_out").symlink_to(tmp_path)
    doc = json.loads(small_dataset.manifest_path.read_text("utf-8"))
    doc["captures_dir"] = captures_dir
    doc["entries"][0]["path"] = capture
    small_dataset.manifest_path.write_text(json.dumps(doc))
    before = snapshot(small_dataset)
    for command in ("sheet", "verify", "list"):
        result = call_cli("dataset", command, small_dataset.manifest_path)
        assert_one_line_error(result, "captures_dir", "dataset's root", "refused")
    assert snapshot(small_dataset) == before
