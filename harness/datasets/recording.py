"""Recording captures: run a scripted demonstrator in a Gymnasium environment."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.datasets.capture import CaptureMeta, Episode, write_capture
from harness.datasets.demonstrators import act, available
from harness.envs import make_env
from harness.errors import HarnessError


def record_episodes(
    env_id: str, demonstrator: str, *, noise: float, episodes: int, seed: int
) -> list[Episode]:
    """Run ``episodes`` episodes of ``demonstrator`` in ``env_id``, seeded by ``seed``.

    The environment is reset with ``seed`` once and then continues its own random stream, so the
    same arguments always give the same episodes.
    """
    import gymnasium as gym

    if not 0.0 <= noise <= 1.0:
        raise HarnessError(f"--noise {noise} is outside [0, 1]")
    if episodes < 1:
        raise HarnessError(f"--episodes {episodes} must be at least 1")
    env = make_env(env_id)
    try:
        specs = available(env_id)
        if demonstrator not in specs:
            raise HarnessError(
                f"no demonstrator '{demonstrator}' for {env_id}; "
                f"available: {', '.join(sorted(specs))}"
            )
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise HarnessError(
                f"{env_id}: only discrete action spaces can be recorded "
                f"(this one is {env.action_space})"
            )
        n_actions = int(env.action_space.n)
        start = int(env.action_space.start)
        spec = specs[demonstrator]
        rng = np.random.default_rng(seed)
        result = []
        obs, _ = env.reset(seed=seed)
        for _ in range(episodes):
            rows_obs, rows_act, rows_rew, rows_term, rows_trunc = [], [], [], [], []
            done = False
            while not done:
                action = start + act(spec, obs, n_actions, noise, rng)
                next_obs, reward, terminated, truncated, _ = env.step(action)
                rows_obs.append(obs)
                rows_act.append(action)
                rows_rew.append(reward)
                rows_term.append(terminated)
                rows_trunc.append(truncated)
                obs = next_obs
                done = terminated or truncated
            result.append(
                Episode(
                    obs=np.asarray(rows_obs, dtype=env.observation_space.dtype),
                    actions=np.asarray(rows_act, dtype=np.int64),
                    rewards=np.asarray(rows_rew, dtype=np.float32),
                    terminated=np.asarray(rows_term, dtype=bool),
                    truncated=np.asarray(rows_trunc, dtype=bool),
                )
            )
            obs, _ = env.reset()
        return result
    finally:
        env.close()


def record_capture(
    path: str | Path, env_id: str, demonstrator: str, *, noise: float, episodes: int, seed: int
) -> CaptureMeta:
    """Record and write one capture file; the same arguments give a byte-identical file."""
    recorded = record_episodes(env_id, demonstrator, noise=noise, episodes=episodes, seed=seed)
    return write_capture(
        path,
        recorded,
        env_id=env_id,
        demonstrator=demonstrator,
        demonstrator_params={"noise": float(noise)},
        seed=seed,
    )
