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
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.config import Config, load_config
from harness.datasets.checksums import load_sheet
from harness.datasets.integrity import verify
from harness.datasets.manifest import Manifest, load_manifest
from harness.errors import HarnessError, IntegrityError
from harness.formatting import and_more, utc_now
from harness.progress import progress_bar
from harness.training.checkpoints import Checkpoint, CheckpointStore, load_checkpoint
from harness.training.runlog import append_record, finite_or_none, log_path, ppo_log_writer

if TYPE_CHECKING:  # torch-backed types; the facade does not import torch until it trains
    from harness.training.bc import GateResult
    from harness.training.policy import MLPPolicy, PolicySpec
    from harness.training.ppo import UpdateStats

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


@dataclass(frozen=True)
class PPOResult:
    """What the PPO stage measured and did; ``record`` is the line it logged."""

    passed: bool
    """The regression gate passed: the new policy was promoted."""
    rolled_back: bool
    """The gate failed: the store is as it was (the BC checkpoint stays promoted in mixed mode)."""
    loss_total: float | None
    """The last update's mean total loss (None if it was not finite)."""
    mean_return: float
    """Greedy mean return of the new policy on the evaluation episodes."""
    returns: list[float]
    baseline_checkpoint: str | None
    """The policy the gate compared against (the BC checkpoint in mixed mode), if any."""
    baseline_mean_return: float | None
    baseline_returns: list[float] | None
    updates: list[UpdateStats]
    """One entry per PPO update: the lines of the PPO log."""
    checkpoint: Path
    checkpoint_id: str
    promoted_checkpoint: str | None
    reasons: list[str]
    log: Path
    ppo_log: Path | None
    record: dict[str, Any]


