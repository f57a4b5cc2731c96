"""Minari datasets recorded by Minari itself, for the import and export tests.

Recording needs Minari's ``DataCollector``, which needs JAX: ``pip install -e '.[minari]'``
(``minari[create]`` and Pillow, a test-only extra that ``.ci/run`` installs). Tests that need it
are marked ``minari``; without it they fail saying what to install, never skip.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

INSTALL = "pip install -e '.[minari]'  (minari[create] and pillow; test-only, it brings JAX)"


def minari_module() -> Any:
    """``minari`` with its recorder, or a failure saying what to install."""
    try:
        import jax.tree_util  # noqa: F401  (DataCollector imports it only at the first step)
        import minari
        import PIL  # noqa: F401  (Minari's HDF5 back end imports it without declaring it)
    except ImportError as exc:
        pytest.fail(f"this test records with Minari's DataCollector: {INSTALL} ({exc})")
    return minari


@contextmanager
def datasets_path(root: Path):
    """``MINARI_DATASETS_PATH`` set to ``root`` for the block."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield root
    finally:
        if before is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


def scripted_cartpole(obs: Any) -> int:
    """Push the cart under the pole: towards where the pole leans and falls."""
    return int(obs[2] + 0.5 * obs[3] + 0.01 * obs[0] + 0.1 * obs[1] > 0)


def record_cartpole(root: Path, dataset_id: str, episodes: int, seed: int) -> Path:
    """Record ``episodes`` CartPole-v1 episodes of the scripted controller with Minari's
    ``DataCollector`` into ``root``; the dataset's folder."""
    import gymnasium as gym

    minari = minari_module()
    with datasets_path(root):
        env = minari.DataCollector(gym.make("CartPole-v1"), record_infos=False)
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + k)
            done = False
            while not done:
                obs, _, terminated, truncated, _ = env.step(scripted_cartpole(obs))
                done = terminated or truncated
        env.create_dataset(
            dataset_id=dataset_id,
            algorithm_name="scripted CartPole controller",
            author="harness tests",
            author_email="harness-tests@example.invalid",
            code_permalink="tests/minari_recorder.py",
            eval_env="CartPole-v1",
            description="CartPole-v1 by a scripted controller, recorded by the harness's tests",
        )
        env.close()
    return root / dataset_id
