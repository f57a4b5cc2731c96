"""The acceptance bundle: layout, merging run logs (``acceptance.bundle_writer``), and
``harness bundle verify|compare``.

Bundles are synthetic, built in tmp_path with the real layout functions (no training, no torch).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from acceptance.bundle_writer import (
    artefact_entries,
    clear_dataset,
    merge_run,
    write_tag_manifest,
)
from harness.atomic import write_json_atomic
from harness.bundle import RUN_LOG, DatasetFiles, compare_bundles, run_log, verify_bundle
from harness.errors import HarnessError
from harness.formatting import display
from harness.training.runlog import read_log
from harness.validation import check

from .conftest import assert_one_line_error, call_cli, run_cli

DATASETS = ("idle_v1", "preflight")
STEPS = ("dataset_integrity", "bc_trainer", "anneal_smoke", "rollback_drill", "artefact_capture")
UTC = "2025-01-02T03:04:05Z"


def bc_record(dataset: str, run: str, accuracy: float = 0.875) -> dict[str, Any]:
    """A minimal stage record that the run log schema accepts (a passed BC gate)."""
    return {
        "mode": "bc",
        "dataset": dataset,
        "run": run,
        "passed": True,
        "rolled_back": False,
        "accuracy": accuracy,
        "threshold": 0.8,
        "majority_baseline": 0.5,
        "majority_action": 0,
        "per_action_recall": {"0": 0.9, "1": 0.85},
        "train": {"episodes": 2, "steps": 120},
        "holdout": {"episodes": 1, "steps": 60},
        "train_accuracy": 0.9,
        "train_loss": 0.25,
        "epochs": 3,
        "seed": 0,
        "verified": True,
        "config_hash": "0" * 64,
        "checkpoint": {"id": "bc-0001", "path": "checkpoints/bc-0001.pt", "status": "promoted"},
        "promoted_checkpoint": "bc-0001",
        "reasons": [],
        "started_at": UTC,
        "duration_s": 1.5,
    }


def write_summary(
    root: Path, dataset: str, outcomes: dict[str, str] | None = None, **changes: Any
) -> Path:
    """Write ``summary_<dataset>.json`` pinning the dataset's files as they are now, then the
    tag manifest pinning it and the report, as the rehearsal's controller does."""
    outcomes = outcomes or {}
    path = DatasetFiles(root, dataset).summary
    steps = []
    for step in STEPS:
        outcome = outcomes.get(step, "passed")
        steps.append(
            {
                "step": step,
                "title": step.replace("_", " "),
                "test": f"acceptance/test_rehearsal.py::test_{step}[{dataset}]",
                "outcome": outcome,
                "duration_s": 0.1,
                "message": None if outcome == "passed" else f"{step} did not pass",
                "remedial_action": None if outcome == "passed" else "rerun it",
            }
        )
    summary = {
        "schema_version": 1,
        "dataset": dataset,
        "manifest": f"/data/manifests/{dataset}.json",
        "checksums": f"/data/checksums/{dataset}.json",
        "passed": not outcomes,
        "started_at": UTC,
        "finished_at": UTC,
        "durations": {"session_s": 2.0, "steps_s": 0.5, "baseline_s": 120.0},
        "steps": steps,
        "metrics": {"bc_trainer": {"accuracy": 0.875}},
        "artefacts": artefact_entries(root, dataset, exclude=(path,)),
        "missing": [],
        "environment": {
            "python": "3.11.9",
            "torch": None,
            "gymnasium": None,
            "numpy": None,
            "h5py": None,
            "pytest": "8.0.0",
            "harness": "0.1.0",
            "git_commit": None,
            "git_dirty": None,
            "host": "test",
            "platform": "linux",
            "cpus": 2,
        },
        "pytest": {"args": ["acceptance/"], "workers": 0, "exitstatus": 0},
        **changes,
    }
    check(summary, "summary", path)
    write_json_atomic(path, summary)
    write_tag_manifest(DatasetFiles(root, dataset))
    return path


