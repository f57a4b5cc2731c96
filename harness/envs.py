"""Gymnasium environments as the harness makes them: an ``EnvSpec`` (id and keyword arguments)
turned into an environment, a vector of them, or their spaces, with one-line errors.

Any id Gymnasium can make is accepted, including its ``module:EnvId`` syntax ("import module,
which registers EnvId, then make it"), so a team's own environment needs no change here. What the
trainer can learn is checked once, in ``check_spaces``: a ``Box`` observation vector (any shape,
flattened; images are refused for now) and a ``Discrete`` or bounded ``Box`` action space.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from harness.errors import HarnessError
from harness.formatting import clip

DISCRETE, CONTINUOUS = "discrete", "continuous"


@dataclass(frozen=True)
class EnvSpec:
    """An environment as the manifest, the captures and the config record it."""

    id: str
    kwargs_text: str = "{}"
    """The keyword arguments as canonical JSON (sorted keys): hashable, and equal whenever the
    arguments are."""

    @classmethod
    def of(cls, env_id: str, kwargs: Mapping[str, Any] | None = None) -> EnvSpec:
        if not isinstance(env_id, str) or not env_id:
            raise HarnessError(f"environment id {clip(repr(env_id))}: expected a non-empty string")
        kwargs = dict(kwargs or {})
        if not all(isinstance(k, str) for k in kwargs):
            raise HarnessError(f"{env_id}: environment keyword arguments need string names")
        try:
            text = json.dumps(kwargs, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise HarnessError(
                f"{env_id}: environment keyword arguments are not JSON ({exc})"
            ) from None
        return cls(env_id, text)

    @classmethod
    def parse(cls, env_id: str, kwargs_text: str | None, origin: str = "--env-kwargs") -> EnvSpec:
        """From an id and a JSON object as typed on a command line."""
        if not kwargs_text:
            return cls.of(env_id)
        from harness.validation import parse_json  # strict: a repeated key is refused, as in --set

        try:
            kwargs = parse_json(kwargs_text, origin)
        except HarnessError as exc:
            raise HarnessError(
                f"{origin} {clip(repr(kwargs_text))}: {exc}".replace(f": {origin}:", ":")
            ) from None
        if not isinstance(kwargs, dict):
            raise HarnessError(f"{origin} {kwargs_text[:200]!r}: expected a JSON object")
        return cls.of(env_id, kwargs)

    @property
    def kwargs(self) -> dict[str, Any]:
        return json.loads(self.kwargs_text)

    def __str__(self) -> str:
        return self.id if self.kwargs_text == "{}" else f"{self.id} {self.kwargs_text}"


def _spec(env: EnvSpec | str) -> EnvSpec:
    return env if isinstance(env, EnvSpec) else EnvSpec.of(env)


def _made(spec: EnvSpec, make: Any) -> Any:
    """Call ``make`` (which makes ``spec``), turning Gymnasium's failures into one line."""
    import gymnasium as gym  # on first use: dataset commands that make no env do not pay for it

    try:
        return make()
    except gym.error.UnregisteredEnv as exc:
        raise HarnessError(
            f"environment '{clip(spec.id)}' is not in Gymnasium's registry: {_first_line(exc)}"
        ) from None
    except gym.error.DependencyNotInstalled as exc:
        raise HarnessError(
            f"environment '{clip(spec.id)}' needs a package that is not installed: {_first_line(exc)}"
        ) from None
    except ImportError as exc:
        module = spec.id.partition(":")[0] if ":" in spec.id else getattr(exc, "name", None)
        raise HarnessError(
            f"environment '{clip(spec.id)}': cannot import {module or 'a module it needs'} "
            f"({_first_line(exc)})"
        ) from None
    except Exception as exc:
        # The environment's own code (a team's, or Gymnasium's asserts on a keyword argument):
        # whatever it raises, the environment could not be made as asked.
        given = (
            f" with the keyword arguments {clip(spec.kwargs_text)}"
            if spec.kwargs_text != "{}"
            else ""
        )
        raise HarnessError(
            f"environment '{clip(spec.id)}' could not be made{given}: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    return clip(" ".join(str(exc).split()), 300)


def make_env(env: EnvSpec | str) -> Any:  # -> gymnasium.Env
    """``gymnasium.make(id, **kwargs)`` with one-line errors."""
    import gymnasium as gym

    spec = _spec(env)
    return _made(spec, lambda: gym.make(spec.id, **spec.kwargs))


def make_vec_env(env: EnvSpec | str, num_envs: int) -> Any:  # -> gymnasium.vector.VectorEnv
    """``gymnasium.make_vec``: the environment's native vectorisation where it has one
    (CartPole steps all its copies in one NumPy call), else a synchronous vector."""
    import gymnasium as gym

    spec = _spec(env)
    return _made(spec, lambda: gym.make_vec(spec.id, num_envs=num_envs, **spec.kwargs))


@cache
def env_spaces(env: EnvSpec | str) -> tuple[Any, Any]:
    """(observation_space, action_space) of an environment."""
    made = make_env(env)
    try:
        return made.observation_space, made.action_space
    finally:
        made.close()


@cache
def max_episode_steps(env: EnvSpec | str) -> int | None:
    """The time limit Gymnasium's registration gives the environment, if any."""
    made = make_env(env)
    try:
        return made.spec.max_episode_steps if made.spec is not None else None
    finally:
        made.close()


def action_kind(action_space: Any) -> str:
    """``discrete`` or ``continuous``; anything else is refused with one line."""
    import gymnasium as gym
    import numpy as np

    if isinstance(action_space, gym.spaces.Discrete):
        if int(action_space.start) != 0:
            raise HarnessError(
                f"action space {action_space}: a Discrete space starting at {action_space.start} "
                "is not supported yet (actions must be 0..n-1)"
            )
        return DISCRETE
    if isinstance(action_space, gym.spaces.Box) and np.issubdtype(action_space.dtype, np.floating):
        if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
            raise HarnessError(
                f"action space {action_space}: unbounded; a Box action space needs finite bounds "
                "(actions are clipped to them and the BC gate's tolerance is a share of them)"
            )
        return CONTINUOUS
    raise HarnessError(
        f"action space {action_space}: only Discrete and float Box action spaces are supported"
    )


def check_spaces(env: EnvSpec | str) -> tuple[Any, Any, str]:
    """The environment's spaces and action kind, refusing what the trainer cannot learn."""
    import gymnasium as gym
    import numpy as np

    spec = _spec(env)
    obs_space, act_space = env_spaces(spec)
    if not isinstance(obs_space, gym.spaces.Box):
        raise HarnessError(
            f"environment '{clip(str(spec))}': observation space {obs_space} is not a Box of numbers"
        )
    if obs_space.dtype == np.uint8 and len(obs_space.shape) >= 2:
        raise HarnessError(
            f"environment '{clip(str(spec))}': image observations {obs_space.shape} are not supported yet; "
            "give a vector observation (e.g. a wrapper that flattens features)"
        )
    try:
        kind = action_kind(act_space)
    except HarnessError as exc:
        raise HarnessError(f"environment '{clip(str(spec))}': {exc}") from None
    limit = max_episode_steps(spec)
    if limit is None or limit <= 0:
        # Recording, PPO's evaluation and the gates all run episodes to their end.
        raise HarnessError(
            f"environment '{clip(str(spec))}' has no time limit (max_episode_steps {limit}), so "
            "an episode may never end; register it with max_episode_steps, or pass "
            "max_episode_steps in its keyword arguments (e.g. --env-kwargs '{\"max_episode_steps\": 1000}')"
        )
    return obs_space, act_space, kind
