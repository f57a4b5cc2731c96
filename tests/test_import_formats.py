"""``harness capture import`` of D4RL-style and robomimic files, and what it refuses.

D4RL and robomimic pull in simulators (MuJoCo, robosuite), so their files are built here with
h5py by their documented layouts, from episodes the harness records in CartPole-v1:

- D4RL (``d4rl.offline_env.OfflineEnv.get_dataset``, D4RL's README "Datasets"): flat root datasets
  ``observations``, ``next_observations``, ``actions``, ``rewards``, ``terminals``, ``timeouts``
  (plus ``infos/*`` and ``metadata/*`` groups, not read).
- robomimic (robomimic docs, Datasets > Overview > "Dataset Structure"): ``data`` with attrs
  ``total`` and ``env_args`` (JSON: ``env_name``, ``env_type``, ``env_kwargs``), and per demo
  ``data/demo_<k>`` with attr ``num_samples`` and ``obs/<key>``, ``next_obs/<key>``,
  ``actions``, ``rewards``, ``dones``, ``states``.

Files recorded by Minari itself are in ``test_import_minari.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from harness.cli import main
from harness.datasets.capture import Episode, read_capture
from harness.datasets.interchange.episodes import parse_episodes, spec_of
from harness.datasets.recording import record_episodes
from harness.errors import HarnessError

from .conftest import run_cli


@pytest.fixture(scope="module")
def episodes() -> list[Episode]:
    return record_episodes("CartPole-v1", "heuristic", noise=0.2, episodes=4, seed=7)


harness = run_cli  # the real CLI in a subprocess


def in_process(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """``harness`` run by ``main`` in this process (the refusals; the successes also run as
    real subprocesses above)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def write_d4rl(path: Path, episodes: list[Episode], trailing: int = 0) -> None:
    """A D4RL-style file of ``episodes``, plus ``trailing`` rows of an unfinished episode."""
    obs = np.concatenate([e.obs for e in episodes])
    tail = episodes[0].obs[:trailing]
    with h5py.File(path, "w") as f:
        f["observations"] = np.concatenate([obs, tail])
        f["next_observations"] = np.concatenate([obs[1:], obs[:1], tail])
        actions = [e.actions for e in episodes]
        f["actions"] = np.concatenate([*actions, np.zeros((trailing, *actions[0].shape[1:]))])
        f["rewards"] = np.concatenate([e.rewards for e in episodes] + [np.ones(trailing)])
        f["terminals"] = np.concatenate(
            [e.terminated for e in episodes] + [np.zeros(trailing, bool)]
        )
        f["timeouts"] = np.concatenate([e.truncated for e in episodes] + [np.zeros(trailing, bool)])
        f.create_group("infos")["qpos"] = np.zeros((len(obs) + trailing, 2))
        f.create_group("metadata").attrs["algorithm"] = "heuristic"


def write_robomimic(path: Path, episodes: list[Episode], env_type: int = 2) -> None:
    """A robomimic file of ``episodes``: obs split into keys ``cart`` (x, v) and ``pole``."""
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        env_args = {"env_name": "CartPole-v1", "env_type": env_type, "env_kwargs": {}}
        data.attrs["env_args"] = json.dumps(env_args)
        data.attrs["total"] = sum(len(e) for e in episodes)
        for k, e in enumerate(episodes):
            demo = data.create_group(f"demo_{k}")
            demo.attrs["num_samples"] = len(e)
            demo["obs/pole"] = e.obs[:, 2:]
            demo["obs/cart"] = e.obs[:, :2]
            demo["next_obs/pole"] = e.obs[:, 2:]
            demo["next_obs/cart"] = e.obs[:, :2]
            demo["actions"] = e.actions.astype(np.float64)[:, None]
            demo["rewards"] = e.rewards
            demo["dones"] = e.terminated.astype(np.int64)
            demo["states"] = e.obs


