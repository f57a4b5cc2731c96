"""``harness capture export --format minari``: a folder ``minari.load_dataset`` opens with the
captures' episodes, and the round trip capture -> export -> Minari -> import that gives back
the capture's arrays. Marked ``minari`` (Minari reads the export): ``pip install -e
'.[minari]'``; ``.ci/run`` does, and runs ``pytest -m minari``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.datasets.capture import read_capture
from harness.datasets.recording import record_capture

from .conftest import run_cli
from .minari_recorder import datasets_path, minari_module

pytestmark = pytest.mark.minari
KEYS = ("obs", "actions", "rewards", "terminated", "truncated")


harness = run_cli  # the real CLI in a subprocess


@pytest.mark.parametrize(
    ("env", "demonstrator"), [("CartPole-v1", "heuristic"), ("Pendulum-v1", "random")]
)
def test_capture_export_minari_import_round_trip(
    tmp_path: Path, env: str, demonstrator: str
) -> None:
    minari = minari_module()
    captures = [tmp_path / "a.h5", tmp_path / "b.h5"]
    for seed, path in enumerate(captures):
        record_capture(path, env, demonstrator, noise=0.1, episodes=2, seed=seed)
    root = tmp_path / "minari"
    root.mkdir()
    done = harness("capture", "export", *captures, "--format", "minari", "-o", root / "demos-v0")
    assert done.returncode == 0, done.stderr
    original = [e for path in captures for e in read_capture(path)[1]]

    with datasets_path(root):
        dataset = minari.load_dataset("demos-v0")
        theirs = list(dataset.iterate_episodes())
        assert dataset.total_episodes == 4
        assert dataset.total_steps == sum(len(e) for e in original)
        assert dataset.env_spec.id == env
    for ours, their in zip(original, theirs, strict=True):
        np.testing.assert_array_equal(their.observations[:-1], ours.obs)
        np.testing.assert_array_equal(their.observations[-1], ours.obs[-1])  # repeated
        np.testing.assert_array_equal(their.actions, ours.actions)
        np.testing.assert_array_equal(their.rewards, ours.rewards)

    back = tmp_path / "back.h5"
    done = harness("capture", "import", root / "demos-v0", "--format", "minari", "-o", back)
    assert done.returncode == 0, done.stderr
    meta, episodes = read_capture(back)
    assert meta.env_id == env and len(episodes) == len(original)
    for ours, again in zip(original, episodes, strict=True):
        for key in KEYS:
            a, b = getattr(again, key), getattr(ours, key)
            assert a.dtype == b.dtype, key
            np.testing.assert_array_equal(a, b, err_msg=key)


def test_export_is_deterministic_and_refuses_what_minari_cannot_name(tmp_path: Path) -> None:
    capture = tmp_path / "a.h5"
    record_capture(capture, "CartPole-v1", "heuristic", noise=0.1, episodes=2, seed=5)
    for name in ("one-v0", "two-v0"):
        done = harness("capture", "export", capture, "--format", "minari", "-o", tmp_path / name)
        assert done.returncode == 0, done.stderr
    data = [(tmp_path / n / "data" / "main_data.hdf5").read_bytes() for n in ("one-v0", "two-v0")]
    assert data[0] == data[1]
    for bad, why in (("one-v0", "already exists"), ("no_version", "must read name-v<N>")):
        done = harness("capture", "export", capture, "--format", "minari", "-o", tmp_path / bad)
        assert done.returncode == 2 and why in done.stderr, done.stderr
    assert not (tmp_path / "no_version").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