def add_dataset(root: Path, dataset: str, outcomes: dict[str, str] | None = None) -> Path:
    """Lay out one dataset's files and run records in the bundle, then its summary."""
    files = DatasetFiles(root, dataset)
    root.mkdir(parents=True, exist_ok=True)
    files.config.write_text(f"dataset:\n  manifest: {dataset}.json\n")
    files.rollback_config.write_text("bc:\n  accuracy_threshold: 0.95\n")
    files.manifest.write_text(json.dumps({"dataset": dataset}) + "\n")
    files.ppo_log.write_text('{"update": 1}\n{"update": 2}\n')
    files.report.write_text(f"# Rehearsal of {dataset}\n")
    for run, name in (("bc_trainer", "logs/out.txt"), ("anneal_smoke", "logs/x.txt")):
        target = files.run(run) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"{dataset} {run}\n")
    (files.run("anneal_smoke") / "checkpoints").mkdir()
    (files.run("anneal_smoke") / "checkpoints" / "ckpt.bin").write_bytes(bytes(range(256)) * 4)
    merge_run(root, dataset, "anneal_smoke", [bc_record(dataset, "anneal_smoke", 0.9)])
    merge_run(root, dataset, "bc_trainer", [bc_record(dataset, "bc_trainer")])
    return write_summary(root, dataset, outcomes)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "acceptance"
    for dataset in DATASETS:
        add_dataset(root, dataset)
    return root


def repin(root: Path, dataset: str) -> None:
    """Rewrite the tag manifest after an edit of the summary: these tests check what verify
    finds in the summary itself (the tag manifest's own tests are further down)."""
    write_tag_manifest(DatasetFiles(root, dataset))


def problems(root: Path) -> list[tuple[str, str]]:
    return [(p.kind, p.path) for p in verify_bundle(root).problems]


def edit_log(root: Path, change) -> None:
    """Rewrite the bundle's run log by hand (as a tamperer would: no schema check)."""
    path = run_log(root)
    records = json.loads(path.read_text())
    change(records)
    path.write_text(json.dumps(records, indent=2) + "\n")


# --- a clean bundle ------------------------------------------------------------------------


def test_clean_bundle_verifies(bundle: Path) -> None:
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    assert sorted(report.summaries) == list(DATASETS)
    summary = report.summaries["idle_v1"]
    # Every file the dataset owns, and its records in the shared run log, are pinned.
    assert [a["path"] for a in summary["artefacts"]] == [
        "acceptance_report_idle_v1.md",
        "config_idle_v1.yaml",
        RUN_LOG,
        "manifest_idle_v1.json",
        "ppo_idle_v1.jsonl",
        "rollback_config_idle_v1.yaml",
        "runs/idle_v1/anneal_smoke/checkpoints/ckpt.bin",
        "runs/idle_v1/anneal_smoke/logs/x.txt",
        "runs/idle_v1/bc_trainer/logs/out.txt",
    ]
    assert [a.get("records_of") for a in summary["artefacts"]].count("idle_v1") == 1
    assert report.checked == 18

    result = call_cli("bundle", "verify", bundle)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "idle_v1: rehearsal passed",
        "preflight: rehearsal passed",
        f"bundle {display(bundle)}: 18 artefact(s) of 2 dataset(s) match their summaries",
    ]


