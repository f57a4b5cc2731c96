"""The PPO module's parts against independent references: the anneal schedule, the loss (checked
against a plain torch.distributions formulation, as CleanRL writes it), GAE with next-step
autoreset, the rollout's masking, the regression gate and the gradient clipping."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.distributions import Categorical

from harness import load_config
from harness.training.evaluation import evaluate, regression_gate
from harness.training.optim import clip_grad_norm
from harness.training.policy import MLPPolicy, PolicySpec
from harness.training.ppo import bc_schedule, ppo_loss
from harness.training.rollout import (
    NumpyActor,
    RolloutCollector,
    advantages_and_returns,
    make_envs,
)

from .conftest import REPO

CFG = load_config(REPO / "configs" / "examples" / "poc_hybrid.yaml").ppo


# --- the schedule ----------------------------------------------------------------------------


def test_linear_schedule_runs_from_the_start_value_to_zero() -> None:
    assert bc_schedule(1.0, "linear", 5) == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert bc_schedule(2.0, "linear", 3) == [2.0, 1.0, 0.0]


def test_exponential_schedule_decays_fast_then_reaches_zero() -> None:
    coefs = bc_schedule(1.0, "exponential", 5)
    assert coefs[0] == pytest.approx(1.0) and coefs[-1] == 0.0
    assert all(a > b for a, b in itertools.pairwise(coefs))
    k = 5.0
    expected_mid = (math.exp(-k / 2) - math.exp(-k)) / (1 - math.exp(-k))
    assert coefs[2] == pytest.approx(expected_mid)
    # Front-loaded: below the linear schedule everywhere in between.
    linear = bc_schedule(1.0, "linear", 5)
    assert all(e < lin for e, lin in zip(coefs[1:-1], linear[1:-1], strict=True))


def test_one_epoch_keeps_the_start_value_and_bad_arguments_are_refused() -> None:
    assert bc_schedule(0.7, "linear", 1) == [0.7]
    assert bc_schedule(0.7, "exponential", 1) == [0.7]
    assert bc_schedule(0.0, "linear", 4) == [0.0] * 4
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        bc_schedule(1.0, "cosine", 3)
    with pytest.raises(ValueError, match="at least 1"):
        bc_schedule(1.0, "linear", 0)


# --- the loss --------------------------------------------------------------------------------


def _minibatch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = 64
    return {
        "logits": torch.randn(n, 3, generator=g),
        "actions": torch.randint(0, 3, (n,), generator=g),
        "old_logp": torch.log(torch.rand(n, generator=g) * 0.6 + 0.2),
        "advantages": torch.randn(n, generator=g) * 3 + 1,
        "values": torch.randn(n, generator=g),
        "returns": torch.randn(n, generator=g) * 5,
    }


def _loss(mb: dict[str, torch.Tensor], **kwargs: object) -> object:
    """``ppo_loss`` on a minibatch of logits, through the discrete policy's distribution."""
    policy = MLPPolicy(PolicySpec(4, mb["logits"].shape[1], (8,)))
    logp, entropy = policy.log_prob_entropy(mb["logits"], mb["actions"])
    rest = {k: v for k, v in mb.items() if k not in ("logits", "actions")}
    return ppo_loss(logp, entropy, **rest, **kwargs)  # type: ignore[arg-type]


def _reference_ppo_loss(mb: dict[str, torch.Tensor], cfg) -> torch.Tensor:  # type: ignore[no-untyped-def]
    dist = Categorical(logits=mb["logits"])
    ratio = (dist.log_prob(mb["actions"]) - mb["old_logp"]).exp()
    adv = mb["advantages"]
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
    v = 0.5 * ((mb["values"] - mb["returns"]) ** 2).mean()
    return pg - cfg.ent_coef * dist.entropy().mean() + cfg.vf_coef * v


def test_the_loss_matches_a_reference_ppo_loss() -> None:
    cfg = replace(CFG, ent_coef=0.01)
    mb = _minibatch()
    terms = _loss(mb, cfg=cfg)
    torch.testing.assert_close(terms.total, _reference_ppo_loss(mb, cfg))
    torch.testing.assert_close(terms.entropy, Categorical(logits=mb["logits"]).entropy().mean())
    assert 0.0 <= terms.clip_fraction.item() <= 1.0 and terms.approx_kl.item() >= 0.0


def test_a_zero_bc_coefficient_gives_plain_ppos_loss_and_gradients() -> None:
    mb = _minibatch(1)
    plain = _loss(mb, cfg=CFG)
    bc_term = torch.tensor(0.9)
    zero = _loss(mb, cfg=CFG, bc_coef=0.0, bc_term=bc_term)
    assert torch.equal(zero.total, plain.total)
    weighted = _loss(mb, cfg=CFG, bc_coef=0.5, bc_term=bc_term)
    torch.testing.assert_close(weighted.total, plain.total + 0.45)

    # Same gradients on a real network: c_t = 0 adds nothing to the update.
    def grads(bc_coef: float | None) -> list[torch.Tensor]:
        torch.manual_seed(0)
        policy = MLPPolicy(PolicySpec(4, 3, (8,)))
        obs = torch.randn(len(mb["actions"]), 4)
        logits = policy(obs)
        bc = None if bc_coef is None else torch.nn.functional.cross_entropy(logits, mb["actions"])
        terms = _loss({**mb, "logits": logits}, cfg=CFG, bc_coef=bc_coef or 0.0, bc_term=bc)
        terms.total.backward()
        return [p.grad.clone() for p in policy.parameters()]

    for ours, plain_grad in zip(grads(0.0), grads(None), strict=True):
        assert torch.equal(ours, plain_grad)
    assert any(not torch.equal(a, b) for a, b in zip(grads(1.0), grads(None), strict=True))


