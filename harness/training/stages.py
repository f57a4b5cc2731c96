"""The training stages: BC and PPO each train, measure and gate, then take the one finishing
path (``finishing.finish``). ``TrainingHarness`` (``facade``) decides which stages run; the
formulas live in ``bc`` and ``ppo``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.config import Config
from harness.datasets.manifest import Manifest
from harness.envs import check_spaces
from harness.errors import HarnessError
from harness.formatting import utc_now
from harness.progress import progress_bar
from harness.training.bc import (
    Demonstrations,
    TrainStats,
    accuracy_gate,
    action_accuracy,
    load_demonstrations,
    majority_baseline,
    mean_action_baseline,
    per_action_recall,
    range_scaled_mae,
    regression_figures,
    split_by_episode,
)
from harness.training.bc import train as train_bc
from harness.training.checkpoints import Checkpoint, CheckpointStore
from harness.training.distributed import current, on_writer
from harness.training.evaluation import eval_seed, evaluate, regression_gate, standard_error
from harness.training.finishing import Finishing, StageContext, finish
from harness.training.policy import MLPPolicy, PolicySpec, policy_bytes
from harness.training.ppo import ActorCritic, BCTerm, UpdateStats
from harness.training.ppo import train as train_ppo
from harness.training.results import BCResult, PPOResult
from harness.training.rollout import make_envs
from harness.training.runlog import finite_or_none, ppo_log_writer
from harness.training.seeding import deterministic
from harness.training.weights import checkpoint_policy

if TYPE_CHECKING:
    from harness.training.tensorboard_events import StageEvents

Frames = tuple[np.ndarray, np.ndarray]


# --- BC ----------------------------------------------------------------------------------------


def bc_stage(ctx: StageContext, manifest: Manifest) -> tuple[BCResult, Frames]:
    """Train BC on the accepted captures, gate it, finish; also return every accepted frame
    (the BC term of a PPO stage that follows)."""
    cfg = ctx.config
    started, t0 = utc_now(), time.perf_counter()
    spec, obs_shape, action_shape = env_policy(cfg)
    # Read the store before training: a damaged store is refused before any work is done.
    store = CheckpointStore(cfg.output.checkpoint_dir)
    previous = store.promoted()

    demos = load_demonstrations(manifest, spec, obs_shape, action_shape)
    train_eps, holdout_eps = split_by_episode(len(demos.refs), cfg.bc.holdout, cfg.seed)
    x_train, y_train = demos.frames(train_eps)
    x_hold, y_hold = demos.frames(holdout_eps)
    policy, stats, predicted, history = _train_bc(
        ctx, manifest.dataset, spec, (x_train, y_train), (x_hold, y_hold)
    )

    split = (train_eps, holdout_eps)
    metrics = _bc_metrics(cfg, spec, demos, split, stats, predicted, y_train, y_hold)
    accuracy, rule = metrics["accuracy"], metrics["baseline_rule"]
    baseline = metrics[BASELINE_KEYS[rule]]
    finishing = Finishing(
        stage="bc",
        gate=accuracy_gate(accuracy, cfg.bc.accuracy_threshold, baseline, rule),
        files={"policy.pt": policy_bytes(policy)},
        model={"policy": spec.to_json()},
        metrics=metrics,
        parent=previous,
        lineage={},
        # Not in ``metrics``: the checkpoint (and its id) stays as it was without them.
        fields={**metrics, "epochs": cfg.bc.epochs, **history},
        gate_record={"stage": "bc", **metrics},
        started=started,
        t0=t0,
    )
    # Rank 0 promotes and logs; the other ranks of a torchrun job wait for its outcome.
    done = on_writer(lambda: finish(ctx, manifest, store, finishing))
    result = BCResult(
        **vars(done),
        accuracy=accuracy,
        threshold=cfg.bc.accuracy_threshold,
        action_space=spec.kind,
        baseline=baseline,
        baseline_rule=rule,
        per_action_recall=metrics.get("per_action_recall"),
        train_size=metrics["train"],
        holdout_size={k: metrics["holdout"][k] for k in ("episodes", "steps")},
        epoch_history=history["epoch_history"],
        mae_per_dimension=history.get("mae_per_dimension"),
    )
    return result, demos.frames(range(len(demos.refs)))


# The record's key for the baseline of each rule: discrete records keep their original key.
BASELINE_KEYS = {"majority_action": "majority_baseline", "mean_action": "mean_action_baseline"}


def _bc_metrics(
    cfg: Config,
    spec: PolicySpec,
    demos: Demonstrations,
    split: tuple[list[int], list[int]],
    stats: TrainStats,
    predicted: np.ndarray,
    y_train: np.ndarray,
    y_hold: np.ndarray,
) -> dict[str, Any]:
    """The BC stage's figures, as its record, its checkpoint and the promotion keep them."""
    train_eps, holdout_eps = split
    return {
        "action_space": spec.kind,
        "accuracy": action_accuracy(spec, predicted, y_hold, cfg.bc.action_tolerance),
        "threshold": cfg.bc.accuracy_threshold,
        **_baseline_metrics(cfg, spec, predicted, y_train, y_hold),
        "train": {"episodes": len(train_eps), "steps": demos.steps(train_eps)},
        "holdout": {
            "episodes": len(holdout_eps),
            "steps": demos.steps(holdout_eps),
            "names": [demos.refs[i].name for i in holdout_eps],
        },
        "train_accuracy": stats.train_accuracy,
        "train_loss": stats.epoch_losses[-1],
    }


