"""Recording captures: the format, determinism, and the committed production dataset."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from harness.datasets.capture import EPISODE_KEYS, read_capture
from harness.datasets.checksums import load_sheet
from harness.datasets.demonstrators import cartpole_heuristic
from harness.datasets.manifest import load_manifest
from harness.datasets.recording import record_capture, record_episodes
from harness.errors import HarnessError
from harness.hashing import sha256_file

from .conftest import IDLE_V1


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_capture_layout(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    meta = record_capture(path, "CartPole-v1", "heuristic", noise=0.15, episodes=2, seed=7)
    with h5py.File(path, "r") as f:
        for key in ("env_id", "demonstrator", "seed", "format_version"):
            assert key in f.attrs
        assert sorted(f["data"]) == ["demo_0", "demo_1"]
        for key in EPISODE_KEYS:
            assert f["data/demo_0"][key].shape[0] == f["data/demo_0/actions"].shape[0]
    read_meta, episodes = read_capture(path)
    assert read_meta == meta
    assert meta.steps == sum(len(e) for e in episodes)
    assert episodes[0].obs.shape[1:] == (4,) and episodes[0].obs.dtype == np.float32
    assert all(e.terminated[-1] or e.truncated[-1] for e in episodes)


def test_recording_is_byte_identical_across_time(tmp_path: Path) -> None:
    first, second = tmp_path / "1.h5", tmp_path / "2.h5"
    record_capture(first, "CartPole-v1", "heuristic", noise=0.15, episodes=1, seed=11)
    time.sleep(1.1)  # HDF5 object timestamps have one-second resolution
    record_capture(second, "CartPole-v1", "heuristic", noise=0.15, episodes=1, seed=11)
    assert first.read_bytes() == second.read_bytes()


def test_different_seed_or_noise_gives_different_data(tmp_path: Path) -> None:
    base = record_episodes("CartPole-v1", "heuristic", noise=0.15, episodes=1, seed=1)
    other_seed = record_episodes("CartPole-v1", "heuristic", noise=0.15, episodes=1, seed=2)
    no_noise = record_episodes("CartPole-v1", "heuristic", noise=0.0, episodes=1, seed=1)
    assert not np.array_equal(base[0].obs[:50], other_seed[0].obs[:50])
    assert not np.array_equal(base[0].actions, no_noise[0].actions)


def test_noise_is_the_share_of_random_actions() -> None:
    episodes = record_episodes("CartPole-v1", "heuristic", noise=0.3, episodes=4, seed=5)
    obs = np.concatenate([e.obs for e in episodes])
    actions = np.concatenate([e.actions for e in episodes])
    disagree = np.mean([cartpole_heuristic(o) != a for o, a in zip(obs, actions, strict=True)])
    # A random action coincides with the controller's half the time: 0.3 * 0.5 = 0.15.
    assert 0.11 < disagree < 0.19


def test_heuristic_without_noise_holds_the_pole() -> None:
    episodes = record_episodes("CartPole-v1", "heuristic", noise=0.0, episodes=3, seed=0)
    assert [e.episode_return for e in episodes] == [500.0, 500.0, 500.0]


@pytest.mark.parametrize("name", ["idle_v1", "lander_v1"])
def test_committed_datasets_are_reproduced_by_their_recorded_arguments(
    tmp_path: Path, name: str
) -> None:
    manifest = load_manifest(IDLE_V1 / "manifests" / f"{name}.json")
    sheet = load_sheet(IDLE_V1 / "checksums" / f"{name}.json")
    assert len(manifest.entries) >= 3 and len(manifest.accepted()) >= 2
    assert sum(e.steps for e in manifest.accepted()) >= 3000
    assert all(e.reason.strip() for e in manifest.entries if e.status == "rejected")
    assert any(e.status == "rejected" for e in manifest.entries)
    for entry in manifest.entries:
        demo = entry.demonstrator
        out = tmp_path / entry.path
        record_capture(
            out,
            manifest.env_spec(),
            demo["name"],
            noise=demo["noise"],
            episodes=entry.episodes,
            seed=demo["seed"],
        )
        assert _sha(out) == sha256_file(manifest.capture_path(entry)).sha256, entry.id
        if entry.status == "accepted":
            assert _sha(out) == sheet.entries[entry.id].sha256


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"env_id": "NoSuchEnv-v0"}, "not in Gymnasium's registry"),
        ({"env_id": "Acrobot-v1", "demonstrator": "heuristic"}, "no demonstrator 'heuristic'"),
        ({"demonstrator": "wizard"}, "no demonstrator 'wizard'"),
        ({"noise": 1.5}, "outside [0, 1]"),
        ({"episodes": 0}, "at least 1"),
    ],
)
def test_bad_recording_arguments(kwargs: dict, message: str) -> None:
    args = {
        "env_id": "CartPole-v1",
        "demonstrator": "heuristic",
        "noise": 0.1,
        "episodes": 1,
        "seed": 0,
    } | kwargs
    with pytest.raises(HarnessError, match=message.replace("[", r"\[").replace("]", r"\]")):
        record_episodes(args.pop("env_id"), args.pop("demonstrator"), **args)


def test_other_discrete_envs_record_with_generic_demonstrators(tmp_path: Path) -> None:
    meta = record_capture(
        tmp_path / "m.h5", "MountainCar-v0", "random", noise=0.0, episodes=1, seed=0
    )
    assert meta.steps == 200