@dataclass(frozen=True)
class MixedResult:
    """The two stages of a mixed run; ``ppo`` is None when the BC gate failed (no PPO ran)."""

    bc: BCResult
    ppo: PPOResult | None

    @property
    def passed(self) -> bool:
        return self.bc.passed and self.ppo is not None and self.ppo.passed

    @property
    def rolled_back(self) -> bool:
        return not self.passed


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
        return self._bc_stage(self.load_dataset())[0]

    def run_mixed_training(self, ppo_log: str | os.PathLike[str] | None = None) -> MixedResult:
        """BC and its gate; if it passed, PPO from the BC checkpoint with the BC loss annealed.

        ``ppo_log`` is the JSON Lines file of the PPO updates. A failed BC gate runs no PPO.
        """
        ppo_log = self._check_ppo_log(ppo_log)
        manifest = self.load_dataset()
        bc, demos = self._bc_stage(manifest)
        if not bc.passed:
            return MixedResult(bc, None)
        # PPO starts from the BC checkpoint and is gated against it.
        start = load_checkpoint(bc.checkpoint, verify=True)
        return MixedResult(bc, self._ppo_stage(manifest, "mixed", start, start, demos, ppo_log))

    def run_ppo_training(self, ppo_log: str | os.PathLike[str] | None = None) -> PPOResult:
        """PPO from scratch (no BC start, no BC term), gated against the promoted checkpoint."""
        ppo_log = self._check_ppo_log(ppo_log)
        manifest = self.load_dataset()
        baseline = CheckpointStore(self.config.output.checkpoint_dir).promoted()
        return self._ppo_stage(manifest, "ppo", None, baseline, None, ppo_log)

    # --- the stages -----------------------------------------------------------------------

    def _check_ppo_log(self, ppo_log: str | os.PathLike[str] | None) -> Path | None:
        if ppo_log is None:
            return None
        path = Path(ppo_log).absolute()
        if path.is_dir():
            raise HarnessError(f"{path}: --ppo-log names a folder, not a file")
        if path == log_path(self.config.output.log_dir).absolute():
            raise HarnessError(
                f"{path}: --ppo-log names the run log; give the PPO log its own file"
            )
        if path.is_relative_to(self.config.output.checkpoint_dir.absolute()):
            raise HarnessError(
                f"{path}: the PPO log would be written inside the checkpoint store "
                f"({self.config.output.checkpoint_dir}), which a rollback must leave unchanged"
            )
        return path

    def _bc_stage(self, manifest: Manifest) -> tuple[BCResult, tuple[np.ndarray, np.ndarray]]:
        """The BC stage on a loaded manifest; also returns every accepted frame (PPO's BC term)."""
        # Torch is imported here, on first training, not when the facade is imported.
        from harness.training.bc import (
            accuracy_gate,
            load_demonstrations,
            majority_baseline,
            per_action_recall,
            split_by_episode,
            train,
        )
        from harness.training.policy import MLPPolicy, PolicySpec, policy_bytes
        from harness.training.seeding import deterministic

        cfg = self.config
        started, t0 = utc_now(), time.perf_counter()
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
        fields = {**metrics, "epochs": cfg.bc.epochs}
        checkpoint, promoted, record = self._conclude(
            "bc", manifest, gate, store, files, meta, {"stage": "bc", **metrics}, previous, fields
        )
        record["started_at"], record["duration_s"] = started, round(time.perf_counter() - t0, 3)
        log = append_record(cfg.output.log_dir, record)
        result = BCResult(
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
        return result, demos.frames(range(len(demos.refs)))

    def _ppo_stage(
        self,
        manifest: Manifest,
        cli_mode: str,
        init: Checkpoint | None,
        baseline: Checkpoint | None,
        demos: tuple[np.ndarray, np.ndarray] | None,
        ppo_log: Path | None,
    ) -> PPOResult:
        """PPO from ``init`` (or from scratch), then the regression gate against ``baseline``
        (``None``: nothing to regress from), then promotion or rollback."""
        from harness.training.policy import MLPPolicy, PolicySpec, policy_bytes
        from harness.training.ppo import (
            EVAL_SEED_OFFSET,
            ActorCritic,
            bc_schedule,
            evaluate,
            make_envs,
            regression_gate,
            train,
        )
        from harness.training.seeding import deterministic

        cfg = self.config
        started, t0 = utc_now(), time.perf_counter()
        spec = PolicySpec(*env_dims(cfg.env.id), hidden_sizes=cfg.bc.hidden_sizes)
        store = CheckpointStore(cfg.output.checkpoint_dir)
        baseline_policy = _checkpoint_policy(baseline, spec) if baseline else None
        if demos is not None:
            coefs = bc_schedule(cfg.anneal.bc_coef_start, cfg.anneal.schedule, cfg.ppo.epochs)
        else:
            coefs = [0.0] * cfg.ppo.epochs

        with (
            deterministic(cfg.seed) as generator,
            progress_bar(cfg.ppo.epochs, f"ppo {manifest.dataset}", unit="epoch") as bar,
            ppo_log_writer(ppo_log) as write_line,
        ):
            actor = _checkpoint_policy(init, spec) if init else MLPPolicy(spec)
            model = ActorCritic(actor, cfg.ppo.hidden_sizes)

            def on_update(stats: UpdateStats) -> None:
                line = {
                    k: finite_or_none(v) if isinstance(v, float) else v
                    for k, v in stats.to_json().items()
                }
                write_line({"mode": cli_mode, "dataset": manifest.dataset, "run": self.run, **line})
                if stats.mean_episode_return is not None:  # else keep the last one shown
                    bar.set_postfix_str(f"return {stats.mean_episode_return:.0f}")
                bar.update()

            envs = make_envs(cfg.env.id, cfg.ppo.num_envs)
            train_started = time.perf_counter()
            try:
                history = train(model, envs, cfg.ppo, coefs, cfg.seed, generator, demos, on_update)
            finally:
                envs.close()
            train_seconds = time.perf_counter() - train_started
            eval_seed = cfg.seed + EVAL_SEED_OFFSET
            returns = evaluate(actor, cfg.env.id, cfg.anneal.eval_episodes, eval_seed)
            baseline_returns = (
                evaluate(baseline_policy, cfg.env.id, cfg.anneal.eval_episodes, eval_seed)
                if baseline_policy is not None
                else None
            )

        last = history[-1]
        loss_total = finite_or_none(last.loss_total)
        mean_return = float(np.mean(returns))
        baseline_mean = float(np.mean(baseline_returns)) if baseline_returns else None
        tolerance = cfg.anneal.regression_tolerance
        gate = regression_gate(mean_return, baseline_mean, tolerance, loss_total)
        elapsed = time.perf_counter() - t0
        metrics = {
            "loss_total": loss_total,
            "updates": len(history),
            "env_steps": last.env_steps,
            "steps_per_second": round(last.env_steps / train_seconds, 1),
            "bc_coef_start": cfg.anneal.bc_coef_start if demos is not None else None,
            "schedule": cfg.anneal.schedule if demos is not None else None,
            "final_training_return": last.mean_episode_return,
            "mean_return": mean_return,
            "eval_returns": returns,
            "eval_episodes": cfg.anneal.eval_episodes,
            "eval_seed": eval_seed,
            "baseline_checkpoint": baseline.id if baseline else None,
            "baseline_mean_return": baseline_mean,
            "baseline_returns": baseline_returns,
            "regression_tolerance": tolerance,
        }
        files = {"policy.pt": policy_bytes(actor), "value.pt": policy_bytes(model.critic)}
        meta = {
            "dataset": manifest.dataset,
            "seed": cfg.seed,
            "config_hash": cfg.hash(),
            "policy": actor.spec.to_json(),
            "value_hidden_sizes": list(cfg.ppo.hidden_sizes),
            "metrics": metrics,
            "parent": baseline.id if baseline else None,
            "init_checkpoint": init.id if init else None,
            "config": cfg.to_document(),
        }
        fields = {
            "cli_mode": cli_mode,
            "init_checkpoint": init.id if init else None,
            **metrics,
            "ppo_log": os.path.relpath(ppo_log, cfg.output.log_dir) if ppo_log else None,
        }
        gate_record = {
            "stage": "ppo",
            **{k: metrics[k] for k in ("mean_return", "baseline_mean_return")},
            "tolerance": tolerance,
        }
        checkpoint, promoted, record = self._conclude(
            "ppo", manifest, gate, store, files, meta, gate_record, baseline, fields
        )
        record["started_at"], record["duration_s"] = started, round(elapsed, 3)
        log = append_record(cfg.output.log_dir, record)
        return PPOResult(
            passed=gate.passed,
            rolled_back=not gate.passed,
            loss_total=loss_total,
            mean_return=mean_return,
            returns=returns,
            baseline_checkpoint=baseline.id if baseline else None,
            baseline_mean_return=baseline_mean,
            baseline_returns=baseline_returns,
            updates=history,
            checkpoint=checkpoint.path,
            checkpoint_id=checkpoint.id,
            promoted_checkpoint=promoted,
            reasons=gate.reasons,
            log=log,
            ppo_log=ppo_log,
            record=record,
        )

    def _conclude(
        self,
        stage: str,
        manifest: Manifest,
        gate: GateResult,
        store: CheckpointStore,
        files: dict[str, bytes],
        meta: dict[str, Any],
        gate_record: dict[str, Any],
        previous: Checkpoint | None,
        fields: dict[str, Any],
    ) -> tuple[Checkpoint, str | None, dict[str, Any]]:
        """Promote the stage's checkpoint, or roll back; return it, the promoted id and the
        stage's record (``fields`` in the middle, timings left to the caller)."""
        cfg = self.config
        if gate.passed:
            checkpoint = store.add(stage, files, meta)
            store.promote(checkpoint, gate_record)
            promoted = checkpoint.id
        else:
            # Rollback: the store is never written; the failed checkpoint goes to the log dir.
            checkpoint = store.set_aside(cfg.output.log_dir / REJECTED_DIR, stage, files, meta)
            promoted = previous.id if previous else None
        record = {
            "mode": stage,
            "dataset": manifest.dataset,
            "run": self.run,
            "passed": gate.passed,
            "rolled_back": not gate.passed,
            **fields,
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
        }
        return checkpoint, promoted, record


def _checkpoint_policy(checkpoint: Checkpoint, spec: PolicySpec) -> MLPPolicy:
    """The policy of a checkpoint, refused if it does not act in the config's environment."""
    from harness.training.policy import PolicySpec, load_policy

    saved = PolicySpec.from_json(checkpoint.meta["policy"])
    if (saved.obs_dim, saved.n_actions) != (spec.obs_dim, spec.n_actions):
        raise HarnessError(
            f"{checkpoint.path}: checkpoint {checkpoint.id} is a policy for {saved.obs_dim} "
            f"observations and {saved.n_actions} actions; the environment has {spec.obs_dim} "
            f"and {spec.n_actions}"
        )
    return load_policy(saved, checkpoint.file("policy.pt").read_bytes())


def env_dims(env_id: str) -> tuple[int, int]:
    """Observation length and number of actions of a Gymnasium environment."""
    import gymnasium as gym

    from harness.envs import make_env

    env = make_env(env_id)
    try:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise HarnessError(
                f"env.id '{env_id}': BC needs a discrete action space, not {env.action_space}"
            )
        return gym.spaces.flatdim(env.observation_space), int(env.action_space.n)
    finally:
        env.close()