# --- GAE and the rollout ---------------------------------------------------------------------


def test_gae_bootstraps_truncations_but_not_terminations() -> None:
    gamma, lam = 0.9, 0.5
    rewards = np.array([[1.0], [1.0], [0.0]], dtype=np.float32)
    values = np.array([[2.0], [3.0], [10.0], [4.0]], dtype=np.float32)
    done = np.array([[False], [True], [False]])
    # Step 1 ends its episode: terminated, then truncated (value of the final obs is 10).
    for terminated, next_value in ((True, 0.0), (False, 10.0)):
        term = np.array([[False], [terminated], [False]])
        adv, ret = advantages_and_returns(rewards, values, term, done, gamma, lam)
        delta1 = 1.0 + gamma * next_value - 3.0
        delta0 = 1.0 + gamma * 3.0 - 2.0
        assert adv[1, 0] == pytest.approx(delta1)
        assert adv[0, 0] == pytest.approx(delta0 + gamma * lam * delta1)
        # The episode boundary stops the sum: step 2 does not reach back into step 1.
        assert adv[2, 0] == pytest.approx(0.0 + gamma * 4.0 - 10.0)
        np.testing.assert_allclose(ret, adv + values[:3])


def test_the_rollout_masks_reset_steps_and_counts_whole_episodes() -> None:
    torch.manual_seed(0)
    actor = MLPPolicy(PolicySpec(4, 2, (16,)))
    envs = make_envs("CartPole-v1", 4)
    try:
        collector = RolloutCollector(envs, 200, 3, torch.Generator().manual_seed(3))
        rollout = collector.collect(actor)
    finally:
        envs.close()
    assert rollout.obs.shape == (201, 4, 4) and rollout.actions.shape == (200, 4)
    # A random policy ends CartPole episodes within a few dozen steps.
    assert rollout.done.sum() >= 8
    # Exactly the steps right after an episode's end are invalid (next-step autoreset)...
    expected_valid = np.ones_like(rollout.valid)
    expected_valid[1:] = ~rollout.done[:-1]
    np.testing.assert_array_equal(rollout.valid, expected_valid)
    # ... and earn nothing; every reward of a valid step is CartPole's 1.
    assert (rollout.rewards[~rollout.valid] == 0).all() and (
        rollout.rewards[rollout.valid] == 1
    ).all()
    # Each ended episode's return is its length: from step 0, or from the step after the
    # reset step, to the step where it ended.
    started = np.zeros(4, dtype=int)
    expected = []
    for t in range(200):
        for env in np.flatnonzero(rollout.done[t]):
            expected.append(float(t - started[env] + 1))
            started[env] = t + 2
    assert rollout.episode_returns == expected


def test_the_numpy_actor_computes_the_torch_actors_logits() -> None:
    torch.manual_seed(1)
    actor = MLPPolicy(PolicySpec(4, 3, (32, 32)))
    obs = torch.randn(50, 4) * 2
    actor.fit_normaliser(obs)
    with torch.no_grad():
        expected = actor(obs).numpy()
    np.testing.assert_allclose(NumpyActor(actor).logits(obs.numpy()), expected, atol=1e-5)


def test_evaluation_is_seeded_and_scores_whole_greedy_episodes() -> None:
    torch.manual_seed(2)
    actor = MLPPolicy(PolicySpec(4, 2, (16,)))
    first = evaluate(actor, "CartPole-v1", 5, seed=7)
    assert evaluate(actor, "CartPole-v1", 5, seed=7) == first
    assert len(first) == 5 and all(1 <= r <= 500 for r in first)


# --- the gate and the clipping ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("mean", "baseline", "tolerance", "loss", "passed"),
    [
        (480.0, 500.0, 25.0, 1.0, True),  # within the tolerance
        (474.0, 500.0, 25.0, 1.0, False),  # lost more than the tolerance
        (500.0, 500.0, -1.0, 1.0, False),  # a negative tolerance demands an improvement
        (10.0, None, 25.0, 1.0, True),  # nothing to regress from
        (500.0, 500.0, 25.0, None, False),  # diverged
        (500.0, 500.0, 25.0, float("nan"), False),
    ],
)
def test_the_regression_gate(
    mean: float, baseline: float | None, tolerance: float, loss: float | None, passed: bool
) -> None:
    gate = regression_gate(mean, baseline, tolerance, loss)
    assert gate.passed is passed
    assert bool(gate.reasons) is not passed


def test_clip_grad_norm_matches_torch() -> None:
    torch.manual_seed(4)
    a, b = MLPPolicy(PolicySpec(4, 2, (16, 16))), MLPPolicy(PolicySpec(4, 2, (16, 16)))
    b.load_state_dict(a.state_dict())
    obs, actions = torch.randn(32, 4) * 10, torch.randint(0, 2, (32,))
    for policy in (a, b):
        torch.nn.functional.cross_entropy(policy(obs), actions).mul(100).backward()
    ours = clip_grad_norm(list(a.parameters()), 0.5)
    theirs = torch.nn.utils.clip_grad_norm_(list(b.parameters()), 0.5)
    torch.testing.assert_close(ours, theirs)
    assert ours > 0.5  # the clip was active
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)