def test_json_report(bundle: Path) -> None:
    result = call_cli("bundle", "verify", bundle, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    check(report, "bundle_report", "bundle verify --json")
    assert report == {
        "bundle": str(bundle),
        "ok": True,
        "datasets": {
            "idle_v1": {"passed": True, "artefacts": 9},
            "preflight": {"passed": True, "artefacts": 9},
        },
        "checked": 18,
        "problems": [],
    }


def test_json_report_lists_problems(bundle: Path) -> None:
    (bundle / "ppo_preflight.jsonl").unlink()
    result = call_cli("bundle", "verify", bundle, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    check(report, "bundle_report", "bundle verify --json")
    assert report["ok"] is False
    assert report["problems"] == [
        {
            "kind": "missing",
            "path": "ppo_preflight.jsonl",
            "message": "missing: ppo_preflight.jsonl: listed in the summary but not in the "
            "bundle (summary_preflight.json)",
        }
    ]


def test_failed_rehearsal_with_intact_files_verifies(tmp_path: Path) -> None:
    """verify checks integrity, not the outcome: a failed rehearsal's intact bundle is exit 0."""
    root = tmp_path / "acceptance"
    add_dataset(root, "idle_v1")
    add_dataset(
        root,
        "preflight",
        outcomes={
            "bc_trainer": "failed",
            "anneal_smoke": "aborted",
            "rollback_drill": "aborted",
            "artefact_capture": "not run",
        },
    )
    result = call_cli("bundle", "verify", root)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "idle_v1: rehearsal passed",
        "preflight: rehearsal FAILED (steps: bc_trainer failed, anneal_smoke aborted, "
        "rollback_drill aborted, artefact_capture not run)",
    ]
    assert lines[-1].endswith("match their summaries")
    assert json.loads(call_cli("bundle", "verify", root, "--json").stdout)["datasets"][
        "preflight"
    ] == {"passed": False, "artefacts": 9}


def test_cli_in_a_subprocess(bundle: Path) -> None:
    result = run_cli("bundle", "verify", bundle)
    assert result.returncode == 0, result.stdout + result.stderr
    (bundle / "config_idle_v1.yaml").write_text("changed\n")
    result = run_cli("bundle", "verify", bundle)
    assert result.returncode == 1
    assert (
        result.stdout.splitlines()[-1]
        == f"bundle {display(bundle)}: 1 problem(s) in 18 artefact(s)"
    )


def test_help_says_integrity_not_outcome() -> None:
    result = call_cli("bundle", "verify", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "integrity, not the outcome" in text
    assert "exit codes: 0" in text
    assert "bundle" in call_cli("--help").stdout


# --- damage --------------------------------------------------------------------------------

FILES = (
    "config_idle_v1.yaml",
    "ppo_idle_v1.jsonl",
    "runs/idle_v1/anneal_smoke/logs/x.txt",
    "runs/idle_v1/anneal_smoke/checkpoints/ckpt.bin",
)


@pytest.mark.parametrize("rel", FILES)
def test_changed_byte_is_a_digest_problem(bundle: Path, rel: str) -> None:
    path = bundle / rel
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    report = verify_bundle(bundle)
    assert [(p.kind, p.path) for p in report.problems] == [("digest", rel)]
    message = report.problems[0].message
    assert message.startswith(f"digest: {rel}: sha256 ")
    assert message.endswith("(summary_idle_v1.json)")

    result = call_cli("bundle", "verify", bundle)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert message in lines
    assert lines[-1] == f"bundle {display(bundle)}: 1 problem(s) in 18 artefact(s)"


@pytest.mark.parametrize("change", ["truncate", "append"])
def test_truncated_or_appended_file_is_a_size_problem(bundle: Path, change: str) -> None:
    rel = "runs/idle_v1/anneal_smoke/checkpoints/ckpt.bin"
    path = bundle / rel
    size = path.stat().st_size
    if change == "truncate":
        with open(path, "r+b") as fh:
            fh.truncate(size - 10)
        found = size - 10
    else:
        with open(path, "ab") as fh:
            fh.write(b"more")
        found = size + 4
    report = verify_bundle(bundle)
    assert [(p.kind, p.path) for p in report.problems] == [("size", rel)]
    assert f"{found} bytes, summary says {size}" in report.problems[0].message


def test_deleted_file_is_missing(bundle: Path) -> None:
    (bundle / "runs/preflight/bc_trainer/logs/out.txt").unlink()
    assert problems(bundle) == [("missing", "runs/preflight/bc_trainer/logs/out.txt")]


def test_extra_file_of_the_dataset_is_unexpected(bundle: Path) -> None:
    (bundle / "runs/idle_v1/anneal_smoke/logs/stray.txt").write_text("not in the summary\n")
    (bundle / "pytest_report_idle_v1.json").write_text("{}\n")  # a name the dataset owns
    report = verify_bundle(bundle)
    assert [(p.kind, p.path) for p in report.problems] == [
        ("unexpected", "pytest_report_idle_v1.json"),
        ("unexpected", "runs/idle_v1/anneal_smoke/logs/stray.txt"),
    ]
    assert "belongs to dataset 'idle_v1'" in report.problems[1].message


def test_files_no_summary_accounts_for_are_unexpected(bundle: Path) -> None:
    (bundle / "notes.txt").write_text("?\n")
    (bundle / "runs/other/anneal_smoke/logs").mkdir(parents=True)
    (bundle / "runs/other/anneal_smoke/logs/a.txt").write_text("a\n")
    (bundle / "runs/other/anneal_smoke/logs/b.txt").write_text("b\n")
    merge_run(bundle, "other", "bc_trainer", [bc_record("other", "bc_trainer")])
    report = verify_bundle(bundle)
    assert [(p.kind, p.path) for p in report.problems] == [
        ("unexpected", "notes.txt"),
        ("unexpected", "runs/other"),
        ("unexpected", RUN_LOG),
    ]
    assert "2 file(s) of dataset 'other', which has no summary" in report.problems[1].message
    assert "1 record(s) of dataset 'other', which has no summary" in report.problems[2].message


def test_records_of_the_dataset_that_its_summary_does_not_pin_are_unexpected(
    tmp_path: Path,
) -> None:
    root = tmp_path / "acceptance"
    files = DatasetFiles(root, "idle_v1")
    files.run("bc_trainer").mkdir(parents=True)
    (files.run("bc_trainer") / "out.txt").write_text("x\n")
    write_summary(root, "idle_v1")  # pinned before any record was merged
    assert verify_bundle(root).ok
    merge_run(root, "idle_v1", "bc_trainer", [bc_record("idle_v1", "bc_trainer")])
    assert problems(root) == [("unexpected", RUN_LOG)]


# --- the shared run log --------------------------------------------------------------------


def test_changed_record_is_a_digest_problem_of_its_dataset_only(bundle: Path) -> None:
    def change(records: list[dict[str, Any]]) -> None:
        for record in records:
            if record["dataset"] == "idle_v1" and record["run"] == "bc_trainer":
                record["accuracy"] = 0.876  # same length: the digest, not the size, differs

    edit_log(bundle, change)
    report = verify_bundle(bundle)
    assert [(p.kind, p.path) for p in report.problems] == [("digest", RUN_LOG)]
    message = report.problems[0].message
    assert "of dataset 'idle_v1'" in message and message.endswith("(summary_idle_v1.json)")


def test_records_of_another_dataset_do_not_affect_a_dataset(bundle: Path) -> None:
    def change(records: list[dict[str, Any]]) -> None:
        for record in records:
            if record["dataset"] == "preflight":
                record["accuracy"] = 0.5
                record["passed"] = "yes"  # not even valid against the run log schema

    edit_log(bundle, change)
    report = verify_bundle(bundle)
    assert [p.path for p in report.problems] == [RUN_LOG]
    assert report.problems[0].kind in ("size", "digest")
    assert report.problems[0].message.endswith("(summary_preflight.json)")
    assert "idle_v1" not in report.problems[0].message


def test_another_dataset_rerun_does_not_affect_a_dataset(bundle: Path) -> None:
    clear_dataset(bundle, "preflight")
    add_dataset(bundle, "preflight", outcomes={"bc_trainer": "failed"})
    assert verify_bundle(bundle).ok
    # A record added after the summary was written changes the records it pinned.
    merge_run(bundle, "preflight", "rollback_drill", [bc_record("preflight", "rollback_drill")])
    report = verify_bundle(bundle)
    assert [(p.kind, p.path) for p in report.problems] == [("size", RUN_LOG)]
    assert "3 record(s) of dataset 'preflight'" in report.problems[0].message
    write_summary(bundle, "preflight")
    assert verify_bundle(bundle).ok


def test_unreadable_run_log_is_reported_per_dataset(bundle: Path) -> None:
    run_log(bundle).write_text("[{")
    report = verify_bundle(bundle)
    assert [(p.kind, p.path) for p in report.problems] == [("unreadable", RUN_LOG)] * 2
    assert "not valid JSON" in report.problems[0].message
    run_log(bundle).unlink()
    assert problems(bundle) == [("missing", RUN_LOG)] * 2


@pytest.mark.parametrize(
    "order", list(itertools.permutations(["bc_trainer", "anneal_smoke", "rollback_drill"]))
)
def test_merge_run_keeps_the_log_sorted_whatever_the_merge_order(
    tmp_path: Path, order: tuple[str, ...]
) -> None:
    root = tmp_path / "bundle"
    for dataset, run in itertools.product(("zeta", "alpha"), order):
        merge_run(root, dataset, run, [bc_record(dataset, run), bc_record(dataset, run, 0.9)])
    records = read_log(run_log(root))
    assert [(r["dataset"], r["run"], r["accuracy"]) for r in records] == [
        (dataset, run, accuracy)
        for dataset in ("alpha", "zeta")
        for run in ("bc_trainer", "anneal_smoke", "rollback_drill")
        for accuracy in (0.875, 0.9)  # a run's records stay in the order it wrote them
    ]
    check(records, "run_log", run_log(root))


def test_merge_run_is_independent_of_worker_order(tmp_path: Path) -> None:
    runs = [(d, r) for d in ("b", "a") for r in ("anneal_smoke", "other", "bc_trainer")]
    logs = []
    for i, order in enumerate((runs, runs[::-1])):
        root = tmp_path / str(i)
        for dataset, run in order:
            merge_run(root, dataset, run, [bc_record(dataset, run)])
        logs.append(run_log(root).read_bytes())
    assert logs[0] == logs[1]
    assert [(r["dataset"], r["run"]) for r in json.loads(logs[0])][:3] == [
        ("a", "bc_trainer"),
        ("a", "anneal_smoke"),
        ("a", "other"),  # runs outside RUN_ORDER come last
    ]


def test_merge_run_replaces_the_runs_earlier_records(bundle: Path) -> None:
    merge_run(
        bundle,
        "idle_v1",
        "bc_trainer",
        [bc_record("idle_v1", "bc_trainer", 0.5), bc_record("idle_v1", "bc_trainer", 0.6)],
    )
    records = read_log(run_log(bundle))
    assert [(r["dataset"], r["run"], r["accuracy"]) for r in records] == [
        ("idle_v1", "bc_trainer", 0.5),
        ("idle_v1", "bc_trainer", 0.6),
        ("idle_v1", "anneal_smoke", 0.9),
        ("preflight", "bc_trainer", 0.875),
        ("preflight", "anneal_smoke", 0.9),
    ]


def test_merge_run_refuses_records_of_another_run(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="include another dataset or run"):
        merge_run(tmp_path, "idle_v1", "bc_trainer", [bc_record("idle_v1", "anneal_smoke")])
    assert not run_log(tmp_path).exists()


def test_clear_dataset_removes_only_its_files_and_records(bundle: Path) -> None:
    before = {
        p.relative_to(bundle).as_posix(): p.read_bytes() for p in bundle.rglob("*") if p.is_file()
    }
    clear_dataset(bundle, "idle_v1")
    after = {
        p.relative_to(bundle).as_posix(): p.read_bytes() for p in bundle.rglob("*") if p.is_file()
    }
    gone = set(before) - set(after)
    assert gone == {p for p in before if "idle_v1" in p and not p.startswith("runs/preflight/")}
    assert not (bundle / "runs" / "idle_v1").exists()
    assert {r["dataset"] for r in read_log(run_log(bundle))} == {"preflight"}
    for rel, data in after.items():
        if rel != RUN_LOG:
            assert data == before[rel], rel
    assert verify_bundle(bundle).ok
    assert sorted(verify_bundle(bundle).summaries) == ["preflight"]


# --- summaries -----------------------------------------------------------------------------


def test_invalid_summary_is_a_summary_problem(bundle: Path) -> None:
    path = bundle / "summary_idle_v1.json"
    summary = json.loads(path.read_text())
    summary["passed"] = "yes"
    path.write_text(json.dumps(summary))
    repin(bundle, "idle_v1")
    report = verify_bundle(bundle)
    assert [(p.kind, p.path) for p in report.problems] == [("summary", "summary_idle_v1.json")]
    message = report.problems[0].message
    assert message.startswith("summary: summary_idle_v1.json: passed: ")
    assert "\n" not in message
    assert sorted(report.summaries) == ["preflight"]  # the other dataset is still checked

    result = call_cli("bundle", "verify", bundle)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "preflight: rehearsal passed",
        message,
        f"bundle {display(bundle)}: 1 problem(s) in 9 artefact(s)",
    ]


def test_summary_that_is_not_json_is_a_summary_problem(bundle: Path) -> None:
    (bundle / "summary_preflight.json").write_text("{not json")
    repin(bundle, "preflight")
    report = verify_bundle(bundle)
    assert [(p.kind, p.path) for p in report.problems] == [("summary", "summary_preflight.json")]
    assert "summary_preflight.json: not valid JSON" in report.problems[0].message


def test_summary_named_for_another_dataset(bundle: Path) -> None:
    (bundle / "summary_idle_v1.json").rename(bundle / "summary_copy.json")
    (bundle / "summary_preflight.json").replace(bundle / "summary_idle_v1.json")
    report = verify_bundle(bundle)
    kinds = [(p.kind, p.path) for p in report.problems]
    assert ("summary", "summary_copy.json") in kinds
    assert ("summary", "summary_idle_v1.json") in kinds
    # A misnamed summary never stands for the dataset it names.
    assert report.summaries == {}


@pytest.mark.parametrize(
    ("entry", "why", "also"),
    [
        ({"path": "config_preflight.yaml"}, "is not a file of dataset 'idle_v1'", []),
        ({"path": "runs/idle_v1/../preflight/x"}, "is not a file of dataset 'idle_v1'", []),
        # In place of its own records' entry, which leaves them unpinned.
        (
            {"path": RUN_LOG, "records_of": "preflight"},
            "pins records of dataset 'preflight'",
            [("unexpected", RUN_LOG)],
        ),
        ({"path": "config_idle_v1.yaml"}, "listed twice", []),
    ],
)
def test_summary_may_pin_only_its_own_dataset(
    bundle: Path, entry: dict[str, Any], why: str, also: list[tuple[str, str]]
) -> None:
    path = bundle / "summary_idle_v1.json"
    summary = json.loads(path.read_text())
    if "records_of" in entry:
        summary["artefacts"] = [a for a in summary["artefacts"] if "records_of" not in a]
    summary["artefacts"].append({"sha256": "0" * 64, "bytes": 1, **entry})
    write_json_atomic(path, summary)
    repin(bundle, "idle_v1")
    report = verify_bundle(bundle)
    assert [(p.kind, p.path) for p in report.problems] == [("summary", entry["path"]), *also]
    assert why in report.problems[0].message


def test_link_out_of_the_bundle_is_not_read(bundle: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("idle_v1 anneal_smoke\n")  # the same content as the file it replaces
    target = bundle / "runs/idle_v1/anneal_smoke/logs/x.txt"
    target.unlink()
    os.symlink(outside, target)
    report = verify_bundle(bundle)
    assert [(p.kind, p.path) for p in report.problems] == [
        ("unreadable", "runs/idle_v1/anneal_smoke/logs/x.txt")
    ]
    assert "outside the bundle" in report.problems[0].message


# --- bad input -----------------------------------------------------------------------------


def test_folder_without_summary_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "config_idle_v1.yaml").write_text("x\n")
    result = call_cli("bundle", "verify", tmp_path)
    assert_one_line_error(result, str(tmp_path), "no summary_<dataset>.json")
    assert result.stdout == ""
    assert_one_line_error(call_cli("bundle", "verify", tmp_path, "--json"), "no summary")


def test_missing_folder_is_bad_input(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert_one_line_error(call_cli("bundle", "verify", missing), str(missing), "no such")
    assert_one_line_error(run_cli("bundle", "verify", missing), str(missing), "no such")
    file = tmp_path / "file"
    file.write_text("")
    assert_one_line_error(call_cli("bundle", "verify", file), "is not a folder")


def test_dir_is_required() -> None:
    assert_one_line_error(call_cli("bundle", "verify"), "DIR")


# --- comparing two rehearsals ------------------------------------------------------------------


def test_two_rehearsals_with_the_same_figures_compare_equal(tmp_path: Path) -> None:
    first, second = tmp_path / "serial", tmp_path / "parallel"
    for root in (first, second):
        add_dataset(root, "idle_v1")
        # The bundle's own path and the wall-clock differ between sessions by nature.
        write_summary(
            root,
            "idle_v1",
            metrics={"anneal_smoke": {"command": f"run {root}/config.yaml", "cli_seconds": 2.5}},
            durations={"session_s": len(str(root)), "steps_s": 0.5, "baseline_s": 1.8},
        )
    result = call_cli("bundle", "compare", first, second)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1].endswith("same outcomes and metrics for idle_v1")


def test_a_different_metric_outcome_or_dataset_is_a_difference(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    add_dataset(first, "idle_v1")
    add_dataset(first, "preflight")
    add_dataset(second, "idle_v1", outcomes={"rollback_drill": "failed"})
    write_summary(
        second,
        "idle_v1",
        outcomes={"rollback_drill": "failed"},
        metrics={"bc_trainer": {"accuracy": 0.5}},
    )
    both, differences = compare_bundles(first, second)
    assert both == ["idle_v1"]
    assert differences[0] == f"preflight: rehearsed only in {first}"
    assert f"idle_v1: metrics.bc_trainer.accuracy: 0.875 in {first}, 0.5 in {second}" in differences
    assert f"idle_v1: steps.rollback_drill.outcome: passed in {first}, failed in {second}" in (
        differences
    )
    result = call_cli("bundle", "compare", first, second)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].endswith(f"{len(differences)} difference(s)")


def test_comparing_a_folder_that_is_not_a_bundle_is_one_line(tmp_path: Path) -> None:
    add_dataset(tmp_path / "a", "idle_v1")
    assert_one_line_error(
        call_cli("bundle", "compare", tmp_path / "a", tmp_path / "nope"), "no such bundle"
    )
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        call_cli("bundle", "compare", tmp_path / "a", tmp_path / "empty"), "no summary"
    )