def _baseline_metrics(
    cfg: Config, spec: PolicySpec, predicted: np.ndarray, y_train: np.ndarray, y_hold: np.ndarray
) -> dict[str, Any]:
    """What the gate compares against, and the figures each action kind adds."""
    if not spec.continuous:
        majority, baseline = majority_baseline(y_train, y_hold)
        return {
            "baseline_rule": "majority_action",
            "majority_baseline": baseline,
            "majority_action": majority,
            "per_action_recall": per_action_recall(predicted, y_hold, spec.n_actions),
        }
    tolerance = cfg.bc.action_tolerance
    mean_action, baseline = mean_action_baseline(spec, y_train, y_hold, tolerance)
    mse, r2 = regression_figures(predicted, y_hold)
    return {
        "baseline_rule": "mean_action",
        "action_tolerance": tolerance,
        "mean_action_baseline": baseline,
        "mean_action": mean_action,
        "mse": mse,
        "r2": r2,
    }


def _train_bc(
    ctx: StageContext, dataset: str, spec: PolicySpec, train: Frames, holdout: Frames
) -> tuple[MLPPolicy, TrainStats, np.ndarray, dict[str, Any]]:
    """A new policy trained under the config's seed, its greedy actions on the hold-out, and
    the record's history: each epoch's training loss and hold-out accuracy (``epoch_history``)
    and, for Box actions, the hold-out error of each dimension (``mae_per_dimension``)."""
    cfg = ctx.config
    x_hold, y_hold = holdout
    epochs: list[dict[str, Any]] = []
    events = _events(ctx, "bc")
    with (
        deterministic(cfg.seed) as generator,
        progress_bar(cfg.bc.epochs, f"bc {dataset}", unit="epoch", enabled=ctx.progress) as bar,
    ):
        policy = MLPPolicy(spec)

        def on_epoch(epoch: int, loss: float) -> None:
            # Greedy and under no_grad: draws no random number, so training is as without it.
            held = action_accuracy(spec, policy.act(x_hold), y_hold, cfg.bc.action_tolerance)
            epochs.append(
                {"epoch": epoch + 1, "train_loss": finite_or_none(loss), "holdout_accuracy": held}
            )
            if events is not None:
                events.bc_epoch(epoch + 1, loss, held)
            bar.set_postfix_str(f"loss {loss:.4f}")
            bar.update()

        stats = train_bc(policy, *train, cfg.bc, generator, on_epoch)
        predicted = policy.act(x_hold)
    if events is not None:
        events.write()
    history: dict[str, Any] = {"epoch_history": epochs}
    if spec.continuous:
        history["mae_per_dimension"] = range_scaled_mae(spec, predicted, y_hold)
    return policy, stats, predicted, history


# --- PPO ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PPORun:
    """What PPO training and the evaluations of a PPO stage produced."""

    actor: MLPPolicy
    model: ActorCritic
    history: list[UpdateStats]
    train_seconds: float
    eval_seed: int
    returns: list[float]
    baseline_returns: list[float] | None


