"""The ``TrainingHarness`` facade: config -> verified dataset -> trainer -> gate -> promotion or
rollback -> run log. Only wiring lives here; the maths is in ``bc`` and the storage in
``checkpoints`` and ``runlog``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.checkpoints import CheckpointStore, utc_now
from harness.config import Config, load_config
from harness.datasets.checksums import load_sheet
from harness.datasets.integrity import verify
from harness.datasets.manifest import Manifest, load_manifest
from harness.errors import HarnessError, IntegrityError
from harness.progress import progress_bar
from harness.runlog import append_record
from harness.validation import and_more

REJECTED_DIR = "rejected"  # inside the log dir: where a checkpoint that failed its gate is kept


@dataclass(frozen=True)
class BCResult:
    """What ``run_bc_training`` measured and did; ``record`` is the line it logged."""

    accuracy: float
    """Accuracy of the trained policy on the hold-out episodes' frames."""
    threshold: float
    """The gate's ``bc.accuracy_threshold``."""
    passed: bool
    """Accuracy >= threshold and above the majority-class baseline."""
    rolled_back: bool
    """True when the gate failed: nothing was promoted, the store is as it was."""
    majority_baseline: float
    """Hold-out accuracy of always predicting the training set's most frequent action."""
    per_action_recall: dict[str, float | None]
    train_size: dict[str, int]
    holdout_size: dict[str, int]
    checkpoint: Path
    """The checkpoint written: in the store when promoted, in ``<log dir>/rejected/`` if not."""
    checkpoint_id: str
    promoted_checkpoint: str | None
    """The store's promoted checkpoint after the stage (unchanged on rollback)."""
    reasons: list[str]
    log: Path
    record: dict[str, Any]