# --- the tag manifest: the summary and the report are pinned too ------------------------------


def edit_summary(root: Path, dataset: str, change) -> Path:
    """Edit a summary by hand (as a tamperer would: valid JSON, its schema still met)."""
    path = DatasetFiles(root, dataset).summary
    summary = json.loads(path.read_text())
    change(summary)
    check(summary, "summary", path)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def test_the_tag_manifest_pins_the_summary_and_the_report(bundle: Path) -> None:
    files = DatasetFiles(bundle, "idle_v1")
    lines = files.tag_manifest.read_text().splitlines()
    assert [line.split("  ")[1] for line in lines] == [files.summary.name, files.report.name]
    # The format of sha256sum, so coreutils checks it too.
    done = subprocess.run(
        ["sha256sum", "--check", "--strict", files.tag_manifest.name],
        cwd=bundle,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # It is the dataset's, written last: listed by no summary, removed with the dataset.
    assert files.tag_manifest.name not in [
        a["path"] for a in verify_bundle(bundle).summaries["idle_v1"]["artefacts"]
    ]
    clear_dataset(bundle, "idle_v1")
    assert not files.tag_manifest.exists()


def test_a_failed_rehearsal_turned_passed_is_caught(tmp_path: Path) -> None:
    root = tmp_path / "acceptance"
    add_dataset(root, "idle_v1", outcomes={"bc_trainer": "failed", "anneal_smoke": "aborted"})
    assert verify_bundle(root).ok

    def passed(summary: dict[str, Any]) -> None:
        summary["passed"] = True
        for step in summary["steps"]:  # made consistent with itself, step by step
            step.update(outcome="passed", message=None, remedial_action=None)

    path = edit_summary(root, "idle_v1", passed)
    report = verify_bundle(root)
    assert [(p.kind, p.path) for p in report.problems] == [("digest", path.name)]
    assert report.problems[0].message.startswith(f"digest: {path.name}: sha256 ")
    assert "tagmanifest_idle_v1.txt says" in report.problems[0].message

    result = call_cli("bundle", "verify", root)
    assert result.returncode == 1
    assert report.problems[0].message in result.stdout.splitlines()


def test_a_flipped_verdict_alone_is_caught_twice(tmp_path: Path) -> None:
    root = tmp_path / "acceptance"
    add_dataset(root, "idle_v1", outcomes={"bc_trainer": "failed"})
    path = edit_summary(root, "idle_v1", lambda s: s.update(passed=True))
    assert problems(root) == [("digest", path.name), ("summary", path.name)]
    repin(root, "idle_v1")  # a tamperer who rewrites the tag manifest too
    report = verify_bundle(root)
    assert [(p.kind, p.path) for p in report.problems] == [("summary", path.name)]
    assert "says passed, but not every step did (bc_trainer failed)" in report.problems[0].message


def test_a_changed_accuracy_in_the_summary_is_caught(bundle: Path) -> None:
    path = edit_summary(
        bundle, "idle_v1", lambda s: s["metrics"]["bc_trainer"].update(accuracy=0.995)
    )
    assert problems(bundle) == [("digest", path.name)]


def test_a_changed_report_is_caught_by_the_summary_and_the_tag_manifest(bundle: Path) -> None:
    report_path = DatasetFiles(bundle, "idle_v1").report
    report_path.write_text(report_path.read_text().replace("Rehearsal", "Rehearsals"))
    assert problems(bundle) == [("digest", report_path.name), ("size", report_path.name)]


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda p: p.unlink(), [("missing", "tagmanifest_idle_v1.txt")]),
        (lambda p: p.write_text("not a line\n"), [("tagmanifest", "tagmanifest_idle_v1.txt")] * 3),
        (
            lambda p: p.write_text(p.read_text() + "0" * 64 + "  config_idle_v1.yaml\n"),
            [("tagmanifest", "tagmanifest_idle_v1.txt")],
        ),
        (
            lambda p: p.write_text(p.read_text().splitlines()[1] + "\n"),
            [("tagmanifest", "tagmanifest_idle_v1.txt")],
        ),
        (
            lambda p: p.write_text("0" * 64 + p.read_text()[64:]),
            [("digest", "summary_idle_v1.json")],
        ),
    ],
    ids=["missing", "malformed", "foreign-file", "summary-unpinned", "wrong-digest"],
)
def test_a_damaged_tag_manifest_is_reported(bundle: Path, damage, expected) -> None:
    damage(DatasetFiles(bundle, "idle_v1").tag_manifest)
    assert problems(bundle) == expected
    result = call_cli("bundle", "verify", bundle, "--json")
    assert result.returncode == 1
    check(json.loads(result.stdout), "bundle_report", "bundle verify --json")


def test_clearing_a_dataset_removes_the_temporary_files_a_killed_session_left(
    tmp_path: Path,
) -> None:
    """A session killed inside an atomic write leaves ``.<name>.<random>.tmp`` beside the target;
    the next session clears it with the dataset's files, and no other dataset's."""
    mine = tmp_path / ".rollback_config_idle_v1.yaml.947uh5n8.tmp"
    other = tmp_path / ".rollback_config_other.yaml.x1.tmp"
    for path in (mine, other, tmp_path / "config_idle_v1.yaml"):
        path.write_text("partial", encoding="utf-8")
    clear_dataset(tmp_path, "idle_v1")
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name]