def ppo_stage(
    ctx: StageContext,
    manifest: Manifest,
    cli_mode: str,
    init: Checkpoint | None,
    baseline: Checkpoint | None,
    demos: Frames | None,
    ppo_log: Path | None,
) -> PPOResult:
    """PPO from ``init`` (or from scratch), with the BC term on ``demos`` if given; then the
    regression gate against ``baseline`` (``None``: nothing to regress from), and finish."""
    cfg = ctx.config
    started, t0 = utc_now(), time.perf_counter()
    spec = env_policy(cfg)[0]
    store = CheckpointStore(cfg.output.checkpoint_dir)
    baseline_policy = _checkpoint_policy(baseline, spec) if baseline else None
    bc = None if demos is None else BCTerm.from_config(*demos, cfg.anneal)
    run = _run_ppo(ctx, manifest, cli_mode, spec, init, baseline_policy, bc, ppo_log)

    def finish_stage() -> PPOResult:  # rank 0 only under torchrun: it evaluated, it gates
        metrics = _ppo_metrics(cfg, run, bc, baseline)
        done = finish(
            ctx,
            manifest,
            store,
            _ppo_finishing(ctx, cli_mode, run, metrics, init, baseline, ppo_log, (started, t0)),
        )
        return PPOResult(
            **vars(done),
            loss_total=metrics["loss_total"],
            mean_return=metrics["mean_return"],
            returns=run.returns,
            baseline_checkpoint=baseline.id if baseline else None,
            baseline_mean_return=metrics["baseline_mean_return"],
            baseline_returns=run.baseline_returns,
            updates=run.history,
            ppo_log=ppo_log,
        )

    return on_writer(finish_stage)


def _ppo_finishing(
    ctx: StageContext,
    cli_mode: str,
    run: PPORun,
    metrics: dict[str, Any],
    init: Checkpoint | None,
    baseline: Checkpoint | None,
    ppo_log: Path | None,
    clock: tuple[str, float],
) -> Finishing:
    """What the PPO stage hands to ``finish``: the actor and critic, gated on the evaluation."""
    cfg = ctx.config
    init_id = init.id if init else None
    mean_return, baseline_mean = metrics["mean_return"], metrics["baseline_mean_return"]
    tolerance = cfg.anneal.regression_tolerance
    return Finishing(
        stage="ppo",
        gate=regression_gate(mean_return, baseline_mean, tolerance, metrics["loss_total"]),
        files={"policy.pt": policy_bytes(run.actor), "value.pt": policy_bytes(run.model.critic)},
        model={
            "policy": run.actor.spec.to_json(),
            "value_hidden_sizes": list(cfg.ppo.hidden_sizes),
        },
        metrics=metrics,
        parent=baseline,
        lineage={"init_checkpoint": init_id},
        fields={
            "cli_mode": cli_mode,
            "init_checkpoint": init_id,
            **metrics,
            "ppo_log": os.path.relpath(ppo_log, cfg.output.log_dir) if ppo_log else None,
        },
        gate_record={
            "stage": "ppo",
            "mean_return": mean_return,
            "baseline_mean_return": baseline_mean,
            "tolerance": tolerance,
        },
        started=clock[0],
        t0=clock[1],
    )


def _ppo_metrics(
    cfg: Config, run: PPORun, bc: BCTerm | None, baseline: Checkpoint | None
) -> dict[str, Any]:
    """The PPO stage's figures, as its record and its checkpoint keep them."""
    last = run.history[-1]
    return {
        "loss_total": finite_or_none(last.loss_total),
        "updates": len(run.history),
        "env_steps": last.env_steps,
        "steps_per_second": round(last.env_steps / run.train_seconds, 1),
        "bc_coef_start": bc.coef_start if bc else None,
        "schedule": bc.schedule if bc else None,
        "final_training_return": last.mean_episode_return,
        "mean_return": float(np.mean(run.returns)),
        "eval_stderr": standard_error(run.returns),
        "eval_returns": run.returns,
        "eval_episodes": cfg.anneal.eval_episodes,
        "eval_seed": run.eval_seed,
        "baseline_checkpoint": baseline.id if baseline else None,
        "baseline_mean_return": (
            float(np.mean(run.baseline_returns)) if run.baseline_returns else None
        ),
        "baseline_stderr": standard_error(run.baseline_returns or []),
        "baseline_returns": run.baseline_returns,
        "regression_tolerance": cfg.anneal.regression_tolerance,
    }


