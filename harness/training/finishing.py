"""The one finishing path of every training stage: promotion or rollback, then the record.

A stage (``stages``) trains, measures and applies its gate; ``finish`` does the rest the same way
for BC and PPO: the checkpoint is promoted when the gate passed, or set aside in
``<log dir>/rejected/`` when it failed (the rollback: the store is never written), and the stage's
record is appended to the run log.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from harness.config import Config
from harness.datasets.manifest import Manifest
from harness.training.checkpoints import Checkpoint, CheckpointStore
from harness.training.results import GateResult, StageResult
from harness.training.runlog import append_record, rejected_dir


@dataclass(frozen=True)
class StageContext:
    """What every stage of one run shares."""

    config: Config
    run: str
    """The run name in the records."""
    verified: bool
    """Whether the captures' checksums were verified before training."""
    progress: bool
    """Show progress bars (on a terminal only)."""


@dataclass(frozen=True)
class Finishing:
    """What a stage hands to ``finish``: its checkpoint, its figures and its gate's outcome."""

    stage: str
    gate: GateResult
    files: dict[str, bytes]
    """The checkpoint's payload files."""
    model: dict[str, Any]
    """Checkpoint metadata saying how to rebuild the payload (the policy spec, ...)."""
    metrics: dict[str, Any]
    parent: Checkpoint | None
    """The checkpoint promoted before this one; it stays promoted on rollback."""
    lineage: dict[str, Any]
    """Checkpoint metadata naming where training started (PPO's ``init_checkpoint``)."""
    fields: dict[str, Any]
    """The record's stage-specific fields."""
    gate_record: dict[str, Any]
    """What ``promoted.json`` records of the gate that passed."""
    started: str
    t0: float


def finish(
    ctx: StageContext, manifest: Manifest, store: CheckpointStore, done: Finishing
) -> StageResult:
    """Promote the stage's checkpoint or roll back, append the stage's record; return both."""
    cfg = ctx.config
    meta = {
        "dataset": manifest.dataset,
        "seed": cfg.seed,
        "config_hash": cfg.hash(),
        **done.model,
        "metrics": done.metrics,
        "parent": done.parent.id if done.parent else None,
        **done.lineage,
        "config": cfg.to_document(),
    }
    if done.gate.passed:
        checkpoint = store.add(done.stage, done.files, meta)
        store.promote(checkpoint, done.gate_record)
        promoted = checkpoint.id
    else:
        # Rollback: the store is never written; the failed checkpoint goes to the log dir.
        quarantine = rejected_dir(cfg.output.log_dir)
        checkpoint = store.set_aside(quarantine, done.stage, done.files, meta)
        promoted = done.parent.id if done.parent else None
    record = {
        "mode": done.stage,
        "dataset": manifest.dataset,
        "run": ctx.run,
        "passed": done.gate.passed,
        "rolled_back": not done.gate.passed,
        **done.fields,
        "seed": cfg.seed,
        "verified": ctx.verified,
        "config_hash": meta["config_hash"],
        "checkpoint": {
            "id": checkpoint.id,
            "path": os.path.relpath(checkpoint.path, cfg.output.log_dir),
            "status": "promoted" if done.gate.passed else "rejected",
        },
        "promoted_checkpoint": promoted,
        "reasons": done.gate.reasons,
        "started_at": done.started,
        "duration_s": round(time.perf_counter() - done.t0, 3),
    }
    return StageResult(
        passed=done.gate.passed,
        rolled_back=not done.gate.passed,
        checkpoint=checkpoint.path,
        checkpoint_id=checkpoint.id,
        promoted_checkpoint=promoted,
        reasons=done.gate.reasons,
        log=append_record(cfg.output.log_dir, record),
        record=record,
    )
