"""Tests of the rehearsal suite itself: real ``pytest acceptance/ -m rehearsal`` sessions (pytester
subprocesses) on datasets damaged or built to fail, checking the bundle they leave."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import gymnasium  # noqa: F401
import h5py  # noqa: F401
import pytest

from harness.bundle import DatasetFiles, comparable, verify_bundle
from harness.bundle.session import load_session
from harness.datasets.checksums import build_sheet
from harness.datasets.curation import add_capture
from harness.datasets.manifest import new_manifest
from harness.datasets.recording import record_capture

from .conftest import REPO, Dataset, copy_dataset

# gymnasium and h5py are imported above, before any test: pytester restores sys.modules after
# each test, so a test that imported them first (random_dataset records a capture) would leave
# the next one a second gymnasium, whose classes fail isinstance checks against the first's
# spaces, and h5py, whose extension cannot be imported twice in one process.
SUITE = REPO / "acceptance"
STEPS = ["dataset_integrity", "bc_trainer", "anneal_smoke", "rollback_drill", "artefact_capture"]


def rehearse(pytester: pytest.Pytester, bundle: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        str(SUITE), "-m", "rehearsal", f"--bundle={bundle}", "-p", "no:cacheprovider", *args
    )


def summary(bundle: Path, name: str) -> dict[str, Any]:
    return json.loads(DatasetFiles(bundle, name).summary.read_text("utf-8"))


def outcomes(doc: dict[str, Any]) -> dict[str, str]:
    return {s["step"]: s["outcome"] for s in doc["steps"]}


def corrupted_copy(root: Path, name: str = "idle_v1") -> Path:
    """A copy of a committed dataset with one byte of an accepted capture flipped; returns its
    manifest."""
    ds = copy_dataset(Dataset(REPO / "data" / "bc_datasets", name), root)
    capture = ds.capture(ds.manifest().accepted()[0].id)
    data = bytearray(capture.read_bytes())
    data[len(data) // 2] ^= 0xFF
    capture.write_bytes(bytes(data))
    return ds.manifest_path


def assert_links_resolve(bundle: Path) -> None:
    """Every Markdown link and image of every report in the bundle names a file inside it."""
    reports = sorted(bundle.glob("acceptance_report*.md"))
    assert reports
    for report in reports:
        for target in re.findall(r"\]\(([^)]+)\)", report.read_text("utf-8")):
            path = (bundle / target).resolve()
            assert path.is_file() and path.is_relative_to(bundle.resolve()), (report.name, target)


def junit_cases(bundle: Path, name: str) -> dict[str, ET.Element]:
    """The test cases of ``junit_<name>.xml``, by step."""
    root = ET.parse(DatasetFiles(bundle, name).junit).getroot()
    cases = {}
    for case in root.iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        cases[props["step"]] = case
    return cases


def random_dataset(root: Path) -> Path:
    """A dataset of a random demonstrator: intact, but BC cannot reach the 0.8 gate on it."""
    ds = Dataset(root, "coin_flips")
    manifest = new_manifest(ds.manifest_path, ds.name, "CartPole-v1", ds.captures)
    for seed in (1, 2):
        path = ds.captures / f"random_{seed}.h5"
        record_capture(path, "CartPole-v1", "random", noise=0.0, episodes=6, seed=seed)
        entry = add_capture(manifest, path)
        manifest.with_status(entry.id, "accepted", "recorded to fail the BC gate")
    manifest.save()
    build_sheet(manifest, ds.sheet_path).save()
    return ds.manifest_path


def test_a_corrupted_capture_aborts_the_later_steps_and_leaves_a_complete_bundle(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    manifest = corrupted_copy(tmp_path / "data")
    bundle = tmp_path / "bundle"
    files = DatasetFiles(bundle, "idle_v1")
    # Leftovers of an earlier run of the same dataset, and another dataset's file.
    files.runs.mkdir(parents=True)
    (files.runs / "stale.txt").write_text("from an earlier run")
    files.ppo_log.write_text("{}\n")
    (bundle / "config_other.yaml").write_text("seed: 1\n")

    result = rehearse(pytester, bundle, f"--dataset={manifest}")

    assert result.ret == 1
    result.assert_outcomes(failed=1, skipped=4)
    result.stdout.fnmatch_lines(["*aborted: dataset integrity failed*"])
    doc = summary(bundle, "idle_v1")
    assert not doc["passed"]
    assert outcomes(doc) == {"dataset_integrity": "failed"} | {s: "aborted" for s in STEPS[1:]}
    integrity = doc["steps"][0]
    assert "digest" in integrity["message"] and "cap_001" in integrity["message"]
    assert "harness dataset verify" in integrity["remedial_action"]
    for step in doc["steps"][1:]:
        assert step["message"] == "aborted: dataset integrity failed"
        assert "Dataset integrity" in step["remedial_action"]
    assert doc["metrics"]["dataset_integrity"]["problems"]
    # Complete although it failed: the report, the JSON report, the overlays and the copies.
    for path in (files.report, files.pytest_report, files.config, files.rollback_config):
        assert path.is_file(), path
    assert files.manifest.read_bytes() == manifest.read_bytes()
    assert {m["path"] for m in doc["missing"]} >= {"ppo_idle_v1.jsonl"}
    report = files.report.read_text("utf-8")
    assert "FAILED" in report and integrity["remedial_action"] in report
    pytest_report = json.loads(files.pytest_report.read_text("utf-8"))
    assert pytest_report["exitcode"] == 1 and len(pytest_report["tests"]) == 5
    # The rerun replaced this dataset's files only, and the bundle checks out.
    assert not (files.runs / "stale.txt").exists() and not files.ppo_log.exists()
    assert (bundle / "config_other.yaml").is_file()
    # Every artefact matches the summary; only the stray file belongs to no summary.
    assert [(p.kind, p.path) for p in verify_bundle(bundle).problems] == [
        ("unexpected", "config_other.yaml")
    ]
    # The report starts with the verdict, then what to do; the session's verdict is the same.
    head = report.split("## Key numbers")[0]
    assert head.startswith("# idle_v1: FAILED\n\n**FAILED**: Dataset integrity failed")
    assert "## What to do" in head and integrity["remedial_action"] in head
    session = load_session(bundle)
    assert session is not None and session["passed"] is False
    assert [(e["dataset"], e["passed"]) for e in session["datasets"]] == [("idle_v1", False)]
    assert_links_resolve(bundle)
    cases = junit_cases(bundle, "idle_v1")
    assert list(cases) == STEPS
    assert cases["dataset_integrity"].find("failure") is not None
    assert all(cases[s].find("skipped") is not None for s in STEPS[1:])


def test_a_failed_bc_gate_is_reported_and_two_workers_agree_with_one(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    coin_flips = random_dataset(tmp_path / "data")
    corrupted = corrupted_copy(tmp_path / "corrupted")
    datasets = f"--dataset={coin_flips},{corrupted}"

    serial = rehearse(pytester, tmp_path / "serial", datasets)

    assert serial.ret == 1
    doc = summary(tmp_path / "serial", "coin_flips")
    assert outcomes(doc) == {
        "dataset_integrity": "passed",
        "bc_trainer": "failed",
        "anneal_smoke": "failed",
        "rollback_drill": "aborted",
        "artefact_capture": "failed",
    }
    bc, smoke, drill = doc["steps"][1:4]
    assert "below the threshold 0.8" in bc["message"]
    # Random actions, which no policy can learn and more of which cannot fix.
    assert bc["cause"] == "random_demonstrator"
    assert "Do not lower bc.accuracy_threshold" in bc["remedial_action"]
    assert "record more demonstrations" not in bc["remedial_action"]
    assert doc["metrics"]["bc_trainer"]["accuracy"] < 0.8
    assert doc["metrics"]["anneal_smoke"]["exit_code"] == 3
    assert drill["message"] == "aborted: BC trainer verification failed"
    assert drill["remedial_action"].startswith("Fix BC trainer verification first")
    # The drill's process started early and waited for step 2's store; step 2 failed, so it
    # was stopped before it trained, and nothing of it stays in the bundle.
    assert not DatasetFiles(tmp_path / "serial", "coin_flips").run("rollback_drill").exists()
    assert smoke["cause"] == "smoke_bc_gate"
    assert "BC trainer verification's remedial action" in smoke["remedial_action"]
    assert outcomes(summary(tmp_path / "serial", "idle_v1"))["dataset_integrity"] == "failed"

    parallel = rehearse(pytester, tmp_path / "parallel", datasets, "-n", "2")

    assert parallel.ret == 1
    assert parallel.parseoutcomes() == serial.parseoutcomes()
    for name in ("coin_flips", "idle_v1"):
        assert summary(tmp_path / "parallel", name)["pytest"]["workers"] == 2
        assert comparable(tmp_path / "parallel", name) == comparable(tmp_path / "serial", name)
    for bundle in (tmp_path / "serial", tmp_path / "parallel"):
        session = load_session(bundle)
        assert session is not None and session["passed"] is False and session["stale"] == []
        assert [e["dataset"] for e in session["datasets"]] == ["coin_flips", "idle_v1"]
        assert_links_resolve(bundle)
        cases = junit_cases(bundle, "coin_flips")
        assert len(cases) == 5 and cases["bc_trainer"].find("failure") is not None
        props = {p.get("name"): p.get("value") for p in cases["bc_trainer"].iter("property")}
        assert float(props["metric.accuracy"]) < 0.8 and props["cause"] == "random_demonstrator"
        assert verify_bundle(bundle).ok, verify_bundle(bundle).problems
    # The figures of training are the same bytes, serial or on two workers.
    serial_figures = DatasetFiles(tmp_path / "serial", "coin_flips").figures
    drawn = sorted(p.name for p in serial_figures.glob("*.svg"))
    assert drawn == ["bc_per_action.svg", "bc_training.svg", "wall_clock.svg"]
    for name in drawn[:2]:
        other = DatasetFiles(tmp_path / "parallel", "coin_flips").figure(name.removesuffix(".svg"))
        assert other.read_bytes() == (serial_figures / name).read_bytes(), name


def test_datasets_of_an_earlier_session_are_stale_until_cleared(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    lander = corrupted_copy(tmp_path / "lander", "lander_v1")
    idle = corrupted_copy(tmp_path / "idle")
    base = f"--base-config={REPO / 'configs/examples/lander.yaml'}"  # the copy's is relative
    assert rehearse(pytester, bundle, f"--dataset={lander}", base).ret == 1

    assert rehearse(pytester, bundle, f"--dataset={idle}").ret == 1

    session = load_session(bundle)
    assert session is not None
    assert [e["dataset"] for e in session["datasets"]] == ["idle_v1"]
    assert [e["dataset"] for e in session["stale"]] == ["lander_v1"]
    text = (bundle / "acceptance_report.md").read_text("utf-8")
    assert text.index("| idle_v1 |") < text.index("## Stale datasets") < text.index("| lander_v1 |")
    assert verify_bundle(bundle).ok, verify_bundle(bundle).problems

    result = rehearse(pytester, bundle, f"--dataset={idle}", "--fresh")

    assert result.ret == 1
    session = load_session(bundle)
    assert session is not None and session["stale"] == []
    assert not DatasetFiles(bundle, "lander_v1").summary.exists()
    assert not DatasetFiles(bundle, "lander_v1").runs.exists()
    assert verify_bundle(bundle).ok, verify_bundle(bundle).problems


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("nope", "--dataset=nope: unknown dataset 'nope'"),
        ("idle_v1,preflight,idle_v1", "dataset 'idle_v1' is named twice"),
        ("missing/manifest.json", "--dataset=missing/manifest.json: no such manifest file"),
    ],
)
def test_a_bad_dataset_is_a_usage_error_before_anything_runs(
    pytester: pytest.Pytester, tmp_path: Path, value: str, error: str
) -> None:
    result = rehearse(pytester, tmp_path / "bundle", f"--dataset={value}")
    assert_usage_error(result, tmp_path / "bundle", "--dataset=", error)


def assert_usage_error(result: pytest.RunResult, bundle: Path, option: str, error: str) -> None:
    """Exit 4, one line naming the option, nothing written."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.errlines if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: {option}"), result.errlines
    assert error in lines[0]
    assert not bundle.exists()


@pytest.mark.parametrize(
    ("option", "error"),
    [
        ("--base-config=missing.yaml", "--base-config=missing.yaml: no such file"),
        ("--drill-threshold=1.5", "--drill-threshold=1.5: expected a number in (0, 1]"),
    ],
)
def test_a_bad_base_config_or_drill_threshold_is_a_usage_error(
    pytester: pytest.Pytester, tmp_path: Path, option: str, error: str
) -> None:
    result = rehearse(pytester, tmp_path / "bundle", option)
    assert_usage_error(result, tmp_path / "bundle", option.split("=")[0], error)


def test_a_manifest_naming_a_missing_base_config_is_a_usage_error(
    pytester: pytest.Pytester, tmp_path: Path, small_dataset: Dataset
) -> None:
    manifest = small_dataset.manifest()
    manifest.base_config = "../configs/gone.yaml"
    manifest.save()
    result = rehearse(pytester, tmp_path / "bundle", f"--dataset={small_dataset.manifest_path}")
    assert_usage_error(
        result,
        tmp_path / "bundle",
        f"--dataset={small_dataset.manifest_path}: {small_dataset.manifest_path}: base_config",
        f"names {small_dataset.root / 'configs' / 'gone.yaml'}, which is not a file",
    )
