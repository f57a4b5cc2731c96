"""The five steps of the Phase 5.4 ops rehearsal, in order, for each ``--dataset``.

A step records its figures with ``record_property("metrics", {...})`` before it judges, so that
the summary holds them whether the step passed or not. A failure whose cause the step knows
goes through ``diagnosis.fail``: one line, no traceback, and the cause the report's remedial
action is chosen by (``acceptance/remedies.py``). The plugin applies the abort rule (a failed
integrity check skips the dataset's later steps) and writes the bundle's summary.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from acceptance.conftest import RehearsalDataset
from acceptance.diagnosis import (
    bc_figures,
    bc_gate_cause,
    fail,
    fail_cli,
    gate_figures,
    input_cause,
    last_line,
)
from acceptance.plugin import FAILED
from acceptance.rehearsal import Rehearsal
from acceptance.steps import STEP, STEPS
from harness.atomic import dumps_json
from harness.config import changed_keys, load_config
from harness.errors import EXIT_OK, EXIT_ROLLED_BACK, HarnessError, IntegrityError
from harness.hashing import sha256_file
from harness.training.checkpoints import CheckpointStore
from harness.training.runlog import read_ppo_log
from harness.validation import check, load_json

if TYPE_CHECKING:
    from harness.training.facade import BCResult

Record = Callable[[str, Any], None]
RUNS = ("bc_trainer", "anneal_smoke", "rollback_drill")


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
    if not report.ok:
        problems = "; ".join(p.message for p in report.problems)
        fail(record_property, "integrity_failed", f"{len(report.problems)} problem(s): {problems}")
    if not report.checked:
        fail(
            record_property,
            "no_accepted_capture",
            f"{dataset.name}: the manifest accepts no capture",
        )
    # The smoke's subprocess trains while the next step trains in-process; the drill's starts
    # too and waits for that step's store.
    rehearsal.start("anneal_smoke")
    rehearsal.prestart_drill()


@pytest.mark.rehearsal(step="bc_trainer")
def test_bc_trainer(rehearsal: Rehearsal, record_property: Record) -> None:
    result = _train_bc(rehearsal, record_property)
    figures = bc_figures(result)
    record_property(
        "metrics",
        {
            **figures,
            "baseline_rule": result.baseline_rule,
            "passed": result.passed,
            "checkpoint": result.checkpoint_id,
            "promoted_checkpoint": result.promoted_checkpoint,
            "train": result.train_size,
            "holdout": result.holdout_size,
            **_per_action(result),
        },
    )
    assert result.threshold == rehearsal.config().bc.accuracy_threshold
    if not result.passed:
        key = bc_gate_cause(figures, rehearsal.manifest())
        detail = "; ".join(result.reasons)
        fail(
            record_property,
            key,
            f"BC gate failed: {detail}",
            detail=detail,
            run="bc_trainer",
            **gate_figures(figures),
        )
    if result.promoted_checkpoint != result.checkpoint_id:
        fail(
            record_property,
            "not_promoted",
            f"the gate passed but the store promotes {result.promoted_checkpoint}",
            detail=f"the store promotes {result.promoted_checkpoint}, not {result.checkpoint_id}",
        )
    # The drill's store is a copy of this run's store, which now holds a promoted checkpoint.
    rehearsal.start("rollback_drill")


def _per_action(result: BCResult) -> dict[str, Any]:
    """Recall per action (discrete) or mean absolute error per dimension (continuous)."""
    if result.per_action_recall is not None:
        return {"per_action_recall": result.per_action_recall}
    if result.mae_per_dimension is not None:
        return {"mae_per_dimension": result.mae_per_dimension}
    return {}


def _train_bc(rehearsal: Rehearsal, record: Record) -> BCResult:
    """Step 2's BC run; input it refuses fails the step with its cause."""
    try:
        return rehearsal.bc()
    except HarnessError as exc:
        error = exc  # failed outside the handler: no "during handling" chain in the output
    if isinstance(error, IntegrityError):
        fail(record, "integrity_failed", str(error))
    key, detail = input_cause(rehearsal.manifest(), rehearsal.config(), str(error))
    fail(record, key, str(error), detail=detail)


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
            **_ppo_log_figures(rehearsal.files.ppo_log),
            "world_size": bc[-1].get("world_size") if bc else None,
        },
    )
    if run.returncode == EXIT_ROLLED_BACK:
        _smoke_rolled_back(rehearsal, record_property, bc, ppo, last_line(run.stderr))
    if run.returncode != EXIT_OK:
        fail_cli(
            record_property, run.returncode, run.stderr, rehearsal.manifest(), rehearsal.config()
        )

    def wrong(message: str) -> NoReturn:
        fail(record_property, "records_wrong", message, detail=message, run="anneal_smoke")

    if len(bc) != 1 or bc[0]["passed"] is not True:
        wrong(f"the smoke's bc records are {bc}")
    if len(ppo) != 1 or ppo[0]["updates"] != 1:
        wrong(f"expected one ppo record of one update, found {len(ppo)}")
    loss = ppo[0]["loss_total"]
    if not (isinstance(loss, float) and math.isfinite(loss)):
        wrong(f"ppo loss_total is {loss!r}")
    # The record names its PPO log relative to the run log's folder.
    logged = rehearsal.config().output.log_dir / ppo[0]["ppo_log"]
    if logged.resolve() != rehearsal.files.ppo_log.resolve():
        wrong(f"the ppo record names the PPO log {ppo[0]['ppo_log']}")


