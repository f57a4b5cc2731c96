"""What a training stage returns: its gate's outcome, its measurements, and what the finishing
path did with its checkpoint (promoted, or set aside on rollback) and logged."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch-backed; the results are importable without torch
    from harness.training.ppo import UpdateStats


@dataclass(frozen=True)
class GateResult:
    """Outcome of a stage's gate (BC accuracy, PPO regression) and, when it failed, why."""

    passed: bool
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class StageResult:
    """The fields every stage's result has: the gate's outcome and its consequence."""

    passed: bool
    """The stage's gate passed and its checkpoint was promoted."""
    rolled_back: bool
    """The gate failed: nothing was promoted, the store is as it was."""
    checkpoint: Path
    """The checkpoint written: in the store when promoted, in ``<log dir>/rejected/`` if not."""
    checkpoint_id: str
    promoted_checkpoint: str | None
    """The store's promoted checkpoint after the stage (unchanged on rollback)."""
    reasons: list[str]
    """Why the gate failed (empty when it passed)."""
    log: Path
    """The run log the stage's record was appended to."""
    record: dict[str, Any]
    """The record it appended."""


@dataclass(frozen=True, kw_only=True)
class BCResult(StageResult):
    """What ``run_bc_training`` measured and did."""

    accuracy: float
    """Accuracy of the trained policy on the hold-out episodes' frames: the share predicted
    exactly (Discrete), or within ``bc.action_tolerance`` of each dimension's range in every
    dimension (Box)."""
    threshold: float
    """The gate's ``bc.accuracy_threshold``."""
    action_space: str
    """``discrete`` or ``continuous``: which rule ``accuracy`` and ``baseline`` follow."""
    baseline: float
    """What the accuracy must beat: the hold-out accuracy of always predicting the training
    set's most frequent action (Discrete) or its mean action (Box), by the same rule."""
    baseline_rule: str
    """``majority_action`` or ``mean_action``."""
    per_action_recall: dict[str, float | None] | None
    """Discrete only (None for Box): each action's share of its hold-out frames predicted."""
    train_size: dict[str, int]
    holdout_size: dict[str, int]
    epoch_history: list[dict[str, Any]]
    """Per BC epoch: ``epoch`` (from 1), ``train_loss`` (its mean training loss; None if not
    finite) and ``holdout_accuracy`` (measured after it, by the gate's rule)."""
    mae_per_dimension: list[float] | None
    """Box only (None for Discrete): each action dimension's hold-out mean absolute error, as a
    fraction of its range (high - low)."""


@dataclass(frozen=True, kw_only=True)
class PPOResult(StageResult):
    """What the PPO stage measured and did."""

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
    ppo_log: Path | None


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
