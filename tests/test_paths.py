"""Capture paths that could leave the captures folder are refused before anything is read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.datasets.manifest import load_manifest
from harness.datasets.paths import lexical_problem, resolve_inside
from harness.errors import UnsafePathError

from .conftest import Dataset, assert_one_line_error, run_cli


def _set_path(ds: Dataset, entry: str, path: str) -> None:
    doc = json.loads(ds.manifest_path.read_text())
    for e in doc["entries"]:
        if e["id"] == entry:
            e["path"] = path
    ds.manifest_path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "bad",
    [
        "/etc/passwd",
        "../../../etc/passwd",
        "sub/../../a.h5",
        "..",
        "C:\\Windows\\a.h5",
        "sub\\a.h5",
        "~/a.h5",
        "",
    ],
)
def test_unsafe_paths_are_refused(tmp_path: Path, bad: str) -> None:
    assert lexical_problem(bad) is not None
    with pytest.raises(UnsafePathError, match="entry 'x'"):
        resolve_inside(tmp_path, bad, source="m.json", entry="x")


@given(st.lists(st.sampled_from(["a", "b.h5", "..", ".", "c"]), min_size=1, max_size=6))
def test_resolved_paths_never_leave_the_root(parts: list[str]) -> None:
    root = Path("/srv/captures")
    rel = "/".join(parts)
    try:
        real = resolve_inside(root, rel, source="m.json", entry="x")
    except UnsafePathError:
        assert ".." in parts or set(parts) == {"."}
    else:
        assert real.is_relative_to(root) and real != root


def test_symlink_leaving_the_folder_is_refused(small_dataset: Dataset, tmp_path: Path) -> None:
    outside = tmp_path / "outside.h5"
    outside.write_bytes(small_dataset.capture("a").read_bytes())
    link = small_dataset.captures / "link.h5"
    link.symlink_to(outside)
    _set_path(small_dataset, "a", "link.h5")
    with pytest.raises(UnsafePathError, match="resolves outside the captures folder"):
        load_manifest(small_dataset.manifest_path)


def test_symlinked_folder_leaving_the_root_is_refused(
    small_dataset: Dataset, tmp_path: Path
) -> None:
    (small_dataset.captures / "sub").symlink_to(tmp_path, target_is_directory=True)
    _set_path(small_dataset, "b", "sub/anything.h5")
    with pytest.raises(UnsafePathError, match="'b'"):
        load_manifest(small_dataset.manifest_path)


def test_symlink_inside_the_folder_is_fine(small_dataset: Dataset) -> None:
    os.rename(small_dataset.captures / "a.h5", small_dataset.captures / "real_a.h5")
    (small_dataset.captures / "a.h5").symlink_to("real_a.h5")
    manifest = load_manifest(small_dataset.manifest_path)
    assert manifest.capture_path(manifest.entry("a")).name == "real_a.h5"


def test_cli_refuses_etc_passwd(small_dataset: Dataset) -> None:
    _set_path(small_dataset, "a", "../../../etc/passwd")
    result = run_cli("dataset", "verify", small_dataset.manifest_path)
    line = assert_one_line_error(
        result, str(small_dataset.manifest_path), "entry 'a'", "../../../etc/passwd", "'..'"
    )
    assert "root:" not in result.stdout + line
    assert result.stdout == ""


def test_refused_even_for_a_rejected_entry(small_dataset: Dataset) -> None:
    _set_path(small_dataset, "noisy", "/etc/passwd")
    result = run_cli("dataset", "inspect", small_dataset.manifest_path)
    assert_one_line_error(result, "entry 'noisy'", "absolute")
