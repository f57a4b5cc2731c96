"""A team's whole pipeline outside CartPole, through the commands a team runs: record, add,
accept, verify, BC, mixed, then the rehearsal by manifest path, and the bundle verified.

Two datasets recorded here: the team's own continuous environment from a package outside the
project (``mycorridor:MyOrg/Corridor-v0`` with keyword arguments and a ``module:callable``
demonstrator), and LunarLander-v3 (discrete) with Gymnasium's scripted lander. Slow (a rehearsal
per dataset): ``pytest -m slow``, which ``.ci/run`` runs.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import REPO
from .outside import DEMONSTRATOR, ENV_ID, write_package
from .team import Team


@dataclass(frozen=True)
class TeamDataset:
    name: str
    env: str
    env_kwargs: str | None
    demonstrator: str
    noise: float
    episodes: int
    threshold: float
    """The base config's BC gate for this dataset: below what the team's demonstrations allow."""
    tolerance: float


DATASETS = [
    TeamDataset("corridor", ENV_ID, '{"friction": 0.2}', DEMONSTRATOR, 0.1, 20, 0.6, 20.0),
    TeamDataset("lander", "LunarLander-v3", None, "heuristic", 0.1, 6, 0.6, 100.0),
]


@pytest.mark.slow
@pytest.mark.parametrize("ds", DATASETS, ids=[d.name for d in DATASETS])
def test_a_team_dataset_goes_from_recording_to_a_passed_rehearsal(
    tmp_path: Path, ds: TeamDataset
) -> None:
    team = Team(tmp_path, write_package(tmp_path / "team_packages"))
    root = tmp_path / "data" / "bc_datasets"
    captures = root / "captures" / ds.name
    kwargs = ["--env-kwargs", ds.env_kwargs] if ds.env_kwargs else []
    # The team's base config first (its thresholds; the rehearsal brings dataset and env), then
    # the dataset naming it, then the training config on the dataset.
    team.harness(
        "config", "overlay", REPO / "configs" / "examples" / "poc_hybrid.yaml",
        "-o", tmp_path / "base.yaml",
        "--set", f"bc.accuracy_threshold={ds.threshold}",
        "--set", f"anneal.regression_tolerance={ds.tolerance}",
    )  # fmt: skip
    team.harness(
        "dataset", "create", ds.name, "--env", ds.env, *kwargs, "--root", root,
        "--base-config", tmp_path / "base.yaml",
    )  # fmt: skip
    manifest = root / "manifests" / f"{ds.name}.json"
    team.harness(
        "config", "overlay", tmp_path / "base.yaml", "-o", tmp_path / "train.yaml",
        "--dataset", manifest,
        "--set", "output.log_dir=runs/logs", "--set", "output.checkpoint_dir=runs/checkpoints",
    )  # fmt: skip

    for k, seed in enumerate((11, 12, 13)):
        team.harness(
            "capture", "record", "--env", ds.env, *kwargs, "--demonstrator", ds.demonstrator,
            "--noise", str(ds.noise), "--episodes", str(ds.episodes), "--seed", str(seed),
            "-o", captures / f"cap_{k}.h5",
        )  # fmt: skip
    team.harness(
        "capture", "record", "--env", ds.env, *kwargs, "--demonstrator", "random",
        "--episodes", "3", "--seed", "14", "-o", captures / "cap_random.h5",
    )  # fmt: skip
    team.harness("dataset", "add", ds.name, *sorted(captures.glob("*.h5")))
    for k in range(3):
        team.harness("dataset", "review", ds.name, f"cap_{k}", "--accept")
    team.harness("dataset", "review", ds.name, "cap_random", "--reject", "--reason", "random")
    team.harness("dataset", "verify", ds.name)
    team.harness("config", "check", tmp_path / "train.yaml")

    training = REPO / "scripts" / "run_training.py"
    bc = team.run(sys.executable, training, tmp_path / "train.yaml", "--mode", "bc")
    assert bc.returncode == 0, bc.stdout + bc.stderr
    mixed = team.run(
        sys.executable, training, tmp_path / "train.yaml", "--mode", "mixed", "--epochs", "2",
        "--ppo-log", tmp_path / "runs" / "ppo.jsonl",
    )  # fmt: skip
    assert mixed.returncode == 0, mixed.stdout + mixed.stderr
    records = json.loads((tmp_path / "runs" / "logs" / "anneal_results.json").read_text())
    assert [r["mode"] for r in records] == ["bc", "bc", "ppo"]
    assert all(r["passed"] for r in records)
    assert records[0]["accuracy"] == records[1]["accuracy"]  # same config and seed

    bundle = tmp_path / "bundle"
    rehearsal = team.run(
        sys.executable, "-m", "pytest", REPO / "acceptance", "-m", "rehearsal", "-q",
        "-p", "no:cacheprovider", f"--dataset={manifest}", f"--bundle={bundle}",
        timeout=600,
    )  # fmt: skip
    assert rehearsal.returncode == 0, rehearsal.stdout[-3000:]
    summary = json.loads((bundle / f"summary_{ds.name}.json").read_text())
    assert summary["passed"] is True
    assert [s["outcome"] for s in summary["steps"]] == ["passed"] * 5
    team.harness("bundle", "verify", bundle)
