"""The policy network shared by BC and PPO: an MLP from observations to action logits.

BC trains it with a cross-entropy loss on the demonstrators' actions; PPO (mixed mode) starts from
the BC weights, so both stages must build the very same module from the same spec. The
observation normaliser is part of the module (buffers fitted on the BC training frames), so a
checkpoint alone is enough to act.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class PolicySpec:
    """What it takes to rebuild a policy from its weights."""

    obs_dim: int
    """Length of the (flat) observation vector."""
    n_actions: int
    """Number of discrete actions."""
    hidden_sizes: tuple[int, ...]
    """Width of each hidden layer (tanh activations)."""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "hidden_sizes": list(self.hidden_sizes)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PolicySpec:
        return cls(int(doc["obs_dim"]), int(doc["n_actions"]), tuple(doc["hidden_sizes"]))


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
    """Observation normaliser followed by a tanh MLP that returns action logits."""

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("obs_mean", torch.zeros(spec.obs_dim))
        self.register_buffer("obs_std", torch.ones(spec.obs_dim))
        # A small output layer keeps the initial action distribution near uniform (CleanRL).
        self.net = mlp(spec.obs_dim, spec.hidden_sizes, spec.n_actions, out_std=0.01)

    def fit_normaliser(self, obs: torch.Tensor) -> None:
        """Set the normaliser from training observations; a constant feature keeps scale 1."""
        std = obs.std(dim=0, unbiased=False)
        self.obs_mean.copy_(obs.mean(dim=0))
        self.obs_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def normalise(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations as the network sees them (PPO's value network shares this)."""
        return (obs - self.obs_mean) / self.obs_std

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalise(obs))

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions for a batch of observations."""
        logits = self(torch.as_tensor(obs, dtype=torch.float32))
        return logits.argmax(dim=-1).numpy()


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