class TrainingHarness:
    """Run the training stages of one config, as the CLI and the rehearsal do.

    ``config`` is a path to a YAML config or a loaded ``Config``. ``overrides`` replaces keys
    (``{"seed": 3, "bc.epochs": 5}``) and is validated like the file. ``verify=False`` trains
    on data whose checksums were not checked: an explicit opt-out, recorded in the run log.
    ``run`` names the run in its records (default: the config file's stem).
    """

    def __init__(
        self,
        config: Config | str | os.PathLike[str],
        *,
        overrides: Mapping[str, Any] | None = None,
        verify: bool = True,
        run: str | None = None,
        progress: bool = True,
    ) -> None:
        if not isinstance(config, Config):
            config = load_config(config)
        if overrides:
            config = config.override(dict(overrides))
        rejected = config.output.log_dir / REJECTED_DIR
        store = config.output.checkpoint_dir
        if rejected.is_relative_to(store) or store.is_relative_to(rejected):
            # A rolled-back run must not write into the store it promises to leave unchanged.
            raise HarnessError(
                f"{config.source or 'config'}: output.log_dir ({config.output.log_dir}) keeps "
                f"rejected checkpoints in {rejected}, which overlaps output.checkpoint_dir "
                f"({store}); give them separate folders"
            )
        self.config = config
        self.verify = verify
        self.run = run or (config.source.stem if config.source else "run")
        self.progress = progress

    # --- the steps ------------------------------------------------------------------------

    def load_dataset(self) -> Manifest:
        """The manifest, checked against the config's env and, unless opted out, its checksums."""
        cfg = self.config
        manifest = load_manifest(cfg.dataset.manifest)
        if manifest.env_id != cfg.env.id:
            raise HarnessError(
                f"{cfg.source or 'config'}: env.id is '{cfg.env.id}' but dataset "
                f"'{manifest.dataset}' ({cfg.dataset.manifest}) was recorded in '{manifest.env_id}'"
            )
        if self.verify:
            report = verify(manifest, load_sheet(cfg.dataset.checksums))
            if not report.ok:
                raise IntegrityError(
                    f"{manifest.dataset}: integrity check failed, training refused: "
                    f"{report.problems[0].message}{and_more(report.problems)}"
                )
        return manifest

    def run_bc_training(self) -> BCResult:
        """Train BC, apply its gate, then promote the checkpoint or roll back; log the record."""
        # Torch is imported here, on first training, not when the facade is imported.
        from harness.bc import (
            accuracy_gate,
            load_demonstrations,
            majority_baseline,
            per_action_recall,
            split_by_episode,
            train,
        )
        from harness.policy import MLPPolicy, PolicySpec, policy_bytes
        from harness.seeding import deterministic

        cfg = self.config
        started, t0 = utc_now(), time.perf_counter()
        manifest = self.load_dataset()
        spec = PolicySpec(*env_dims(cfg.env.id), hidden_sizes=cfg.bc.hidden_sizes)
        # Read the store before training: a damaged store is refused before any work is done.
        store = CheckpointStore(cfg.output.checkpoint_dir)
        previous = store.promoted()

        demos = load_demonstrations(manifest, spec.obs_dim, spec.n_actions)
        train_eps, holdout_eps = split_by_episode(len(demos.refs), cfg.bc.holdout, cfg.seed)
        x_train, y_train = demos.frames(train_eps)
        x_hold, y_hold = demos.frames(holdout_eps)

        with (
            deterministic(cfg.seed) as generator,
            progress_bar(cfg.bc.epochs, f"bc {manifest.dataset}", unit="epoch") as bar,
        ):
            policy = MLPPolicy(spec)

            def on_epoch(epoch: int, loss: float) -> None:
                bar.set_postfix_str(f"loss {loss:.4f}")
                bar.update()

            stats = train(policy, x_train, y_train, cfg.bc, generator, on_epoch)
            predicted = policy.act(x_hold)

        accuracy = float(np.mean(predicted == y_hold))
        majority, baseline = majority_baseline(y_train, y_hold)
        gate = accuracy_gate(accuracy, cfg.bc.accuracy_threshold, baseline)
        metrics = {
            "accuracy": accuracy,
            "threshold": cfg.bc.accuracy_threshold,
            "majority_baseline": baseline,
            "majority_action": majority,
            "per_action_recall": per_action_recall(predicted, y_hold, spec.n_actions),
            "train": {"episodes": len(train_eps), "steps": demos.steps(train_eps)},
            "holdout": {
                "episodes": len(holdout_eps),
                "steps": demos.steps(holdout_eps),
                "names": [demos.refs[i].name for i in holdout_eps],
            },
            "train_accuracy": stats.train_accuracy,
            "train_loss": stats.epoch_losses[-1],
        }
        files = {"policy.pt": policy_bytes(policy)}
        meta = {
            "dataset": manifest.dataset,
            "seed": cfg.seed,
            "config_hash": cfg.hash(),
            "policy": spec.to_json(),
            "metrics": metrics,
            "parent": previous.id if previous else None,
            "config": cfg.to_document(),
        }
        if gate.passed:
            checkpoint = store.add("bc", files, meta)
            store.promote(checkpoint, {"stage": "bc", **metrics})
            promoted: str | None = checkpoint.id
        else:
            # Rollback: the store is never written; the failed checkpoint goes to the log dir.
            checkpoint = store.set_aside(cfg.output.log_dir / REJECTED_DIR, "bc", files, meta)
            promoted = previous.id if previous else None

        record = {
            "mode": "bc",
            "dataset": manifest.dataset,
            "run": self.run,
            "passed": gate.passed,
            "rolled_back": not gate.passed,
            **metrics,
            "epochs": cfg.bc.epochs,
            "seed": cfg.seed,
            "verified": self.verify,
            "config_hash": meta["config_hash"],
            "checkpoint": {
                "id": checkpoint.id,
                "path": os.path.relpath(checkpoint.path, cfg.output.log_dir),
                "status": "promoted" if gate.passed else "rejected",
            },
            "promoted_checkpoint": promoted,
            "reasons": gate.reasons,
            "started_at": started,
            "duration_s": round(time.perf_counter() - t0, 3),
        }
        log = append_record(cfg.output.log_dir, record)
        return BCResult(
            accuracy=accuracy,
            threshold=cfg.bc.accuracy_threshold,
            passed=gate.passed,
            rolled_back=not gate.passed,
            majority_baseline=baseline,
            per_action_recall=metrics["per_action_recall"],
            train_size=metrics["train"],
            holdout_size={k: metrics["holdout"][k] for k in ("episodes", "steps")},
            checkpoint=checkpoint.path,
            checkpoint_id=checkpoint.id,
            promoted_checkpoint=promoted,
            reasons=gate.reasons,
            log=log,
            record=record,
        )


def env_dims(env_id: str) -> tuple[int, int]:
    """Observation length and number of actions of a Gymnasium environment."""
    import gymnasium as gym

    from harness.datasets.recording import make_env

    env = make_env(env_id)
    try:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise HarnessError(
                f"env.id '{env_id}': BC needs a discrete action space, not {env.action_space}"
            )
        return gym.spaces.flatdim(env.observation_space), int(env.action_space.n)
    finally:
        env.close()
