"""Behaviour cloning: demonstrations, the hold-out split by episode, the trainer and the gate.

The formulas are plain functions (``split_by_episode``, ``bc_loss``, ``action_accuracy``,
``majority_baseline`` and ``per_action_recall`` for Discrete actions, ``mean_action_baseline``,
``regression_figures`` and ``range_scaled_mae`` for Box actions, ``accuracy_gate``) so that tests and the PPO stage
can use them alone; ``stages.bc_stage`` wires them to the dataset, and ``finishing.finish`` to
the checkpoint store and the run log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness.config import BCConfig
from harness.datasets.capture import read_capture
from harness.datasets.manifest import Manifest
from harness.errors import HarnessError
from harness.formatting import clip
from harness.training.optim import Adam
from harness.training.policy import MLPPolicy, PolicySpec
from harness.training.results import GateResult


@dataclass(frozen=True)
class EpisodeRef:
    """Where an episode came from: ``<capture id>/demo_<k>``."""

    capture: str
    index: int
    steps: int

    @property
    def name(self) -> str:
        return f"{self.capture}/demo_{self.index}"


@dataclass(frozen=True)
class Demonstrations:
    """The episodes of a dataset's accepted captures, in manifest order."""

    refs: list[EpisodeRef]
    obs: list[np.ndarray]
    actions: list[np.ndarray]
    continuous: bool = False
    """Box actions: float rows of the action dimensions, not action indices."""

    def frames(self, episodes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Observations (flattened) and actions (Box: flattened) of the given episodes."""
        obs = np.concatenate([self.obs[i] for i in episodes])
        actions = np.concatenate([self.actions[i] for i in episodes])
        obs = obs.reshape(len(obs), -1).astype(np.float32, copy=False)
        if self.continuous:
            return obs, actions.reshape(len(actions), -1).astype(np.float32, copy=False)
        return obs, actions.astype(np.int64, copy=False)

    def steps(self, episodes: Sequence[int]) -> int:
        return sum(self.refs[i].steps for i in episodes)


def load_demonstrations(
    manifest: Manifest,
    spec: PolicySpec,
    obs_shape: tuple[int, ...] | None = None,
    action_shape: tuple[int, ...] | None = None,
) -> Demonstrations:
    """Read every accepted capture; refuse observations or actions that do not fit the env.

    ``obs_shape`` and ``action_shape`` are the environment's (default: flat, as in ``spec``).
    """
    obs_shape = tuple(obs_shape or (spec.obs_dim,))
    if action_shape is None:
        action_shape = (spec.action_dim,) if spec.continuous else ()
    refs: list[EpisodeRef] = []
    obs: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    for entry in manifest.accepted():
        path = manifest.capture_path(entry)
        meta, episodes = read_capture(path)
        if meta.env_spec() != manifest.env_spec():
            raise HarnessError(
                f"{path}: recorded in {clip(str(meta.env_spec()))}, but dataset "
                f"'{manifest.dataset}' says {clip(str(manifest.env_spec()))}"
            )
        for k, episode in enumerate(episodes):
            if episode.obs.shape[1:] != obs_shape:
                raise HarnessError(
                    f"{path}: demo_{k}: observations of shape {episode.obs.shape}, "
                    f"the environment's are {obs_shape} per step"
                )
            _check_actions(path, k, episode.actions, spec, tuple(action_shape))
            refs.append(EpisodeRef(entry.id, k, len(episode)))
            obs.append(episode.obs)
            actions.append(episode.actions)
    return Demonstrations(refs, obs, actions, spec.continuous)


def _check_actions(
    path: Path, k: int, actions: np.ndarray, spec: PolicySpec, shape: tuple[int, ...]
) -> None:
    if spec.continuous:
        if actions.shape[1:] != shape or not np.issubdtype(actions.dtype, np.floating):
            raise HarnessError(
                f"{path}: demo_{k}: actions of shape {actions.shape} ({actions.dtype}), the "
                f"environment's are float vectors of shape {shape}"
            )
        return
    if actions.ndim != 1 or not np.issubdtype(actions.dtype, np.integer):
        raise HarnessError(
            f"{path}: demo_{k}: actions of shape {actions.shape} ({actions.dtype}), the "
            f"environment's are integers 0..{spec.n_actions - 1}, one per step"
        )
    if len(actions) and (actions.min() < 0 or actions.max() >= spec.n_actions):
        raise HarnessError(
            f"{path}: demo_{k}: actions outside the environment's 0..{spec.n_actions - 1}"
        )


def split_by_episode(n_episodes: int, holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of training and hold-out episodes: a seeded shuffle of whole episodes.

    Never split by frame: consecutive frames of an episode are near copies, so a frame split
    puts neighbours of every test frame in the training set and flatters accuracy.
    """
    if n_episodes < 2:
        raise HarnessError(
            f"{n_episodes} accepted episode(s): a hold-out split by episode needs at least 2"
        )
    # At least one episode on each side, whatever the fraction.
    n_holdout = min(max(1, round(holdout * n_episodes)), n_episodes - 1)
    order = np.random.default_rng(seed).permutation(n_episodes)
    return sorted(order[n_holdout:].tolist()), sorted(order[:n_holdout].tolist())


def bc_loss(policy: MLPPolicy, out: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Behaviour-cloning loss of the network output ``out`` against the demonstrated actions.

    Discrete: the cross-entropy of the demonstrators' actions under the policy.

    Box: ``scaled_mse``, the mean squared error between the Gaussian's mean and the demonstrated
    action, each dimension divided by its half-range. For a Gaussian of fixed standard deviation
    this is its negative log-likelihood up to constants, so BC fits the mean and leaves the log
    standard deviation at its initial value, the exploration PPO starts from (a full likelihood
    would shrink it towards the demonstrators' noise and PPO would barely explore). Scaling by
    the half-range makes a dimension ranging over [-100, 100] count as much as one over [-1, 1].
    """
    if policy.spec.continuous:
        return scaled_mse(out, actions, policy.half_range)
    return F.cross_entropy(out, actions)


def scaled_mse(mean: torch.Tensor, actions: torch.Tensor, half_range: torch.Tensor) -> torch.Tensor:
    """mean over frames and dimensions of ((mean - action) / half_range)^2."""
    return ((mean - actions) / half_range).pow(2).mean()


def action_accuracy(
    spec: PolicySpec, predicted: np.ndarray, actual: np.ndarray, tolerance: float
) -> float:
    """The share of frames whose predicted action counts as the demonstrated one.

    Discrete: the same action. Box: within ``tolerance`` times (high - low) of it in every
    dimension (``within_tolerance``).
    """
    if not spec.continuous:
        return float(np.mean(predicted == actual))
    return float(np.mean(within_tolerance(spec, predicted, actual, tolerance)))


def within_tolerance(
    spec: PolicySpec, predicted: np.ndarray, actual: np.ndarray, tolerance: float
) -> np.ndarray:
    """Per frame: is every dimension of the Box action within ``tolerance`` of its range?"""
    width = np.asarray(spec.action_high, dtype=np.float64) - np.asarray(spec.action_low)
    error = np.abs(np.asarray(predicted, dtype=np.float64) - actual)
    return np.all(error <= tolerance * width, axis=-1)


def majority_baseline(train_actions: np.ndarray, holdout_actions: np.ndarray) -> tuple[int, float]:
    """The training set's most frequent action and the hold-out accuracy of always choosing it.

    On an imbalanced dataset this is high, and a model that learnt nothing reaches it.
    """
    majority = int(np.bincount(train_actions).argmax())
    return majority, float(np.mean(holdout_actions == majority))


def mean_action_baseline(
    spec: PolicySpec, train_actions: np.ndarray, holdout_actions: np.ndarray, tolerance: float
) -> tuple[list[float], float]:
    """Box: the training actions' mean, and the hold-out accuracy of always predicting it.

    The continuous counterpart of the majority class: a policy that ignores its observations
    reaches it, so the gate demands more. Scored by the same rule as the policy.
    """
    mean = np.mean(train_actions, axis=0, dtype=np.float64)
    constant = np.broadcast_to(mean, holdout_actions.shape)
    return mean.tolist(), action_accuracy(spec, constant, holdout_actions, tolerance)


def regression_figures(predicted: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """Box hold-out figures: the mean squared error (action units, over frames and dimensions)
    and R^2, the coefficient of determination of each dimension averaged over the dimensions
    (as scikit-learn's ``r2_score``; a dimension constant on the hold-out scores 1.0 if predicted
    exactly, else 0.0)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    residual = ((actual - predicted) ** 2).sum(axis=0)
    total = ((actual - actual.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(total > 0, 1.0 - residual / total, np.where(residual == 0, 1.0, 0.0))
    return float(np.mean((actual - predicted) ** 2)), float(np.mean(r2))


def range_scaled_mae(spec: PolicySpec, predicted: np.ndarray, actual: np.ndarray) -> list[float]:
    """Box hold-out figure per dimension: the mean absolute error as a fraction of the
    dimension's range (high - low), the unit ``bc.action_tolerance`` is given in."""
    width = np.asarray(spec.action_high, dtype=np.float64) - np.asarray(spec.action_low)
    error = np.abs(np.asarray(predicted, dtype=np.float64) - actual).reshape(len(actual), -1)
    return (error.mean(axis=0) / width.reshape(-1)).tolist()


def per_action_recall(
    predicted: np.ndarray, actual: np.ndarray, n_actions: int
) -> dict[str, float | None]:
    """For each action, the share of its hold-out frames predicted right (None if absent)."""
    recall: dict[str, float | None] = {}
    for a in range(n_actions):
        mask = actual == a
        recall[str(a)] = float(np.mean(predicted[mask] == a)) if mask.any() else None
    return recall


BASELINE_NAMES = {"majority_action": "majority-class", "mean_action": "mean-action"}
"""The gate's baseline rules (the run log's ``baseline_rule``) as its reasons name them."""


def accuracy_gate(
    accuracy: float, threshold: float, baseline: float, rule: str = "majority_action"
) -> GateResult:
    """Pass when accuracy reaches the threshold AND beats the baseline: always-the-majority-
    action (Discrete) or always-the-mean-action (Box)."""
    reasons = []
    if accuracy < threshold:
        reasons.append(f"accuracy {accuracy:.4f} is below the threshold {threshold:g}")
    if accuracy <= baseline:
        reasons.append(
            f"accuracy {accuracy:.4f} does not beat the {BASELINE_NAMES[rule]} baseline "
            f"{baseline:.4f}"
        )
    return GateResult(not reasons, reasons)


@dataclass(frozen=True)
class TrainStats:
    epoch_losses: list[float]
    """Mean training loss of each epoch."""
    train_accuracy: float
    """Accuracy on the training frames after the last epoch (``action_accuracy``)."""


def train(
    policy: MLPPolicy,
    obs: np.ndarray,
    actions: np.ndarray,
    cfg: BCConfig,
    generator: torch.Generator,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainStats:
    """Minibatch Adam on ``bc_loss`` for ``cfg.epochs`` passes over the training frames (Box:
    the Gaussian's mean only; the log standard deviation gets no gradient).

    Trains for a fixed number of epochs and never looks at the hold-out set, which only the gate
    sees: choosing the epoch by hold-out accuracy would turn the gate's test set into a
    validation set and flatter the figure it reports.
    """
    x = torch.as_tensor(obs)
    y = torch.as_tensor(actions)
    policy.fit_normaliser(x)
    optimiser = Adam(policy.parameters(), lr=cfg.lr)
    losses: list[float] = []
    policy.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            loss = bc_loss(policy, policy(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        losses.append(total / len(x))
        if on_epoch:
            on_epoch(epoch, losses[-1])
    policy.eval()
    predicted = policy.act(obs)
    return TrainStats(
        losses, action_accuracy(policy.spec, predicted, actions, cfg.action_tolerance)
    )
