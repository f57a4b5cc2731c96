"""Demonstrators: the controllers whose behaviour the captures record.

A demonstrator is called as ``demonstrator(env, observation) -> action`` with the *unwrapped*
environment: the signature of Gymnasium's own scripted lander,
``gymnasium.envs.box2d.lunar_lander:heuristic``, so that it and a team's own controllers work as
they are. ``--demonstrator`` takes a name (``heuristic``, ``idle``, ``random``) or
``module:callable``.

``noise`` is the probability that, at a step, the recorded action is drawn uniformly from the
action space instead of the controller's choice: it models the slips of a human demonstrator (a
late or wrong key press). For ``n`` discrete actions a uniform draw can coincide with the
controller's action, so the share of steps that disagree with the controller is about
``noise * (1 - 1/n)`` (7.5 % for CartPole at ``noise=0.15``); that share bounds the accuracy any
behaviour-cloned policy can reach on the capture.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import HarnessError

Controller = Callable[[Any, np.ndarray], Any]
"""``controller(unwrapped_env, observation) -> action``."""


def cartpole_heuristic(obs: np.ndarray) -> int:
    """Push the cart toward the side the pole is falling to, with a little cart-centring.

    A linear state-feedback rule (gains found by hand); without noise it holds CartPole-v1 for the
    full 500 steps from every start state tried.
    """
    x, x_dot, theta, theta_dot = (float(v) for v in obs)
    return int(0.5 * x + 1.0 * x_dot + 10.0 * theta + 3.0 * theta_dot > 0.0)


def _lunar_lander_heuristic(env: Any, obs: np.ndarray) -> Any:
    # Imported on use: Box2D is only needed by those who record the lander.
    from gymnasium.envs.box2d.lunar_lander import heuristic

    return heuristic(env, obs)


def idle(env: Any, obs: np.ndarray) -> Any:
    """An operator who never touches the controls: the first action, or the zero vector
    (clipped into the bounds) for continuous actions."""
    space = env.action_space
    if hasattr(space, "n"):
        return int(space.start)
    return np.clip(np.zeros(space.shape, dtype=space.dtype), space.low, space.high)


@dataclass(frozen=True)
class DemonstratorSpec:
    name: str
    controller: Controller | None  # None: every action uniformly random
    description: str


# The scripted controllers known by name, per environment id; ``idle`` and ``random`` work for
# any environment.
_GENERIC = {
    "idle": DemonstratorSpec("idle", idle, "no input: action 0, or zero for continuous actions"),
    "random": DemonstratorSpec("random", None, "uniformly random actions"),
}
HEURISTICS: dict[str, DemonstratorSpec] = {
    "CartPole-v1": DemonstratorSpec(
        "heuristic",
        lambda env, obs: cartpole_heuristic(obs),
        "linear state feedback on pole angle and cart motion",
    ),
    "LunarLander-v3": DemonstratorSpec(
        "heuristic",
        _lunar_lander_heuristic,
        "Gymnasium's scripted lander (discrete or continuous=True)",
    ),
}


def available(env_id: str) -> dict[str, DemonstratorSpec]:
    """The demonstrators known by name that can drive ``env_id``."""
    base = env_id.rpartition(":")[2]  # "module:EnvId" has EnvId's heuristic, if any
    named = {"heuristic": HEURISTICS[base]} if base in HEURISTICS else {}
    return {**named, **_GENERIC}


def _import_callable(text: str) -> DemonstratorSpec:
    module_name, _, attr = text.partition(":")
    if not module_name or not attr:
        raise HarnessError(f"--demonstrator '{text}': expected a name or module:callable")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise HarnessError(
            f"--demonstrator '{text}': cannot import {module_name} ({exc})"
        ) from None
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise HarnessError(f"--demonstrator '{text}': {module_name} has no '{attr}'")
    if not callable(target):
        raise HarnessError(f"--demonstrator '{text}': '{attr}' is not callable")
    return DemonstratorSpec(text, target, f"{text}(env, observation)")


def resolve_demonstrator(name: str, env_id: str) -> DemonstratorSpec:
    """A demonstrator by name (``available``) or ``module:callable``; one line if neither."""
    if ":" in name:
        return _import_callable(name)
    specs = available(env_id)
    if name not in specs:
        raise HarnessError(
            f"no demonstrator '{name}' for {env_id}; available: {', '.join(sorted(specs))}, "
            "or module:callable"
        )
    return specs[name]


class ActionSource:
    """The recorded action at each step: the controller's, or with probability ``noise`` a
    seeded uniform sample of the action space."""

    def __init__(self, spec: DemonstratorSpec, env: Any, noise: float, seed: int) -> None:
        self.spec, self.env, self.noise = spec, env, noise
        self.space = env.action_space
        self.discrete = hasattr(self.space, "n")
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: np.ndarray) -> Any:
        # Two draws every step, whatever the branch, keep the random stream aligned across noise
        # levels (the same seed slips at the same steps).
        slip = self.rng.random() < self.noise
        if self.discrete:
            uniform: Any = int(self.space.start) + int(self.rng.integers(int(self.space.n)))
        else:
            uniform = self.rng.uniform(self.space.low, self.space.high).astype(self.space.dtype)
        if self.spec.controller is None or slip:
            return uniform
        try:
            action = self.spec.controller(self.env.unwrapped, obs)
        except (Exception, SystemExit) as exc:  # the team's own code: its failure is one line
            text = " ".join(str(exc).split())[:200]
            raise HarnessError(
                f"demonstrator '{self.spec.name}' failed: {type(exc).__name__}: {text}"
            ) from None
        return self._checked(action)

    def _checked(self, action: Any) -> Any:
        """The controller's action as the space holds it; one line if it does not fit."""
        space = self.space
        try:
            if self.discrete:
                scalar = np.asarray(action).reshape(())
                value = int(scalar)
                if value != scalar:  # 1.7 is no action, whatever int() makes of it
                    raise ValueError(f"{scalar} is not a whole number")
                if not space.start <= value < space.start + space.n:
                    raise ValueError(f"{value} is outside {space}")
                return value
            array = np.asarray(action, dtype=space.dtype).reshape(space.shape)
            if not np.all(np.isfinite(array)):
                raise ValueError("it holds NaN or infinity")
        except (TypeError, ValueError) as exc:
            raise HarnessError(
                f"demonstrator '{self.spec.name}' returned {str(action)[:100]!r}, which is no "
                f"action of {space} ({exc})"
            ) from None
        # Out of bounds is clipped, as the trainer clips its own actions when stepping: the
        # capture records the action applied.
        return np.clip(array, space.low, space.high)
