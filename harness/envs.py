"""Gymnasium environments as the harness makes them: one place that turns an env id into an
environment or its spaces, with a one-line error for an id Gymnasium does not know."""

from __future__ import annotations

from functools import cache
from typing import Any

from harness.errors import HarnessError


def make_env(env_id: str) -> Any:  # -> gymnasium.Env
    """``gymnasium.make(env_id)`` with a one-line error for ids not in the registry."""
    import gymnasium as gym  # on first use: dataset commands that make no env do not pay for it

    if env_id not in gym.registry:
        close = sorted(
            k for k in gym.registry if k.split("-")[0].lower() == env_id.split("-")[0].lower()
        )
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise HarnessError(f"environment '{env_id}' is not in Gymnasium's registry{hint}")
    return gym.make(env_id)


@cache
def env_spaces(env_id: str) -> tuple[Any, Any]:
    """(observation_space, action_space) of a registered environment."""
    env = make_env(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()
