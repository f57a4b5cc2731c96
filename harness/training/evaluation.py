"""Scoring a policy: greedy evaluation episodes, their seeds and standard error, and the
regression gate that compares a fine-tuned policy with the promoted one on the same episodes.

Kept apart from ``ppo.py`` (the algorithm) because the BC stage's promotion, the benchmarks and
the gate use it without training anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from harness.envs import EnvSpec
from harness.training.policy import MLPPolicy
from harness.training.results import GateResult
from harness.training.rollout import NumpyActor, make_envs, step_actions

# Evaluation episodes are seeded apart from the training environments so that the regression
# gate never scores a policy on the episodes it was trained on.
EVAL_SEED_OFFSET = 10_000
# Each training seed gets its own block of evaluation episodes (``eval_seed``): runs with
# different seeds are scored on different episodes, so their figures are independent. A block
# holds more episodes than an evaluation may have (anneal.eval_episodes is at most 1000).
EVAL_SEED_STRIDE = 10_000


def eval_seed(seed: int) -> int:
    """The first evaluation episode's seed for a run with training seed ``seed``: episodes
    ``eval_seed(seed) + i`` belong to that run alone (and to no training environment, which
    are reset with ``seed + i``, i below ``ppo.num_envs``)."""
    return EVAL_SEED_OFFSET + seed * EVAL_SEED_STRIDE


@torch.no_grad()
def evaluate(actor: MLPPolicy, env: EnvSpec | str, episodes: int, seed: int) -> list[float]:
    """Return of one greedy episode in each of ``episodes`` environments reset with ``seed``.

    Two policies evaluated with the same ``seed`` face the same initial states, which is what the
    regression gate compares. Box actions are the mean, clipped to the bounds.
    """
    envs = make_envs(env, episodes)
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes)
        finished = np.zeros(episodes, dtype=bool)
        act = NumpyActor(actor)
        while not finished.all():
            obs, reward, term, trunc, _ = envs.step(step_actions(envs, act.greedy(obs), act))
            returns += np.where(finished, 0.0, reward)
            finished |= term | trunc
        return returns.tolist()
    finally:
        envs.close()


def standard_error(returns: Sequence[float]) -> float | None:
    """The standard error of the mean of ``returns`` (sample standard deviation over the square
    root of their number); None for fewer than two."""
    if len(returns) < 2:
        return None
    return float(np.std(returns, ddof=1) / math.sqrt(len(returns)))


def regression_gate(
    mean_return: float,
    baseline_mean_return: float | None,
    tolerance: float,
    loss_total: float | None,
) -> GateResult:
    """Pass unless training diverged or the new policy lost more than ``tolerance`` against the
    baseline (the promoted policy, scored on the same evaluation episodes).

    A negative tolerance demands an improvement of at least its size; with no baseline (an
    empty store) only divergence fails the gate.
    """
    reasons = []
    if loss_total is None or not math.isfinite(loss_total):
        reasons.append("the PPO loss is not finite: training diverged")
    if baseline_mean_return is not None and mean_return < baseline_mean_return - tolerance:
        reasons.append(
            f"mean return {mean_return:.1f} is below the required "
            f"{baseline_mean_return - tolerance:.1f} (the baseline's {baseline_mean_return:.1f} "
            f"minus anneal.regression_tolerance {tolerance:g})"
        )
    return GateResult(not reasons, reasons)