def _run_ppo(
    ctx: StageContext,
    manifest: Manifest,
    cli_mode: str,
    spec: PolicySpec,
    init: Checkpoint | None,
    baseline_policy: MLPPolicy | None,
    bc: BCTerm | None,
    ppo_log: Path | None,
) -> PPORun:
    """Train under the config's seed, one PPO log line per update; then evaluate the new policy
    and the baseline greedily on the same seeded episodes."""
    cfg, world = ctx.config, current()
    with (
        deterministic(cfg.seed) as generator,
        progress_bar(
            cfg.ppo.epochs, f"ppo {manifest.dataset}", unit="epoch", enabled=ctx.progress
        ) as bar,
        ppo_log_writer(ppo_log if world.writer else None) as write_line,
    ):
        actor = _checkpoint_policy(init, spec) if init else MLPPolicy(spec)
        model = ActorCritic(actor, cfg.ppo.hidden_sizes)
        events = _events(ctx, "ppo")
        log_line = _ppo_log_line(cli_mode, manifest.dataset, ctx.run, write_line, bar, events)
        # Under torchrun each rank steps its share of the environments.
        envs = make_envs(cfg.env.spec(), cfg.ppo.num_envs // world.size)
        train_started = time.perf_counter()
        try:
            history = train_ppo(model, envs, cfg.ppo, cfg.seed, generator, bc, log_line)
        finally:
            envs.close()
        train_seconds = time.perf_counter() - train_started
        first_episode = eval_seed(cfg.seed)
        episodes = cfg.anneal.eval_episodes
        returns, baseline_returns = [], None  # evaluated once, by rank 0
        if world.writer:
            returns = evaluate(actor, cfg.env.spec(), episodes, first_episode)
            baseline_returns = (
                evaluate(baseline_policy, cfg.env.spec(), episodes, first_episode)
                if baseline_policy is not None
                else None
            )
        if events is not None:
            events.ppo_evaluation(history[-1].env_steps, float(np.mean(returns)))
            events.write()
    return PPORun(actor, model, history, train_seconds, first_episode, returns, baseline_returns)


def _ppo_log_line(
    cli_mode: str,
    dataset: str,
    run: str,
    write_line: Callable[[dict[str, Any]], None],
    bar: Any,
    events: StageEvents | None = None,
) -> Callable[[UpdateStats], None]:
    """The per-update callback: one PPO log line (NaN and infinity as null), one bar tick, and
    with ``output.tensorboard`` one TensorBoard event."""

    def on_update(stats: UpdateStats) -> None:
        line = {
            k: finite_or_none(v) if isinstance(v, float) else v for k, v in stats.to_json().items()
        }
        write_line({"mode": cli_mode, "dataset": dataset, "run": run, **line})
        if events is not None:
            events.ppo_update(stats)
        if stats.mean_episode_return is not None:  # else keep the last one shown
            bar.set_postfix_str(f"return {stats.mean_episode_return:.0f}")
        bar.update()

    return on_update


def _events(ctx: StageContext, stage: str) -> StageEvents | None:
    """The stage's TensorBoard events with ``output.tensorboard``, written by rank 0 alone (the
    one writer of a torchrun job); off, nothing is imported."""
    if not ctx.config.output.tensorboard or not current().writer:
        return None
    from harness.training.tensorboard_events import StageEvents, event_file

    return StageEvents(event_file(ctx.config.output.log_dir, stage))


# --- the environment and checkpoints as the policy sees them ---------------------------------


def _checkpoint_policy(checkpoint: Checkpoint, spec: PolicySpec) -> MLPPolicy:
    """The policy of a checkpoint, refused if it does not act in the config's environment
    (action kind, observation and action sizes, and for Box actions the bounds)."""
    saved = PolicySpec.from_json(checkpoint.meta["policy"])
    if replace(saved, hidden_sizes=spec.hidden_sizes) != spec:
        raise HarnessError(
            f"{checkpoint.path}: checkpoint {checkpoint.id} is a policy for {saved.describe()}; "
            f"the environment has {spec.describe()}"
        )
    return checkpoint_policy(checkpoint, saved)  # size, sha256, archive, shapes: one line if bad


def env_policy(cfg: Config) -> tuple[PolicySpec, tuple[int, ...], tuple[int, ...]]:
    """The policy spec for the config's environment, with the environment's observation and
    action shapes (what the captures hold per step); refuses what the trainer cannot learn."""
    obs_space, act_space, _ = check_spaces(cfg.env.spec())
    spec = PolicySpec.for_spaces(obs_space, act_space, cfg.bc.hidden_sizes)
    return spec, obs_space.shape, act_space.shape
