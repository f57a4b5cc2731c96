"""``harness capture import --format minari`` on datasets recorded by Minari's own
``DataCollector`` (CartPole-v1, a scripted controller), compared with what
``minari.load_dataset`` reads from them. Marked ``minari``: ``pip install -e '.[minari]'``
(``.ci/run`` does, and runs ``pytest -m minari``)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from harness.datasets.capture import read_capture

from .conftest import run_cli
from .minari_recorder import datasets_path, minari_module, record_cartpole

pytestmark = pytest.mark.minari


harness = run_cli  # the real CLI in a subprocess


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_cartpole(tmp_path_factory.mktemp("minari"), "team/cartpole-v0", 4, seed=40)


def test_a_minari_recording_imports_as_minari_reads_it(recorded: Path, tmp_path: Path) -> None:
    minari = minari_module()
    out = tmp_path / "imported.h5"
    done = harness("capture", "import", recorded, "--format", "minari", "-o", out)
    assert done.returncode == 0, done.stderr
    assert "4 episodes, 2000 steps imported from minari" in done.stdout
    meta, episodes = read_capture(out)
    assert (meta.env_id, meta.env_kwargs, meta.seed) == ("CartPole-v1", {}, 40)
    assert meta.demonstrator == "imported:minari"
    with datasets_path(recorded.parents[1]):
        dataset = minari.load_dataset("team/cartpole-v0")
        theirs = list(dataset.iterate_episodes())
    assert len(episodes) == len(theirs) == 4
    for ours, their in zip(episodes, theirs, strict=True):
        np.testing.assert_array_equal(ours.obs, their.observations[:-1])
        np.testing.assert_array_equal(ours.actions, their.actions)
        np.testing.assert_array_equal(ours.rewards, their.rewards.astype(np.float32))
        np.testing.assert_array_equal(ours.terminated, their.terminations)
        np.testing.assert_array_equal(ours.truncated, their.truncations)
    with h5py.File(out) as f:
        assert (f.attrs["source_format"], f.attrs["source_file"]) == ("minari", "main_data.hdf5")
    again = harness("capture", "import", recorded / "data", "--format", "minari",
                    "--episodes", "0-3", "-o", tmp_path / "again.h5")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert out.read_bytes() == (tmp_path / "again.h5").read_bytes()


def test_a_minari_recording_for_another_env_is_refused(recorded: Path, tmp_path: Path) -> None:
    done = harness("capture", "import", recorded, "--format", "minari", "--env",
                   "Acrobot-v1", "-o", tmp_path / "x.h5")  # fmt: skip
    assert done.returncode == 2
    assert "episode_0: observations have shape (4,), Acrobot-v1's are (6,)" in done.stderr
    assert not (tmp_path / "x.h5").exists()


def test_a_minari_episode_without_its_last_observation_is_refused(
    recorded: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(recorded, copy)
    with h5py.File(copy / "data" / "main_data.hdf5", "r+") as f:
        obs = f["episode_2/observations"][:-1]
        del f["episode_2/observations"]
        f["episode_2/observations"] = obs
    done = harness("capture", "import", copy, "--format", "minari", "-o", tmp_path / "x.h5")
    assert done.returncode == 2
    assert "episode_2: observations has 500 rows for 500 actions" in done.stderr
