"""The one finishing path of every training stage: promotion or rollback, and the record, as one
transaction.

A stage (``stages``) trains, measures and applies its gate; ``finish`` does the rest the same way
for BC and PPO. Before it writes anything it checks everything it will write (``check_outputs``):
the run log readable and valid, the log folder and the store writable, and room on their disks
for the checkpoint, the record and the pointer. Then, on a passed gate,
``CheckpointStore.commit`` writes the checkpoint into the store, appends the record (the commit
point) and moves ``promoted.json``; on a failed gate, ``CheckpointStore.reject`` sets the
checkpoint aside in ``<log dir>/rejected/`` and appends the record (the rollback: the store is
never written). A write that fails is undone, and ``finish`` raises ``FinishError``: one line
naming the file and saying that the store and the run log are as they were before the stage
(``PromotionStands`` in the one case where the promotion was logged and could not be undone).

``preflight`` does the reading half before a stage trains: a damaged run log or promoted
checkpoint costs no training.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.atomic import dumps_json
from harness.config import Config
from harness.datasets.manifest import Manifest
from harness.errors import HarnessError
from harness.training.checkpoints import (
    RESERVED_KEYS,
    Checkpoint,
    CheckpointStore,
    PromotionStands,
    checkpoint_document,
)
from harness.training.distributed import current
from harness.training.results import GateResult, StageResult
from harness.training.runlog import PendingRecord, log_path, read_log, rejected_dir

# Figures that measure the machine, not the checkpoint: kept in the record, left out of the
# checkpoint's metrics so that its id (which covers its metadata) is the same on a rerun.
WALL_CLOCK_METRICS = ("steps_per_second",)
# What may differ between a rerun's checkpoint and the promoted one it reproduces.
_NOT_OUTCOME = ("id", "parent", "config", "config_hash")
# Room a stage's writes need beyond their own bytes: pointer files, directory entries, slack.
MARGIN_BYTES = 1 << 20


class FinishError(HarnessError):
    """A stage's outputs could not be written; nothing the stage wrote to the store or the run
    log is left."""


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


def preflight(config: Config) -> None:
    """Before a stage trains, what it will read back when it finishes: the run log (readable,
    valid, in a folder that can be written) and the promoted checkpoint (whole, its policy
    loadable: a forged payload is refused here, not after training). The store itself may be
    read-only: a failed gate never writes it (``check_outputs`` checks it for a passed one)."""
    read_log(log_path(config.output.log_dir))
    _writable(config.output.log_dir)
    promoted = CheckpointStore(config.output.checkpoint_dir).promoted()
    if promoted is not None:
        from harness.training.weights import checkpoint_policy  # torch: the trainer has it

        checkpoint_policy(promoted)


def finish(
    ctx: StageContext, manifest: Manifest, store: CheckpointStore, done: Finishing
) -> StageResult:
    """Promote the stage's checkpoint or roll back, append the stage's record; return both."""
    cfg = ctx.config
    meta, document = _checkpoint(cfg, manifest, done)
    passed = done.gate.passed
    place = store.checkpoints_dir if passed else rejected_dir(cfg.output.log_dir)
    promoted = document["id"] if passed else (done.parent.id if done.parent else None)
    record = _record(ctx, manifest, done, document["id"], place / document["id"], promoted)
    pending = PendingRecord(cfg.output.log_dir, record)
    checkpoint = _write_outputs(cfg, store, done, meta, document, pending)
    return StageResult(
        passed=passed,
        rolled_back=not passed,
        checkpoint=checkpoint.path,
        checkpoint_id=checkpoint.id,
        promoted_checkpoint=promoted,
        reasons=done.gate.reasons,
        log=pending.log,
        record=record,
    )


def _checkpoint(
    cfg: Config, manifest: Manifest, done: Finishing
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint's metadata and its ``checkpoint.json`` document (with its id)."""
    meta = _checkpoint_meta(cfg, manifest, done)
    document = checkpoint_document(done.stage, done.files, meta)
    if done.gate.passed and done.parent is not None and _rerun_of(done.parent, document):
        # The promoted checkpoint again: a deterministic rerun keeps it (and the metadata of its
        # first training), so the store stays byte for byte as it was.
        document = done.parent.meta
        meta = {k: v for k, v in document.items() if k not in RESERVED_KEYS}
    return meta, document


def _write_outputs(
    cfg: Config,
    store: CheckpointStore,
    done: Finishing,
    meta: dict[str, Any],
    document: dict[str, Any],
    pending: PendingRecord,
) -> Checkpoint:
    """Check, then write: promotion (or rollback) and the record, as one transaction; a
    failure is one ``FinishError`` line saying that what the stage wrote was undone."""
    try:
        check_outputs(cfg, store, done, document, pending)
        if done.gate.passed:
            return store.commit(done.stage, done.files, meta, done.gate_record, pending)
        quarantine = rejected_dir(cfg.output.log_dir)
        return store.reject(quarantine, done.stage, done.files, meta, pending)
    except PromotionStands:
        raise
    except OSError as exc:
        where = exc.filename or store.root
        raise FinishError(
            f"{where}: cannot write: {exc.strerror or exc}; {_not_finished(done.stage)}"
        ) from None
    except HarnessError as exc:
        raise FinishError(f"{exc}; {_not_finished(done.stage)}") from None