# The PPO log's loss parts, as the last update logged them (means over its minibatches).
LOSS_PARTS = ("loss_policy", "loss_value", "entropy", "loss_bc")


def _ppo_log_figures(path: Path) -> dict[str, Any]:
    """What the smoke's PPO log shows: the BC coefficient at its first and last logged point
    (a critic warm-up update, which moves only the value network, aside; ``bc_coef_end``, the
    coefficient at an update's last minibatch step, when the log has it), the last update's loss
    parts and the epoch's return, as logged (nothing when absent)."""
    if not path.is_file():
        return {}
    lines = read_ppo_log(path)
    policy = [line for line in lines if not line.get("critic_only")]
    if not policy:
        return {}
    first, last = policy[0], lines[-1]
    return {
        "ppo_updates_logged": len(lines),
        "critic_only_updates": len(lines) - len(policy),
        "bc_coef_first": first["bc_coef"],
        "bc_coef_last": last.get("bc_coef_end", last["bc_coef"]),
        **{part: last[part] for part in LOSS_PARTS},
        "epoch_return": last["mean_episode_return"],
        "epoch_episodes": last["episodes"],
    }


def _smoke_rolled_back(
    rehearsal: Rehearsal, record: Record, bc: list[dict], ppo: list[dict], line: str
) -> None:
    """Exit 3: which gate failed, and whether BC reproduced step 2."""
    message = f"exit {EXIT_ROLLED_BACK}: {line}"
    if bc and not bc[-1]["passed"]:
        figures = bc_figures(bc[-1])
        step2 = rehearsal.step2_accuracy()
        if step2 is not None and step2 != figures.get("accuracy"):
            fail(
                record,
                "bc_not_reproduced",
                message,
                accuracy=figures.get("accuracy"),
                step2_accuracy=step2,
            )
        fail(record, "smoke_bc_gate", message, **gate_figures(figures))
    if ppo and ppo[-1]["rolled_back"]:
        fail(
            record,
            "regression_gate",
            message,
            mean_return=ppo[-1]["mean_return"],
            baseline_return=ppo[-1]["baseline_mean_return"],
        )
    fail(
        record,
        "records_wrong",
        message,
        detail="exit 3 but no record says rolled_back",
        run="anneal_smoke",
    )


@pytest.mark.rehearsal(step="rollback_drill")
def test_rollback_drill(rehearsal: Rehearsal, record_property: Record) -> None:
    drill = rehearsal.drill()
    record_property("metrics", drill.metrics())
    if drill.used is None:
        fail(record_property, "drill_unfailable", drill.why)
    run = rehearsal.finish("rollback_drill")
    config = rehearsal.rollback_config()
    store = CheckpointStore(config.output.checkpoint_dir)
    before, promoted_before = rehearsal.drill_store_before()
    after = store.snapshot()
    promoted = store.promoted()
    records = rehearsal.records("rollback_drill")
    bc = [r for r in records if r["mode"] == "bc"]
    ppo_log = rehearsal.files.run("rollback_drill") / "ppo.jsonl"
    accuracy = bc[-1]["accuracy"] if bc else None
    record_property(
        "metrics",
        {
            "command": run.command,
            "exit_code": run.returncode,
            "cli_seconds": round(run.seconds, 3),
            **drill.metrics(),
            "bc_accuracy": accuracy,
            "rolled_back": bc[-1]["rolled_back"] if bc else None,
            "promoted_before": promoted_before,
            "promoted_after": promoted.id if promoted else None,
            "store_digest_before": store_digest(before),
            "store_digest_after": store_digest(after),
            "store_unchanged": before == after,
            "world_size": bc[-1].get("world_size") if bc else None,
        },
    )
    assert config.bc.accuracy_threshold == drill.used, "the rollback overlay is not the drill's"
    if promoted_before is None:
        fail(record_property, "no_promoted_checkpoint", "the drill's store held no promoted one")
    if run.returncode == EXIT_OK or (bc and bc[-1]["passed"]):
        message = f"exit {run.returncode}: the drill's BC gate passed at threshold {drill.used:g}"
        if accuracy is not None and accuracy != drill.measured:
            fail(
                record_property,
                "bc_not_reproduced",
                message,
                accuracy=accuracy,
                step2_accuracy=drill.measured,
            )
        fail(record_property, "drill_gate_passed", message, accuracy=accuracy, threshold=drill.used)
    if run.returncode != EXIT_ROLLED_BACK:
        fail_cli(record_property, run.returncode, run.stderr, rehearsal.manifest(), config)
    _rolled_back_cleanly(record_property, records, ppo_log, (before, promoted_before), store)


