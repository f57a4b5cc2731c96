"""Scripted demonstrators: the controllers whose behaviour the captures record.

A demonstrator maps an observation to an action. ``noise`` is the probability that, at a step,
the recorded action is drawn uniformly from the action space instead of the controller's choice:
it models the slips of a human demonstrator (a late or wrong key press). Because a uniform draw
can coincide with the controller's action, the share of steps that disagree with the controller is
about ``noise * (1 - 1/n)`` for ``n`` actions (7.5 % for CartPole at ``noise=0.15``); that share
bounds the accuracy any behaviour-cloned policy can reach on the capture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Controller = Callable[[np.ndarray], int]


def cartpole_heuristic(obs: np.ndarray) -> int:
    """Push the cart toward the side the pole is falling to, with a little cart-centring.

    A linear state-feedback rule (gains found by hand); without noise it holds CartPole-v1 for the
    full 500 steps from every start state tried.
    """
    x, x_dot, theta, theta_dot = (float(v) for v in obs)
    return int(0.5 * x + 1.0 * x_dot + 10.0 * theta + 3.0 * theta_dot > 0.0)


def idle(obs: np.ndarray) -> int:
    """An operator who never touches the controls: always the first action."""
    return 0


@dataclass(frozen=True)
class DemonstratorSpec:
    name: str
    controller: Controller | None  # None: every action uniformly random
    description: str


# Demonstrators per environment id; ``idle`` and ``random`` work for any discrete action space.
_GENERIC = {
    "idle": DemonstratorSpec("idle", idle, "always action 0 (an operator who left the controls)"),
    "random": DemonstratorSpec("random", None, "uniformly random actions"),
}
DEMONSTRATORS: dict[str, dict[str, DemonstratorSpec]] = {
    "CartPole-v1": {
        "heuristic": DemonstratorSpec(
            "heuristic", cartpole_heuristic, "linear state feedback on pole angle and cart motion"
        ),
    },
}


def available(env_id: str) -> dict[str, DemonstratorSpec]:
    """The demonstrators that can drive ``env_id``."""
    return {**DEMONSTRATORS.get(env_id, {}), **_GENERIC}


def act(
    spec: DemonstratorSpec, obs: np.ndarray, n_actions: int, noise: float, rng: np.random.Generator
) -> int:
    """The recorded action: the controller's, or with probability ``noise`` a uniform one."""
    # Two draws every step, whatever the branch, keep the random stream aligned across noise levels.
    slip = rng.random() < noise
    uniform = int(rng.integers(n_actions))
    if spec.controller is None or slip:
        return uniform
    return spec.controller(obs)