def _rerun_of(promoted: Checkpoint, document: dict[str, Any]) -> bool:
    """Whether ``document`` is the promoted checkpoint again: the same stage, weights, metrics,
    dataset and seed; only its id, its parent (the promoted checkpoint itself) and the config
    (whose other stages' sections do not change this one's outcome) may differ."""

    def content(doc: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if k not in _NOT_OUTCOME}

    return content(promoted.meta) == content(document)


def _not_finished(stage: str) -> str:
    return f"the {stage} stage did not finish: the store and the run log are as they were"


def _checkpoint_meta(cfg: Config, manifest: Manifest, done: Finishing) -> dict[str, Any]:
    """The checkpoint's metadata: what it is and where it came from, nothing of where it is
    written or how fast the machine was (its id covers all of it)."""
    config = cfg.to_document()
    # Where it was written and on what device do not change what was trained.
    config.pop("output", None)
    config.pop("training", None)
    return {
        "dataset": manifest.dataset,
        "seed": cfg.seed,
        "config_hash": cfg.hash(),
        **done.model,
        "metrics": {k: v for k, v in done.metrics.items() if k not in WALL_CLOCK_METRICS},
        "parent": done.parent.id if done.parent else None,
        **done.lineage,
        "config": config,
    }


def _record(
    ctx: StageContext,
    manifest: Manifest,
    done: Finishing,
    checkpoint_id: str,
    folder: Path,
    promoted: str | None,
) -> dict[str, Any]:
    cfg = ctx.config
    return {
        "mode": done.stage,
        "dataset": manifest.dataset,
        "run": ctx.run,
        "passed": done.gate.passed,
        "rolled_back": not done.gate.passed,
        **done.fields,
        "seed": cfg.seed,
        "verified": ctx.verified,
        "world_size": current().size,
        "config_hash": cfg.hash(),
        "checkpoint": {
            "id": checkpoint_id,
            "path": os.path.relpath(folder, cfg.output.log_dir),
            "status": "promoted" if done.gate.passed else "rejected",
        },
        "promoted_checkpoint": promoted,
        "reasons": done.gate.reasons,
        "started_at": done.started,
        "duration_s": round(time.perf_counter() - done.t0, 3),
    }


def check_outputs(
    cfg: Config,
    store: CheckpointStore,
    done: Finishing,
    document: dict[str, Any],
    pending: PendingRecord,
) -> None:
    """Everything ``finish`` will write, checked before it writes: the run log readable and
    valid, its folder and the checkpoint's writable, and room on their disks."""
    read_log(pending.log)
    target = store.root if done.gate.passed else rejected_dir(cfg.output.log_dir)
    for folder in (cfg.output.log_dir, target):
        _writable(folder)
    checkpoint_bytes = sum(map(len, done.files.values())) + len(dumps_json(document))
    # The pointer is written twice (promoting.json, then promoted.json).
    pointer_bytes = 2 * len(dumps_json(done.gate_record)) if done.gate.passed else 0
    log_bytes = pending.log.stat().st_size if pending.log.exists() else 0
    # The log is rewritten whole beside the old one: both are on disk at the rename.
    record_bytes = log_bytes + len(dumps_json(pending.record))
    _room(done.stage, {target: checkpoint_bytes + pointer_bytes, cfg.output.log_dir: record_bytes})


def _existing(folder: Path) -> Path:
    """``folder`` or its nearest ancestor that exists (what a write there would create from)."""
    folder = Path(folder).absolute()
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def _writable(folder: Path) -> None:
    base = _existing(folder)
    if not base.is_dir():
        raise FinishError(f"{base}: is not a folder; {folder} cannot be written")
    if not os.access(base, os.W_OK | os.X_OK):
        raise FinishError(f"{base}: not writable; {folder} cannot be written")


def _room(stage: str, needs: dict[Path, int]) -> None:
    """Each disk that ``needs`` (folder -> bytes) touches has its bytes and a margin free."""
    by_disk: dict[int, tuple[Path, int]] = {}
    for folder, size in needs.items():
        base = _existing(folder)
        place, total = by_disk.get(os.stat(base).st_dev, (base, 0))
        by_disk[os.stat(base).st_dev] = (place, total + size)
    for place, total in by_disk.values():
        free = shutil.disk_usage(place).free
        if free < total + MARGIN_BYTES:
            raise FinishError(
                f"{place}: not enough free space for the {stage} stage's checkpoint and record "
                f"({total + MARGIN_BYTES} bytes needed, {free} free)"
            )
