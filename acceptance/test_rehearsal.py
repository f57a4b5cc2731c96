"""The five steps of the Phase 5.4 ops rehearsal, in order, for each ``--dataset``.

A step records its figures with ``record_property("metrics", {...})`` before it asserts, so that
the summary holds them whether the step passed or not. The plugin applies the abort rule (a
failed integrity check skips the dataset's later steps) and writes the bundle's summary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from acceptance.conftest import RehearsalDataset
from acceptance.rehearsal import ROLLBACK_THRESHOLD, Rehearsal
from harness.config import changed_keys, load_config
from harness.errors import EXIT_OK, EXIT_ROLLED_BACK
from harness.hashing import sha256_file
from harness.training.checkpoints import CheckpointStore
from harness.training.runlog import read_ppo_log
from harness.validation import check, load_json

Record = Callable[[str, Any], None]


@pytest.mark.rehearsal(step="dataset_integrity")
def test_dataset_integrity(
    dataset: RehearsalDataset, rehearsal: Rehearsal, record_property: Record
) -> None:
    report = rehearsal.verify_integrity()
    record_property(
        "metrics",
        {
            "accepted_captures": len(dataset.captures),
            "matching": len(report.checked),
            "matching_bytes": sum(c["bytes"] for c in report.checked),
            "problems": [p.message for p in report.problems],
        },
    )
    assert report.ok, f"{len(report.problems)} problem(s): " + "; ".join(
        p.message for p in report.problems
    )
    assert report.checked, f"{dataset.name}: the manifest accepts no capture"
    # The smoke's subprocess trains while the next step trains in-process.
    rehearsal.start("anneal_smoke")


@pytest.mark.rehearsal(step="bc_trainer")
def test_bc_trainer(rehearsal: Rehearsal, record_property: Record) -> None:
    result = rehearsal.bc()
    record_property(
        "metrics",
        {
            "accuracy": result.accuracy,
            "threshold": result.threshold,
            "baseline": result.baseline,
            "baseline_rule": result.baseline_rule,
            "passed": result.passed,
            "checkpoint": result.checkpoint_id,
            "promoted_checkpoint": result.promoted_checkpoint,
            "train": result.train_size,
            "holdout": result.holdout_size,
        },
    )
    assert result.threshold == rehearsal.config().bc.accuracy_threshold
    assert result.accuracy >= result.threshold, (
        f"hold-out accuracy {result.accuracy:.4f} is below the overlay's threshold "
        f"{result.threshold:g}: {'; '.join(result.reasons)}"
    )
    assert result.passed, "; ".join(result.reasons)
    assert result.promoted_checkpoint == result.checkpoint_id
    # The drill's store is a copy of this run's store, which now holds a promoted checkpoint.
    rehearsal.start("rollback_drill")


@pytest.mark.rehearsal(step="anneal_smoke")
def test_anneal_smoke(rehearsal: Rehearsal, record_property: Record) -> None:
    run = rehearsal.finish("anneal_smoke")
    records = rehearsal.records("anneal_smoke")  # read_log validated them against the schema
    bc = [r for r in records if r["mode"] == "bc"]
    ppo = [r for r in records if r["mode"] == "ppo"]
    record_property(
        "metrics",
        {
            "command": run.command,
            "exit_code": run.returncode,
            "cli_seconds": round(run.seconds, 3),
            "bc_accuracy": bc[-1]["accuracy"] if bc else None,
            "loss_total": ppo[-1]["loss_total"] if ppo else None,
            "mean_return": ppo[-1]["mean_return"] if ppo else None,
            "baseline_mean_return": ppo[-1]["baseline_mean_return"] if ppo else None,
            "checkpoint": ppo[-1]["checkpoint"]["id"] if ppo else None,
        },
    )
    assert run.returncode == EXIT_OK, (
        f"exit {run.returncode}: {run.stderr.strip() or '(no stderr)'}"
    )
    assert len(bc) == 1 and bc[0]["passed"] is True, f"bc records of the smoke: {bc}"
    assert len(ppo) == 1, f"expected one ppo record, found {len(ppo)}"
    loss = ppo[0]["loss_total"]
    assert isinstance(loss, float) and math.isfinite(loss), f"ppo loss_total is {loss!r}"
    assert ppo[0]["updates"] == 1
    # The record names its PPO log relative to the run log's folder.
    logged = rehearsal.config().output.log_dir / ppo[0]["ppo_log"]
    assert logged.resolve() == rehearsal.files.ppo_log.resolve(), f"ppo_log {ppo[0]['ppo_log']}"


@pytest.mark.rehearsal(step="rollback_drill")
def test_rollback_drill(rehearsal: Rehearsal, record_property: Record) -> None:
    run = rehearsal.finish("rollback_drill")
    config = rehearsal.rollback_config()
    store = CheckpointStore(config.output.checkpoint_dir)
    before, promoted_before = rehearsal.drill_store_before()
    after = store.snapshot()
    promoted = store.promoted()
    records = rehearsal.records("rollback_drill")
    bc = [r for r in records if r["mode"] == "bc"]
    ppo_log = rehearsal.files.run("rollback_drill") / "ppo.jsonl"
    record_property(
        "metrics",
        {
            "command": run.command,
            "exit_code": run.returncode,
            "cli_seconds": round(run.seconds, 3),
            "threshold": config.bc.accuracy_threshold,
            "bc_accuracy": bc[-1]["accuracy"] if bc else None,
            "rolled_back": bc[-1]["rolled_back"] if bc else None,
            "promoted_before": promoted_before,
            "promoted_after": promoted.id if promoted else None,
            "store_unchanged": before == after,
        },
    )
    assert config.bc.accuracy_threshold == ROLLBACK_THRESHOLD
    assert promoted_before is not None, "the drill's store held no promoted checkpoint"
    assert run.returncode == EXIT_ROLLED_BACK, (
        f"exit {run.returncode}, expected {EXIT_ROLLED_BACK} (rolled back): "
        f"{run.stderr.strip() or '(no stderr)'}"
    )
    assert [r["mode"] for r in records] == ["bc"], (
        f"the harness did not stop after the BC stage: records {[r['mode'] for r in records]}"
    )
    assert bc[0]["rolled_back"] is True and bc[0]["passed"] is False
    assert not ppo_log.exists(), f"{ppo_log} was written: PPO ran after a failed BC gate"
    assert (promoted.id if promoted else None) == promoted_before, "the promoted checkpoint moved"
    assert after == before, "the checkpoint store changed: " + ", ".join(
        sorted(set(before.items()) ^ set(after.items()), key=str)[:3]
    )


@pytest.mark.rehearsal(step="artefact_capture")
def test_artefact_capture(
    dataset: RehearsalDataset,
    rehearsal: Rehearsal,
    overlay: Path,
    rollback_overlay: Path,
    record_property: Record,
) -> None:
    files = rehearsal.files
    checked: list[str] = []

    def present(path: Path) -> Path:
        assert path.is_file(), f"{path.name} is missing from the bundle {files.root}"
        checked.append(path.relative_to(files.root).as_posix())
        return path

    try:
        # Byte copies of the dataset's manifest and checksum sheet, valid against their schemas.
        for copy, source, schema in (
            (files.manifest, dataset.ref.manifest, "manifest"),
            (files.checksums, dataset.ref.checksums, "checksums"),
        ):
            check(load_json(present(copy), schema), schema, copy)
            assert sha256_file(copy) == sha256_file(source), f"{copy.name} differs from {source}"
        # The overlays: complete configs on this dataset, the rollback one differing only in
        # its threshold and its output folders.
        config = load_config(present(overlay))
        strict = load_config(present(rollback_overlay))
        assert config.dataset.manifest.resolve() == dataset.ref.manifest.resolve()
        assert config.output.log_dir.is_relative_to(files.runs)
        changed = set(changed_keys(config, strict))
        assert changed == {"bc.accuracy_threshold", "output.log_dir", "output.checkpoint_dir"}, (
            f"the rollback overlay changes {sorted(changed)}"
        )
        # The anneal logs: every run's records in the bundle's run log, and the PPO log.
        runs = [r["run"] for r in rehearsal.records("bc_trainer")] + [
            r["run"] for run in ("anneal_smoke", "rollback_drill") for r in rehearsal.records(run)
        ]
        assert {"bc_trainer", "anneal_smoke", "rollback_drill"} <= set(runs), (
            f"logs/anneal_results.json holds records of runs {sorted(set(runs))} for {dataset.name}"
        )
        lines = read_ppo_log(present(files.ppo_log))
        assert lines and all(line["dataset"] == dataset.name for line in lines)
        for run in ("bc_trainer", "anneal_smoke", "rollback_drill"):
            present(files.run(run) / "logs" / "anneal_results.json")
    finally:
        record_property("metrics", {"checked": checked})
