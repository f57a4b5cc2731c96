"""Bringing a team's own demonstrations: from the file they keep to a trained, gated policy,
through the commands a team runs (import, dataset create/add/review/verify, BC), and for the
Minari dataset on to the rehearsal by manifest path.

- minari: recorded by Minari's own ``DataCollector`` on CartPole-v1 with a scripted controller
  (``tests/minari_recorder.py``), then the rehearsal by manifest path and the bundle verified;
- d4rl and robomimic: their packages pull in simulators, so their files are built here with h5py
  by their documented layouts (``tests/test_import_formats.py`` cites them) from CartPole-v1
  episodes of the harness's heuristic demonstrator with slips (noise 0.15, as idle_v1), and go
  as far as a BC run that passes its 0.8 gate.

Slow and marked ``minari``: ``pytest -m slow`` in ``.ci/run``, after ``pip install -e '.[minari]'``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.datasets.recording import record_episodes

from .conftest import REPO
from .minari_recorder import record_cartpole
from .team import Team
from .test_import_formats import write_d4rl, write_robomimic

GATE = 0.8  # poc_hybrid.yaml's bc.accuracy_threshold, which the trainer applies


def source_file(fmt: str, folder: Path) -> tuple[Path, list[str]]:
    """The team's file in format ``fmt`` and the import options it needs."""
    if fmt == "minari":
        return record_cartpole(folder / "minari", "team/cartpole-v0", 10, seed=300), []
    episodes = record_episodes("CartPole-v1", "heuristic", noise=0.15, episodes=10, seed=301)
    folder.mkdir(parents=True)
    path = folder / f"{fmt}.hdf5"
    if fmt == "d4rl":
        write_d4rl(path, episodes)
        return path, ["--env", "CartPole-v1"]
    write_robomimic(path, episodes)
    return path, ["--obs-keys", "cart,pole"]


@pytest.mark.slow
@pytest.mark.minari
@pytest.mark.parametrize("fmt", ["minari", "d4rl", "robomimic"])
def test_imported_demonstrations_train_and_rehearse(tmp_path: Path, fmt: str) -> None:
    team = Team(tmp_path)
    source, options = source_file(fmt, tmp_path / "sources")
    root = tmp_path / "data" / "bc_datasets"
    name = f"team_{fmt}"
    capture = root / "captures" / name / "imported.h5"
    team.harness("dataset", "create", name, "--env", "CartPole-v1", "--root", root)
    team.harness("capture", "import", source, "--format", fmt, *options, "-o", capture)
    team.harness("capture", "inspect", capture)
    team.harness("dataset", "add", name, capture)
    team.harness("dataset", "review", name, "imported", "--accept", "--reason", f"from {fmt}")
    team.harness("dataset", "verify", name)
    manifest = root / "manifests" / f"{name}.json"
    team.harness(
        "config", "overlay", REPO / "configs" / "examples" / "poc_hybrid.yaml",
        "-o", tmp_path / "train.yaml", "--dataset", manifest,
        "--set", "output.log_dir=runs/logs", "--set", "output.checkpoint_dir=runs/checkpoints",
    )  # fmt: skip
    bc = team.run(sys.executable, REPO / "scripts" / "run_training.py", tmp_path / "train.yaml",
                  "--mode", "bc")  # fmt: skip
    assert bc.returncode == 0, bc.stdout + bc.stderr
    record = json.loads((tmp_path / "runs" / "logs" / "anneal_results.json").read_text())[-1]
    assert record["passed"] is True and record["accuracy"] >= GATE, record
    if fmt != "minari":
        return
    bundle = tmp_path / "bundle"
    rehearsal = team.run(
        sys.executable, "-m", "pytest", REPO / "acceptance", "-m", "rehearsal", "-q",
        "-p", "no:cacheprovider", f"--dataset={manifest}", f"--bundle={bundle}",
    )  # fmt: skip
    assert rehearsal.returncode == 0, rehearsal.stdout[-3000:]
    summary = json.loads((bundle / f"summary_{name}.json").read_text())
    assert summary["passed"] is True
    assert [s["outcome"] for s in summary["steps"]] == ["passed"] * 5
    team.harness("bundle", "verify", bundle)
