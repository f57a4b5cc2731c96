"""Behaviour cloning: demonstrations, the hold-out split by episode, the trainer and the gate.

The formulas are plain functions (``split_by_episode``, ``bc_loss``, ``majority_baseline``,
``per_action_recall``, ``accuracy_gate``) so that tests and the PPO stage can use them alone;
``stages.bc_stage`` wires them to the dataset, and ``finishing.finish`` to the checkpoint store
and the run log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from harness.config import BCConfig
from harness.datasets.capture import read_capture
from harness.datasets.manifest import Manifest
from harness.errors import HarnessError
from harness.training.optim import Adam
from harness.training.policy import MLPPolicy
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

    def frames(self, episodes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Observations and actions of the given episodes, concatenated."""
        return (
            np.concatenate([self.obs[i] for i in episodes]).astype(np.float32, copy=False),
            np.concatenate([self.actions[i] for i in episodes]).astype(np.int64, copy=False),
        )

    def steps(self, episodes: Sequence[int]) -> int:
        return sum(self.refs[i].steps for i in episodes)


def load_demonstrations(manifest: Manifest, obs_dim: int, n_actions: int) -> Demonstrations:
    """Read every accepted capture; refuse observations or actions that do not fit the env."""
    refs: list[EpisodeRef] = []
    obs: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    for entry in manifest.accepted():
        path = manifest.capture_path(entry)
        _, episodes = read_capture(path)
        for k, episode in enumerate(episodes):
            if episode.obs.ndim != 2 or episode.obs.shape[1] != obs_dim:
                raise HarnessError(
                    f"{path}: demo_{k}: observations of shape {episode.obs.shape}, "
                    f"the environment's are ({obs_dim},) per step"
                )
            if len(episode) and (episode.actions.min() < 0 or episode.actions.max() >= n_actions):
                raise HarnessError(
                    f"{path}: demo_{k}: actions outside the environment's 0..{n_actions - 1}"
                )
            refs.append(EpisodeRef(entry.id, k, len(episode)))
            obs.append(episode.obs)
            actions.append(episode.actions)
    return Demonstrations(refs, obs, actions)


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


def bc_loss(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Behaviour-cloning loss: cross-entropy of the demonstrators' actions under the policy."""
    return F.cross_entropy(logits, actions)


def majority_baseline(train_actions: np.ndarray, holdout_actions: np.ndarray) -> tuple[int, float]:
    """The training set's most frequent action and the hold-out accuracy of always choosing it.

    On an imbalanced dataset this is high, and a model that learnt nothing reaches it.
    """
    majority = int(np.bincount(train_actions).argmax())
    return majority, float(np.mean(holdout_actions == majority))


def per_action_recall(
    predicted: np.ndarray, actual: np.ndarray, n_actions: int
) -> dict[str, float | None]:
    """For each action, the share of its hold-out frames predicted right (None if absent)."""
    recall: dict[str, float | None] = {}
    for a in range(n_actions):
        mask = actual == a
        recall[str(a)] = float(np.mean(predicted[mask] == a)) if mask.any() else None
    return recall


def accuracy_gate(accuracy: float, threshold: float, baseline: float) -> GateResult:
    """Pass when accuracy reaches the threshold AND beats always-the-majority-action."""
    reasons = []
    if accuracy < threshold:
        reasons.append(f"accuracy {accuracy:.4f} is below the threshold {threshold:g}")
    if accuracy <= baseline:
        reasons.append(
            f"accuracy {accuracy:.4f} does not beat the majority-class baseline {baseline:.4f}"
        )
    return GateResult(not reasons, reasons)


@dataclass(frozen=True)
class TrainStats:
    epoch_losses: list[float]
    """Mean training loss of each epoch."""
    train_accuracy: float
    """Accuracy on the training frames after the last epoch."""


def train(
    policy: MLPPolicy,
    obs: np.ndarray,
    actions: np.ndarray,
    cfg: BCConfig,
    generator: torch.Generator,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainStats:
    """Minibatch Adam on ``bc_loss`` for ``cfg.epochs`` passes over the training frames.

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
            loss = bc_loss(policy(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        losses.append(total / len(x))
        if on_epoch:
            on_epoch(epoch, losses[-1])
    policy.eval()
    return TrainStats(losses, float(np.mean(policy.act(obs) == actions)))