def assert_same_arrays(got: list[Episode], want: list[Episode]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for key in ("obs", "actions", "rewards", "terminated", "truncated"):
            a, b = getattr(g, key), getattr(w, key)
            assert a.dtype == b.dtype, key
            np.testing.assert_array_equal(a, b, err_msg=key)


def test_d4rl_file_imports_episode_by_episode(
    tmp_path: Path, episodes: list[Episode], run: Any
) -> None:
    src = tmp_path / "hopper-like.hdf5"
    write_d4rl(src, episodes, trailing=7)
    done = harness("capture", "import", src, "--format", "d4rl", "--env", "CartPole-v1",
                   "-o", tmp_path / "a.h5")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "7 rows after the last terminal or timeout" in done.stdout
    meta, got = read_capture(tmp_path / "a.h5")
    assert_same_arrays(got, episodes)
    assert (meta.demonstrator, meta.seed, meta.episodes) == ("imported:d4rl", 0, 4)
    with h5py.File(tmp_path / "a.h5") as f:
        assert f.attrs["source_format"] == "d4rl"
        assert f.attrs["source_file"] == "hopper-like.hdf5"
        assert f.attrs["source_episodes"] == "0-3"
        import hashlib

        assert f.attrs["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    again = run("capture", "import", src, "--format", "d4rl", "--env", "CartPole-v1",
                    "-o", tmp_path / "b.h5")  # fmt: skip
    assert again.returncode == 0
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    inspect = run("capture", "inspect", tmp_path / "a.h5")
    assert inspect.returncode == 0, inspect.stdout


def test_episodes_selects_by_number(tmp_path: Path, episodes: list[Episode], run: Any) -> None:
    src = tmp_path / "d.hdf5"
    write_d4rl(src, episodes)
    done = run("capture", "import", src, "--format", "d4rl", "--env", "CartPole-v1",
                   "--episodes", "3,0-1", "-o", tmp_path / "a.h5")  # fmt: skip
    assert done.returncode == 0, done.stderr
    _, got = read_capture(tmp_path / "a.h5")
    assert_same_arrays(got, [episodes[0], episodes[1], episodes[3]])


def test_robomimic_file_imports_keys_in_the_order_given(
    tmp_path: Path, episodes: list[Episode], run: Any
) -> None:
    src = tmp_path / "low_dim.hdf5"
    write_robomimic(src, episodes)
    out = tmp_path / "r.h5"
    done = harness("capture", "import", src, "--format", "robomimic", "--obs-keys", "cart,pole",
                   "-o", out)  # fmt: skip
    assert done.returncode == 0, done.stderr
    meta, got = read_capture(out)
    assert meta.env_id == "CartPole-v1" and meta.demonstrator == "imported:robomimic"
    assert_same_arrays(got, episodes)
    # Another order is another observation: CartPole's bounds then refuse nothing, but BC
    # would learn the wrong features; the order is the user's to give.
    swapped = run("capture", "import", src, "--format", "robomimic", "--obs-keys",
                      "pole,cart", "-o", tmp_path / "s.h5")  # fmt: skip
    assert swapped.returncode == 0
    np.testing.assert_array_equal(
        read_capture(tmp_path / "s.h5")[1][0].obs[:, :2], episodes[0].obs[:, 2:]
    )


def test_robomimic_needs_obs_keys_and_a_gym_env(
    tmp_path: Path, episodes: list[Episode], run: Any
) -> None:
    src = tmp_path / "low_dim.hdf5"
    write_robomimic(src, episodes[:1], env_type=1)  # robosuite
    done = run("capture", "import", src, "--format", "robomimic", "-o", tmp_path / "r.h5")
    assert done.returncode == 2
    assert (
        "data/demo_0/obs has keys cart, pole; choose and order them with --obs-keys" in done.stderr
    )
    done = run("capture", "import", src, "--format", "robomimic", "--obs-keys", "cart,pole",
                   "-o", tmp_path / "r.h5")  # fmt: skip
    assert done.returncode == 2
    assert "names no Gymnasium environment; give --env" in done.stderr
    done = run("capture", "import", src, "--format", "robomimic", "--obs-keys", "cart,pole",
                   "--env", "CartPole-v1", "-o", tmp_path / "r.h5")  # fmt: skip
    assert done.returncode == 0, done.stderr


class Done:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = code, stdout, stderr


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Any:
    """``harness`` in process, its result shaped like a finished subprocess."""
    return lambda *args: Done(*in_process(capsys, *args))


@pytest.fixture
def refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """Import in process; assert exit 2, one line on stderr and nothing written; the line."""

    def run(src: Path, fmt: str, *extra: str) -> str:
        out = tmp_path / "out.h5"
        code, stdout, stderr = in_process(capsys, "capture", "import", src, "--format", fmt,
                                          "-o", out, *extra)  # fmt: skip
        assert code == 2, stdout + stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert not out.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.h5")]
        return stderr

    return run


def test_sources_that_disagree_with_the_env_are_refused(
    tmp_path: Path, episodes: list[Episode], refused: Any
) -> None:
    src = tmp_path / "d.hdf5"
    write_d4rl(src, episodes)
    with h5py.File(src, "r+") as f:
        start = len(episodes[0]) + 3
        f["actions"][start] = 2  # CartPole has actions 0 and 1
    line = refused(src, "d4rl", "--env", "CartPole-v1")
    assert f"episode 1 (rows {len(episodes[0]):,}-" in line
    assert "action 2 at step 3 is outside CartPole-v1's action space Discrete(2)" in line
    line = refused(src, "d4rl", "--env", "LunarLander-v3")
    assert "episode 0 (rows 0-" in line and "observations have shape (4,)" in line
    line = refused(src, "d4rl", "--env", "Pendulum-v1")
    assert "longer than Pendulum-v1's limit" in line or "actions have shape" in line
    line = refused(src, "d4rl")
    assert "names no Gymnasium environment; give --env" in line


def test_continuous_actions_outside_the_range_are_refused(
    tmp_path: Path, run: Any, refused: Any
) -> None:
    pendulum = record_episodes("Pendulum-v1", "random", noise=0.0, episodes=2, seed=3)
    src = tmp_path / "p.hdf5"
    write_d4rl(src, pendulum)
    done = run("capture", "import", src, "--format", "d4rl", "--env", "Pendulum-v1",
                   "-o", tmp_path / "ok.h5")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_same_arrays(read_capture(tmp_path / "ok.h5")[1], pendulum)
    with h5py.File(src, "r+") as f:
        f["actions"][210] = [2.5]  # Pendulum's torque is within [-2, 2]
    line = refused(src, "d4rl", "--env", "Pendulum-v1")
    assert (
        "episode 1 (rows 200-399): action at step 10 is outside Pendulum-v1's action range" in line
    )


def test_malformed_sources_are_refused_with_the_field(
    tmp_path: Path, episodes: list[Episode], refused: Any
) -> None:
    src = tmp_path / "d.hdf5"
    write_d4rl(src, episodes)
    with h5py.File(src, "r+") as f:
        f["rewards"][5] = np.nan
    assert "episode 0 (rows 0-" in (line := refused(src, "d4rl", "--env", "CartPole-v1"))
    assert "NaN or inf in rewards" in line
    with h5py.File(src, "r+") as f:
        del f["timeouts"]
        f["timeouts"] = np.zeros(3, bool)
    line = refused(src, "d4rl", "--env", "CartPole-v1")
    assert "the flat arrays have different lengths" in line and "timeouts 3" in line
    robo = tmp_path / "r.hdf5"
    write_robomimic(robo, episodes[:2])
    with h5py.File(robo, "r+") as f:
        del f["data/demo_1/rewards"]
    line = refused(robo, "robomimic", "--obs-keys", "cart,pole")
    assert "data/demo_1: rewards is missing" in line


def test_a_forged_size_is_refused_before_reading(
    tmp_path: Path, episodes: list[Episode], refused: Any
) -> None:
    src = tmp_path / "forged.hdf5"
    write_d4rl(src, episodes)
    with h5py.File(src, "r+") as f:
        del f["observations"]
        # Nothing written: gigabytes of fill values declared by a few kilobytes.
        f.create_dataset("observations", shape=(len(f["actions"]), 100_000), dtype="f4",
                         chunks=(1, 100_000), compression="gzip")  # fmt: skip
    line = refused(src, "d4rl", "--env", "CartPole-v1")
    assert "observations declares" in line and "damaged or forged" in line


def test_non_regular_sources_and_outputs_are_refused(
    run: Any, tmp_path: Path, episodes: list[Episode], refused: Any
) -> None:
    fifo = tmp_path / "fifo.hdf5"
    os.mkfifo(fifo)
    assert "is a FIFO, not a regular file" in refused(fifo, "d4rl", "--env", "CartPole-v1")
    src = tmp_path / "d.hdf5"
    write_d4rl(src, episodes)
    before = src.read_bytes()
    done = run("capture", "import", src, "--format", "d4rl", "--env", "CartPole-v1",
                   "-o", src, "--force")  # fmt: skip
    assert done.returncode == 2 and "is a source file" in done.stderr
    assert src.read_bytes() == before
    assert "--obs-keys is for robomimic" in refused(src, "d4rl", "--obs-keys", "a")


def test_episode_specs() -> None:
    assert parse_episodes("0-3,12, 7,2") == [0, 1, 2, 3, 7, 12]
    assert spec_of([0, 1, 2, 3, 7, 12]) == "0-3,7,12"
    for bad in ("", "a", "3-1", "1-", "-2", "0-99999999999"):
        with pytest.raises(HarnessError, match="--episodes"):
            parse_episodes(bad)


def write_minari(folder: Path, episodes: list[Episode], obs_space: str | None = None) -> Path:
    """A Minari dataset folder of ``episodes`` in the layout ``DataCollector`` writes (see
    ``test_import_minari.py`` for ones Minari itself records), without Minari."""
    data = folder / "data"
    data.mkdir(parents=True)
    box = {"type": "Box", "dtype": "float32", "shape": [4], "low": [-4.8, float("-inf")] * 2,
           "high": [4.8, float("inf")] * 2}  # fmt: skip
    metadata = {
        "data_format": "hdf5",
        "observation_space": obs_space or json.dumps(box),
        "action_space": json.dumps({"type": "Discrete", "dtype": "int64", "start": 0, "n": 2}),
        "env_spec": json.dumps({"id": "CartPole-v1", "kwargs": {}, "max_episode_steps": 500}),
        "total_episodes": len(episodes),
        "minari_version": "0.5.4",
    }
    (data / "metadata.json").write_text(json.dumps(metadata))
    with h5py.File(data / "main_data.hdf5", "w") as f:
        for k, e in enumerate(episodes):
            group = f.create_group(f"episode_{k}")
            group.attrs.update({"id": k, "total_steps": len(e), "seed": 90 + k})
            group["observations"] = np.concatenate([e.obs, e.obs[-1:] + 1])
            group["actions"] = e.actions
            group["rewards"] = e.rewards.astype(np.float64)
            group["terminations"], group["truncations"] = e.terminated, e.truncated
            group.create_group("infos")
    return folder


def test_minari_layout_imports_without_minari(
    tmp_path: Path, episodes: list[Episode], run: Any, refused: Any
) -> None:
    src = write_minari(tmp_path / "team" / "cartpole-v0", episodes)
    done = run("capture", "import", src, "--format", "minari", "--episodes", "1-2",
               "-o", tmp_path / "m.h5")  # fmt: skip
    assert done.returncode == 0, done.stderr
    meta, got = read_capture(tmp_path / "m.h5")
    assert (meta.env_id, meta.seed, meta.demonstrator) == ("CartPole-v1", 91, "imported:minari")
    assert_same_arrays(got, episodes[1:3])
    dict_space = json.dumps({"type": "Dict", "subspaces": {}})
    other = write_minari(tmp_path / "dict-v0", episodes[:1], obs_space=dict_space)
    line = refused(other, "minari")
    assert "observation_space is a Dict space; only Box can be imported" in line
    line = refused(src, "minari", "-o", str(src / "data" / "metadata.json"), "--force")
    assert "is a source file" in line
