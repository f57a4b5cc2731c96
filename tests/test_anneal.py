"""The anneal of the BC term inside PPO: the coefficient per minibatch step and per update, the
anneal's length, the critic warm-up, and the evaluation episodes each training seed owns.

Real CartPole environments and real PPO updates on a tiny rollout; the schedule's formulas are
checked against values worked out by hand."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from harness import load_config
from harness.training.evaluation import EVAL_SEED_OFFSET, eval_seed, standard_error
from harness.training.policy import MLPPolicy, PolicySpec
from harness.training.ppo import (
    ActorCritic,
    BCTerm,
    UpdateStats,
    bc_coef_at,
    bc_schedule,
    train,
)
from harness.training.rollout import make_envs
from harness.training.seeding import deterministic

from .conftest import REPO

CFG = replace(
    load_config(REPO / "configs" / "examples" / "poc_hybrid.yaml").ppo,
    num_envs=2,
    num_steps=32,
    minibatch_size=16,
    update_epochs=2,
)
SPEC = PolicySpec(obs_dim=4, n_actions=2, hidden_sizes=(8,))


def test_the_coefficient_at_a_point_of_the_run() -> None:
    assert [bc_coef_at(2.0, "linear", x) for x in (0.0, 0.25, 1.0)] == [2.0, 1.5, 0.0]
    # length 0.5: the anneal is over at the middle of the run, plain PPO after it.
    assert [bc_coef_at(1.0, "linear", x, 0.5) for x in (0.25, 0.5, 0.9)] == [0.5, 0.0, 0.0]
    k = 5.0
    expected = (math.exp(-k * 0.5) - math.exp(-k)) / (1 - math.exp(-k))
    assert bc_coef_at(1.0, "exponential", 0.5) == pytest.approx(expected)
    assert bc_coef_at(1.0, "exponential", 1.0) == 0.0
    with pytest.raises(ValueError, match="unknown schedule"):
        bc_coef_at(1.0, "cosine", 0.5)


def test_per_update_coefficients_are_the_epoch_schedule() -> None:
    term = BCTerm(np.zeros((1, 4)), np.zeros(1), 1.0, "linear", "update")
    assert [c(0.0) for c in term.coefficients(5)] == bc_schedule(1.0, "linear", 5)
    assert [c(1.0) for c in term.coefficients(5)] == bc_schedule(1.0, "linear", 5)


def test_per_minibatch_coefficients_run_through_each_update() -> None:
    term = BCTerm(np.zeros((1, 4)), np.zeros(1), 1.0, "linear", "minibatch")
    first, second = term.coefficients(2)
    assert (first(0.0), first(1.0), second(0.0), second(1.0)) == (1.0, 0.5, 0.5, 0.0)
    (only,) = term.coefficients(1)
    assert (only(0.0), only(0.5), only(1.0)) == (1.0, 0.5, 0.0)


def _run(bc: BCTerm | None, epochs: int) -> list[UpdateStats]:
    cfg = replace(CFG, epochs=epochs)
    with deterministic(0) as generator:
        model = ActorCritic(MLPPolicy(SPEC), (8,))
        envs = make_envs("CartPole-v1", cfg.num_envs)
        try:
            history = train(model, envs, cfg, 0, generator, bc)
        finally:
            envs.close()
    return history


def _copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _demos() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 2, 64)


def test_one_update_anneals_from_the_start_to_zero() -> None:
    history = _run(BCTerm(*_demos(), 0.8, "linear"), epochs=1)
    (stats,) = history
    assert (stats.bc_coef, stats.bc_coef_end, stats.critic_only) == (0.8, 0.0, False)
    assert stats.loss_bc is not None and stats.loss_bc > 0


def test_the_critic_warm_up_leaves_the_policy_where_bc_left_it() -> None:
    history = _run(BCTerm(*_demos(), 1.0, "linear", critic_warmup=2), 2)
    # Two epochs, warm-up 2: one warm-up update, and always at least one policy update.
    assert [s.critic_only for s in history] == [True, False]
    assert (history[0].bc_coef, history[0].loss_bc) == (0.0, None)
    assert (history[1].bc_coef, history[1].bc_coef_end) == (1.0, 0.0)

    history = _run(BCTerm(*_demos(), 1.0, "linear", critic_warmup=5), 1)
    assert [s.critic_only for s in history] == [False]

    history = _run(BCTerm(*_demos(), 1.0, "linear", critic_warmup=1), 1)
    assert not history[0].critic_only  # all but one: a one-epoch run has no warm-up


def test_warm_up_updates_move_the_critic_only() -> None:
    cfg = replace(CFG, epochs=3)
    bc = BCTerm(*_demos(), 1.0, "linear", critic_warmup=2)
    with deterministic(0) as generator:
        actor = MLPPolicy(SPEC)
        model = ActorCritic(actor, (8,))
        before = _copy(model)
        seen: list[dict[str, torch.Tensor]] = []
        envs = make_envs("CartPole-v1", cfg.num_envs)
        try:
            train(model, envs, cfg, 0, generator, bc, lambda _: seen.append(_copy(model)))
        finally:
            envs.close()
    after_warmup = seen[1]
    for key, value in before.items():
        moved = not torch.equal(value, after_warmup[key])
        if key.startswith("critic.") and key.endswith("weight"):
            assert moved, key
        if key.startswith("actor."):
            assert not moved, key
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if "actor" in k)


def test_each_training_seed_owns_its_evaluation_episodes() -> None:
    assert eval_seed(0) == EVAL_SEED_OFFSET
    blocks = [range(eval_seed(s), eval_seed(s) + 1000) for s in range(5)]
    for a, b in itertools.pairwise(blocks):
        assert a.stop <= b.start  # 1000 episodes (the schema's maximum) never reach the next
    assert all(block.start > 5 + 1024 for block in blocks)  # nor a training env's seed


def test_standard_error() -> None:
    assert standard_error([1.0, 3.0]) == pytest.approx(1.0)  # sd sqrt(2), over sqrt(2)
    assert standard_error([5.0]) is None
