"""The BC formulas on their own: the episode split, the baseline, recall, the gate, the loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.training.bc import (
    accuracy_gate,
    bc_loss,
    majority_baseline,
    per_action_recall,
    split_by_episode,
)
from harness.training.policy import MLPPolicy, PolicySpec, load_policy, policy_bytes


@given(st.integers(2, 200), st.floats(0.01, 0.99), st.integers(0, 2**31))
def test_split_is_a_partition_of_whole_episodes(n: int, holdout: float, seed: int) -> None:
    train, hold = split_by_episode(n, holdout, seed)
    assert sorted(train + hold) == list(range(n))
    assert hold and train
    assert len(hold) == min(max(1, round(holdout * n)), n - 1)
    assert split_by_episode(n, holdout, seed) == (train, hold)


def test_split_depends_on_the_seed_and_refuses_a_single_episode() -> None:
    splits = {tuple(split_by_episode(10, 0.2, seed)[1]) for seed in range(20)}
    assert len(splits) > 5
    with pytest.raises(HarnessError, match="at least 2"):
        split_by_episode(1, 0.2, 0)


def test_majority_baseline_is_the_training_majority_scored_on_the_holdout() -> None:
    train = np.array([0] * 9 + [1])
    hold = np.array([0, 0, 1, 1])
    assert majority_baseline(train, hold) == (0, 0.5)
    assert majority_baseline(np.array([1, 1, 0]), np.array([1, 1, 1, 0])) == (1, 0.75)


def test_per_action_recall_names_absent_actions() -> None:
    recall = per_action_recall(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), 3)
    assert recall == {"0": pytest.approx(2 / 3), "1": 1.0, "2": None}


@pytest.mark.parametrize(
    ("accuracy", "threshold", "baseline", "passed", "why"),
    [
        (0.90, 0.80, 0.50, True, []),
        (0.80, 0.80, 0.50, True, []),  # the threshold is inclusive
        (0.79, 0.80, 0.50, False, ["below the threshold"]),
        # Always predicting the majority action of an imbalanced dataset clears the threshold
        # but must not pass.
        (0.90, 0.80, 0.90, False, ["majority-class baseline"]),
        (0.88, 0.80, 0.90, False, ["majority-class baseline"]),
        (0.70, 0.80, 0.90, False, ["below the threshold", "majority-class baseline"]),
    ],
)
def test_accuracy_gate(
    accuracy: float, threshold: float, baseline: float, passed: bool, why: list[str]
) -> None:
    gate = accuracy_gate(accuracy, threshold, baseline)
    assert gate.passed is passed
    assert len(gate.reasons) == len(why)
    for reason, fragment in zip(gate.reasons, why, strict=True):
        assert fragment in reason


def test_bc_loss_is_the_cross_entropy_of_the_demonstrated_actions() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    actions = torch.tensor([0, 0])
    expected = -(math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(1 / (1 + math.e))) / 2
    policy = MLPPolicy(PolicySpec(3, 2, (4,)))
    assert bc_loss(policy, logits, actions).item() == pytest.approx(expected, rel=1e-6)


def test_a_policy_survives_its_checkpoint_bytes() -> None:
    torch.manual_seed(0)
    spec = PolicySpec(4, 2, (8, 8))
    policy = MLPPolicy(spec)
    obs = torch.randn(32, 4) * torch.tensor([1.0, 5.0, 0.1, 0.0]) + 3.0
    policy.fit_normaliser(obs)
    assert policy.obs_std[3] == 1.0  # a constant feature is not divided by zero
    payload = policy_bytes(policy)
    again = load_policy(spec, payload)
    assert torch.equal(again(obs), policy(obs))
    assert policy_bytes(again) == payload  # serialising is deterministic: content-addressed ids
