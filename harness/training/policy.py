"""The policy network shared by BC and PPO: an MLP from (flattened) observations to an action
distribution.

``Discrete`` actions: the MLP returns logits, the distribution is categorical and the greedy
action is the argmax. ``Box`` actions: the MLP returns the mean of a diagonal Gaussian whose log
standard deviation is one learnt parameter per action dimension, independent of the state, as in
Stable-Baselines3 and CleanRL (initialised to 0, a standard deviation of 1 in action units, as
both do); the greedy action is the mean clipped to the bounds. Actions are in the environment's
own units, as in both libraries.

BC trains the network on the demonstrators' actions; PPO (mixed mode) starts from the BC weights,
so both stages must build the very same module from the same spec. The observation normaliser is
part of the module (buffers fitted on the BC training frames), so a checkpoint alone is enough to
act.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.envs import DISCRETE, action_kind

LOG_STD_INIT = 0.0
"""Initial log standard deviation of a Box policy (SB3's ``log_std_init`` default, CleanRL's)."""
_LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class PolicySpec:
    """What it takes to rebuild a policy from its weights, and to check it fits an environment.

    A ``Discrete`` spec has ``n_actions``; a ``Box`` spec has ``n_actions == 0`` and the flat
    bounds ``action_low`` / ``action_high`` (one entry per action dimension).
    """

    obs_dim: int
    """Length of the (flattened) observation vector."""
    n_actions: int
    """Number of discrete actions (0 for a Box action space)."""
    hidden_sizes: tuple[int, ...]
    """Width of each hidden layer (tanh activations)."""
    action_low: tuple[float, ...] = ()
    """Box only: the lower bound of each action dimension."""
    action_high: tuple[float, ...] = ()
    """Box only: the upper bound of each action dimension."""

    def __post_init__(self) -> None:
        box = len(self.action_low)
        if (self.n_actions > 0) == (box > 0) or box != len(self.action_high):
            raise ValueError(
                "a policy spec has either n_actions (Discrete) or matching bounds (Box): "
                f"n_actions={self.n_actions}, {box} low and {len(self.action_high)} high bound(s)"
            )

    @classmethod
    def box(
        cls, obs_dim: int, low: Sequence[float], high: Sequence[float], hidden: Sequence[int]
    ) -> PolicySpec:
        """A Gaussian policy for a Box action space with these (flattened) bounds."""
        return cls(obs_dim, 0, tuple(hidden), tuple(map(float, low)), tuple(map(float, high)))

    @classmethod
    def for_spaces(cls, obs_space: Any, action_space: Any, hidden: Sequence[int]) -> PolicySpec:
        """The spec for Gymnasium spaces that ``harness.envs.check_spaces`` accepted: a Box of
        observations (flattened) and a Discrete or bounded Box action space (flattened)."""
        obs_dim = int(np.prod(obs_space.shape))
        if action_kind(action_space) == DISCRETE:
            return cls(obs_dim, int(action_space.n), tuple(hidden))
        low, high = action_space.low.reshape(-1), action_space.high.reshape(-1)
        return cls.box(obs_dim, low.tolist(), high.tolist(), hidden)

    @property
    def continuous(self) -> bool:
        return bool(self.action_low)

    @property
    def kind(self) -> str:
        """``discrete`` or ``continuous``, as ``harness.envs.action_kind`` names them."""
        return "continuous" if self.continuous else "discrete"

    @property
    def action_dim(self) -> int:
        """Width of the network's output: the number of actions, or of action dimensions."""
        return len(self.action_low) or self.n_actions

    def to_json(self) -> dict[str, Any]:
        # A discrete spec keeps its original three keys: checkpoints and their ids do not change.
        if not self.continuous:
            return {
                "obs_dim": self.obs_dim,
                "n_actions": self.n_actions,
                "hidden_sizes": list(self.hidden_sizes),
            }
        return {
            "obs_dim": self.obs_dim,
            "action_space": "continuous",
            "action_dim": self.action_dim,
            "action_low": list(self.action_low),
            "action_high": list(self.action_high),
            "hidden_sizes": list(self.hidden_sizes),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PolicySpec:
        hidden = tuple(int(w) for w in doc["hidden_sizes"])
        if doc.get("action_space", "discrete") == "continuous":
            spec = cls.box(int(doc["obs_dim"]), doc["action_low"], doc["action_high"], hidden)
            if spec.action_dim != int(doc["action_dim"]):
                raise ValueError(f"action_dim {doc['action_dim']} but {spec.action_dim} bounds")
            return spec
        return cls(int(doc["obs_dim"]), int(doc["n_actions"]), hidden)

    def describe(self) -> str:
        """The spec in words, for error messages."""
        actions = (
            f"{self.n_actions} discrete actions"
            if not self.continuous
            else f"{self.action_dim}-dimensional Box actions in [{list(self.action_low)}, "
            f"{list(self.action_high)}]"
        )
        return f"{self.obs_dim} observation values and {actions}"


def layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights and constant bias, the usual initialisation for PPO's MLPs."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int, out_std: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [layer_init(nn.Linear(in_dim, width)), nn.Tanh()]
        in_dim = width
    layers.append(layer_init(nn.Linear(in_dim, out_dim), std=out_std))
    return nn.Sequential(*layers)


class MLPPolicy(nn.Module):
    """Observation normaliser followed by a tanh MLP: action logits (Discrete) or the Gaussian's
    mean (Box, with the state-independent ``log_std`` parameter)."""

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("obs_mean", torch.zeros(spec.obs_dim))
        self.register_buffer("obs_std", torch.ones(spec.obs_dim))
        # A small output layer keeps the initial action distribution near uniform (CleanRL), or
        # the initial mean near 0 (SB3 and CleanRL use the same 0.01 for the Gaussian's mean).
        self.net = mlp(spec.obs_dim, spec.hidden_sizes, spec.action_dim, out_std=0.01)
        if spec.continuous:
            # Only Box policies have it: a discrete policy's weights stay byte for byte as before.
            self.log_std = nn.Parameter(torch.full((spec.action_dim,), LOG_STD_INIT))
            low = torch.tensor(spec.action_low, dtype=torch.float32)
            high = torch.tensor(spec.action_high, dtype=torch.float32)
            # Derived from the spec, so not saved with the weights.
            self.register_buffer("action_low", low, persistent=False)
            self.register_buffer("action_high", high, persistent=False)
            self.register_buffer("half_range", (high - low) / 2, persistent=False)

    def fit_normaliser(self, obs: torch.Tensor) -> None:
        """Set the normaliser from training observations; a constant feature keeps scale 1."""
        std = obs.std(dim=0, unbiased=False)
        self.obs_mean.copy_(obs.mean(dim=0))
        self.obs_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def normalise(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations as the network sees them (PPO's value network shares this)."""
        return (obs - self.obs_mean) / self.obs_std

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits (Discrete) or the Gaussian's mean (Box) for a batch of flat observations."""
        return self.net(self.normalise(obs))

    def log_prob_entropy(
        self, out: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability of each action under the distribution ``out`` parametrises, and the
        distribution's mean entropy over the batch (Box: summed over the action dimensions)."""
        if not self.spec.continuous:
            logp_all = torch.log_softmax(out, dim=-1)
            logp = logp_all.gather(1, actions.unsqueeze(1)).squeeze(1)
            return logp, -(logp_all.exp() * logp_all).sum(-1).mean()
        return gaussian_log_prob_entropy(out, self.log_std, actions)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions for a batch of observations (any shape per observation: flattened)."""
        out = self(torch.as_tensor(obs, dtype=torch.float32).reshape(len(obs), -1))
        if self.spec.continuous:
            return torch.clamp(out, self.action_low, self.action_high).numpy()
        return out.argmax(dim=-1).numpy()


def gaussian_log_prob_entropy(
    mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Diagonal Gaussian: log N(actions; mean, exp(log_std)^2) summed over the dimensions, and
    the entropy sum(log_std + (1 + log 2 pi) / 2), which does not depend on the state."""
    z = (actions - mean) * torch.exp(-log_std)
    logp = (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)
    return logp, (log_std + 0.5 * (1.0 + _LOG_2PI)).sum()


def policy_bytes(module: nn.Module) -> bytes:
    """A policy's (or PPO's value network's) weights as ``torch.save`` bytes: a checkpoint payload."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.getvalue()


def load_policy(spec: PolicySpec, payload: bytes) -> MLPPolicy:
    """Rebuild a policy from its spec and ``policy_bytes`` output (weights only, no pickle code)."""
    policy = MLPPolicy(spec)
    state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    policy.load_state_dict(state)
    policy.eval()
    return policy
