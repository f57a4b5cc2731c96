"""The quality check finds malformed captures and makes an idle or noisy demonstrator visible."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from harness.datasets.capture import Episode, write_capture
from harness.datasets.manifest import load_manifest
from harness.datasets.quality import compare_entries, inspect_capture

from .conftest import IDLE_V1, PREFLIGHT, Dataset


def _episode(steps: int = 20, actions: np.ndarray | None = None) -> Episode:
    rng = np.random.default_rng(0)
    return Episode(
        obs=rng.normal(size=(steps, 4)).astype(np.float32) * 0.05,
        actions=actions if actions is not None else rng.integers(0, 2, steps),
        rewards=np.ones(steps, dtype=np.float32),
        terminated=np.arange(steps) == steps - 1,
        truncated=np.zeros(steps, dtype=bool),
    )


def _write(path: Path, *episodes: Episode, env_id: str = "CartPole-v1") -> Path:
    write_capture(
        path,
        list(episodes),
        env_id=env_id,
        demonstrator="test",
        demonstrator_params={"noise": 0.0},
        seed=0,
    )
    return path


def test_clean_capture(tmp_path: Path) -> None:
    q = inspect_capture(_write(tmp_path / "c.h5", _episode(), _episode(30)))
    assert q.ok and q.warnings == []
    assert (q.episodes, q.steps) == (2, 50)
    assert sum(q.action_counts.values()) == 50


def test_nan_and_inf_observations(tmp_path: Path) -> None:
    ep = _episode()
    ep.obs[3, 1] = np.nan
    ep2 = _episode()
    ep2.obs[7, 0] = np.inf
    q = inspect_capture(_write(tmp_path / "c.h5", ep, ep2))
    assert q.errors == [
        "data/demo_0: NaN in 1 observation(s), first at step 3",
        "data/demo_1: inf in 1 observation(s), first at step 7",
    ]


def test_actions_outside_the_action_space(tmp_path: Path) -> None:
    actions = np.zeros(20, dtype=np.int64)
    actions[5] = 2
    actions[9] = -1
    q = inspect_capture(_write(tmp_path / "c.h5", _episode(actions=actions)))
    assert q.errors == [
        "data/demo_0: 2 action(s) outside the action space [0, 1], first 2 at step 5"
    ]


def test_length_mismatch(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.h5", _episode())
    with h5py.File(path, "r+") as f:
        del f["data/demo_0/actions"]
        f["data/demo_0/actions"] = np.zeros(19, dtype=np.int64)
    q = inspect_capture(path)
    assert len(q.errors) == 1 and "lengths differ" in q.errors[0] and "actions=19" in q.errors[0]


def test_missing_dataset_and_attribute(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.h5", _episode())
    with h5py.File(path, "r+") as f:
        del f["data/demo_0/rewards"]
    assert inspect_capture(path).errors == ["data/demo_0: missing dataset(s) rewards"]
    with h5py.File(path, "r+") as f:
        del f.attrs["seed"]
    assert inspect_capture(path).errors == ["missing file attribute(s) seed"]


def test_wrong_observation_shape_and_env(tmp_path: Path) -> None:
    ep = _episode()
    bad = Episode(ep.obs[:, :3], ep.actions, ep.rewards, ep.terminated, ep.truncated)
    q = inspect_capture(_write(tmp_path / "c.h5", bad))
    assert any("observations have shape (3,)" in e for e in q.errors)
    q = inspect_capture(_write(tmp_path / "d.h5", _episode()), expected_env="Acrobot-v1")
    assert any("the dataset is for Acrobot-v1" in e for e in q.errors)


@pytest.mark.parametrize("content", [b"", b"not an hdf5 file at all" * 10])
def test_not_hdf5(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "c.h5"
    path.write_bytes(content)
    q = inspect_capture(path)
    assert len(q.errors) == 1 and "not a readable HDF5 capture" in q.errors[0]


def test_capture_is_opened_read_only(small_dataset: Dataset) -> None:
    path = small_dataset.capture("a")
    before = path.read_bytes()
    path.chmod(0o444)
    assert inspect_capture(path).ok
    assert path.read_bytes() == before


def test_idle_and_noisy_demonstrators_stand_out_in_idle_v1() -> None:
    manifest = load_manifest(IDLE_V1 / "manifests" / "idle_v1.json")
    reports = {
        e.id: inspect_capture(manifest.capture_path(e), manifest.env_id) for e in manifest.entries
    }
    compare_entries(list(reports.values()))
    for e in manifest.accepted():
        assert reports[e.id].ok and reports[e.id].warnings == [], e.id
        assert max(reports[e.id].action_shares().values()) < 0.6
    rejected = [e.id for e in manifest.entries if e.status == "rejected"]
    assert rejected and all(reports[r].warnings for r in rejected)
    idle = [r for r in reports.values() if any("one action dominates" in w for w in r.warnings)]
    noisy = [r for r in reports.values() if any("episodes end early" in w for w in r.warnings)]
    assert idle and noisy


def test_preflight_dropout_capture_is_malformed() -> None:
    manifest = load_manifest(PREFLIGHT / "manifests" / "preflight.json")
    for e in manifest.entries:
        q = inspect_capture(manifest.capture_path(e), manifest.env_id)
        assert q.ok == (e.status == "accepted"), (e.id, q.errors)


@pytest.mark.parametrize(
    "manifest_path",
    [IDLE_V1 / "manifests" / "idle_v1.json", PREFLIGHT / "manifests" / "preflight.json"],
    ids=["idle_v1", "preflight"],
)
def test_label_noise_sits_between_the_bc_gates(manifest_path: Path) -> None:
    """The demonstrators' slips cap behaviour-cloning accuracy near 0.9: above the 0.8 gate,
    below the 0.95 rollback overlay, which the rehearsal relies on. The committed datasets are
    named: another dataset registered beside them must not change what is tested."""
    from harness.datasets.capture import read_capture
    from harness.datasets.demonstrators import cartpole_heuristic

    manifest = load_manifest(manifest_path)
    obs, actions = [], []
    for entry in manifest.accepted():
        for episode in read_capture(manifest.capture_path(entry))[1]:
            obs.append(episode.obs)
            actions.append(episode.actions)
    labels = np.concatenate(actions)
    agree = np.mean(
        [cartpole_heuristic(o) == a for o, a in zip(np.concatenate(obs), labels, strict=True)]
    )
    assert 0.85 < agree < 0.94, agree
    assert max(np.mean(labels), 1 - np.mean(labels)) < 0.6  # the majority class is no shortcut


def test_continuous_idle_and_costly_entries_stand_out(tmp_path: Path) -> None:
    """Pendulum-v1 (rewards are costs, always negative): an idle demonstrator's constant action
    is warned about, and an entry whose costs are far above the best one's too."""
    from harness.datasets.recording import record_capture

    record_capture(tmp_path / "idle.h5", "Pendulum-v1", "idle", noise=0.0, episodes=1, seed=0)
    record_capture(tmp_path / "slips.h5", "Pendulum-v1", "idle", noise=0.5, episodes=1, seed=0)
    idle, slips = (inspect_capture(tmp_path / f"{n}.h5") for n in ("idle", "slips"))
    assert any("every action is the same" in w for w in idle.warnings), idle.warnings
    assert not any("every action is the same" in w for w in slips.warnings)
    worst, best = sorted((idle, slips), key=lambda r: float(np.mean(r.returns)))
    worst.returns[:] = [10 * r for r in worst.returns]  # ten times the cost of the best entry
    compare_entries([idle, slips])
    assert any("returns far below the best entry" in w for w in worst.warnings), worst.warnings
    assert not any("far below" in w for w in best.warnings)