def store_digest(snapshot: dict[str, str]) -> str:
    """One sha256 for a checkpoint store: of its files' paths and sha256, as canonical JSON."""
    return hashlib.sha256(dumps_json(snapshot).encode("utf-8")).hexdigest()


def _rolled_back_cleanly(
    record: Record,
    records: list[dict],
    ppo_log: Path,
    before: tuple[dict[str, str], str | None],
    store: CheckpointStore,
) -> None:
    """Exit 3 after the drill's BC gate failed: nothing after it ran, nothing in the store moved."""
    modes = [r["mode"] for r in records]
    if modes != ["bc"] or ppo_log.exists():
        detail = f"the drill's records are {modes}" + (
            f" and {ppo_log.name} was written" if ppo_log.exists() else ""
        )
        fail(record, "ppo_ran", f"PPO ran after a failed BC gate: {detail}", detail=detail)
    if not (records[0]["rolled_back"] is True and records[0]["passed"] is False):
        detail = "the drill's bc record does not say passed false, rolled_back true"
        fail(record, "records_wrong", detail, detail=detail, run="rollback_drill")
    snapshot, promoted_before = before
    promoted = store.promoted()
    if (promoted.id if promoted else None) != promoted_before:
        detail = (
            f"the promoted checkpoint moved from {promoted_before} to {promoted and promoted.id}"
        )
        fail(record, "store_changed", detail, detail=detail)
    after = store.snapshot()
    if after != snapshot:
        changed = sorted({k for k, _ in set(snapshot.items()) ^ set(after.items())})
        detail = f"files of the store changed: {', '.join(changed[:3])}"
        fail(record, "store_changed", detail, detail=detail)


def _not_passed(request: pytest.FixtureRequest, name: str) -> set[str]:
    """The dataset's steps that failed in this process, and those their failure aborted."""
    failed = request.config.stash[FAILED].get(name, set())
    return failed | {s.key for s in STEPS if set(s.needs) & failed}


@pytest.mark.rehearsal(step="artefact_capture")
def test_artefact_capture(
    request: pytest.FixtureRequest,
    dataset: RehearsalDataset,
    rehearsal: Rehearsal,
    overlay: Path,
    rollback_overlay: Path,
    record_property: Record,
) -> None:
    files = rehearsal.files
    checked: list[str] = []
    not_passed = _not_passed(request, dataset.name)

    def present(path: Path, step: str | None = None) -> Path:
        if not path.is_file() and step in not_passed:
            missing = f"{path.relative_to(files.root).as_posix()} is missing"
            fail(
                record_property,
                "after_failed_steps",
                missing,
                detail=missing,
                steps=STEP[step].title,
            )
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
        _check_overlays(rehearsal, dataset, present(overlay), present(rollback_overlay))
        # The anneal logs: every run's records in the bundle's run log, and the PPO log.
        logged = {r["run"] for run in RUNS for r in rehearsal.records(run)}
        for run in RUNS:
            if run not in logged and run in not_passed:
                missing = f"logs/anneal_results.json holds no record of {run}"
                fail(
                    record_property,
                    "after_failed_steps",
                    missing,
                    detail=missing,
                    steps=STEP[run].title,
                )
        assert set(RUNS) <= logged, (
            f"logs/anneal_results.json holds records of runs {sorted(logged)} for {dataset.name}"
        )
        lines = read_ppo_log(present(files.ppo_log, "anneal_smoke"))
        assert lines and all(line["dataset"] == dataset.name for line in lines)
        for run in RUNS:
            present(files.run(run) / "logs" / "anneal_results.json", run)
    finally:
        record_property("metrics", {"checked": checked})


def _check_overlays(
    rehearsal: Rehearsal, dataset: RehearsalDataset, overlay: Path, rollback: Path
) -> None:
    """Complete configs on this dataset and in its environment; the rollback one differing only
    in its threshold (the drill's) and its output folders."""
    config, strict = load_config(overlay), load_config(rollback)
    assert config.dataset.manifest.resolve() == dataset.ref.manifest.resolve()
    assert config.env.spec() == dataset.manifest.env_spec(), (
        "the overlay's env is not the dataset's"
    )
    assert config.output.log_dir.is_relative_to(rehearsal.files.runs)
    changed = set(changed_keys(config, strict)) - {"bc.accuracy_threshold"}
    assert changed == {"output.log_dir", "output.checkpoint_dir"}, (
        f"the rollback overlay changes {sorted(changed)}"
    )
    assert strict.bc.accuracy_threshold == rehearsal.rollback_threshold(), (
        f"the rollback overlay's threshold is {strict.bc.accuracy_threshold:g}"
    )
