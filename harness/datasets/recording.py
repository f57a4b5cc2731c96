"""Recording captures: run a demonstrator in a Gymnasium environment, discrete or continuous."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.datasets.capture import CaptureMeta, Episode, write_capture
from harness.datasets.demonstrators import ActionSource, resolve_demonstrator
from harness.envs import DISCRETE, EnvSpec, check_spaces, make_env
from harness.errors import HarnessError


def record_episodes(
    env: EnvSpec | str, demonstrator: str, *, noise: float, episodes: int, seed: int
) -> list[Episode]:
    """Run ``episodes`` episodes of ``demonstrator`` in ``env``, seeded by ``seed``.

    The environment is reset with ``seed`` once and then continues its own random stream, so the
    same arguments always give the same episodes.
    """
    spec = env if isinstance(env, EnvSpec) else EnvSpec.of(env)
    if not 0.0 <= noise <= 1.0:
        raise HarnessError(f"--noise {noise} is outside [0, 1]")
    if episodes < 1:
        raise HarnessError(f"--episodes {episodes} must be at least 1")
    obs_space, _, kind = check_spaces(spec)
    source_spec = resolve_demonstrator(demonstrator, spec.id)
    action_dtype = np.int64 if kind == DISCRETE else np.float32
    made = make_env(spec)
    try:
        source = ActionSource(source_spec, made, noise, seed)
        result = []
        obs, _ = made.reset(seed=seed)
        for _ in range(episodes):
            rows: tuple[list[Any], ...] = ([], [], [], [], [])
            done = False
            while not done:
                action = source(obs)
                next_obs, reward, terminated, truncated, _ = made.step(action)
                for row, value in zip(
                    rows, (obs, action, reward, terminated, truncated), strict=True
                ):
                    row.append(value)
                obs = next_obs
                done = terminated or truncated
            result.append(
                Episode(
                    obs=np.asarray(rows[0], dtype=obs_space.dtype),
                    actions=np.asarray(rows[1], dtype=action_dtype),
                    rewards=np.asarray(rows[2], dtype=np.float32),
                    terminated=np.asarray(rows[3], dtype=bool),
                    truncated=np.asarray(rows[4], dtype=bool),
                )
            )
            obs, _ = made.reset()
        return result
    finally:
        made.close()


def record_capture(
    path: str | Path,
    env: EnvSpec | str,
    demonstrator: str,
    *,
    noise: float,
    episodes: int,
    seed: int,
) -> CaptureMeta:
    """Record and write one capture file; the same arguments give a byte-identical file."""
    spec = env if isinstance(env, EnvSpec) else EnvSpec.of(env)
    recorded = record_episodes(spec, demonstrator, noise=noise, episodes=episodes, seed=seed)
    return write_capture(
        path,
        recorded,
        env_id=spec.id,
        env_kwargs=spec.kwargs,
        demonstrator=demonstrator,
        demonstrator_params={"noise": float(noise)},
        seed=seed,
    )
