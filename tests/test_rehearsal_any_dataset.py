"""The rehearsal on datasets of other environments and on base configs of their own: real
``pytest acceptance/ -m rehearsal`` sessions (pytester subprocesses) on datasets recorded here.

Each session takes 15-40 s, so the module is marked ``slow``: the default unit run leaves it
out, ``.ci/run`` runs it (``pytest -m slow -n 2``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gymnasium  # noqa: F401
import h5py  # noqa: F401
import pytest

from harness.bundle import DatasetFiles, verify_bundle
from harness.config import load_config, overlay
from harness.datasets.checksums import build_sheet
from harness.datasets.curation import add_capture
from harness.datasets.manifest import new_manifest
from harness.datasets.recording import record_capture

from .conftest import REPO, Dataset

pytestmark = pytest.mark.slow
# h5py and gymnasium are imported above, before any test: pytester restores sys.modules after
# each test, h5py's extension cannot be imported a second time in one process, and a second
# gymnasium would leave cached spaces of the first one's classes (isinstance checks fail).

SUITE = REPO / "acceptance"
POC_HYBRID = REPO / "configs" / "examples" / "poc_hybrid.yaml"


def rehearse(pytester: pytest.Pytester, bundle: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        str(SUITE), "-m", "rehearsal", f"--bundle={bundle}", "-p", "no:cacheprovider", *args
    )


def summary(bundle: Path, name: str) -> dict[str, Any]:
    return json.loads(DatasetFiles(bundle, name).summary.read_text("utf-8"))


def steps(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in doc["steps"]}


def base_config(path: Path, *sets: str) -> Path:
    """A base config of a dataset's own: poc_hybrid.yaml with ``sets`` changed."""
    overlay(POC_HYBRID, path, sets)
    return path


def record_dataset(
    root: Path,
    name: str,
    env_id: str,
    demonstrator: str,
    seeds: tuple[int, ...],
    episodes: int,
    base: Path | None = None,
    manifest_env: str | None = None,
) -> Path:
    """A dataset of accepted captures, laid out like data/bc_datasets; returns its manifest.

    ``base`` becomes the manifest's base_config; ``manifest_env`` replaces the manifest's
    env_id after the captures were added (a manifest that lies about its captures).
    """
    ds = Dataset(root, name)
    manifest = new_manifest(ds.manifest_path, name, env_id, ds.captures)
    for seed in seeds:
        path = ds.captures / f"{demonstrator}_{seed}.h5"
        record_capture(path, env_id, demonstrator, noise=0.0, episodes=episodes, seed=seed)
        entry = add_capture(manifest, path)
        manifest.with_status(entry.id, "accepted", "recorded for the test")
    if base is not None:
        manifest.base_config = os.path.relpath(base, ds.manifest_path.parent)
    if manifest_env is not None:
        manifest.env_id = manifest_env
    manifest.save()
    build_sheet(manifest, ds.sheet_path).save()
    return ds.manifest_path


@pytest.fixture(scope="module")
def pole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CartPole, heuristic without slips: BC's hold-out accuracy is above 0.95. Its manifest
    names a base config of its own (threshold 0.9, fewer evaluation episodes)."""
    root = tmp_path_factory.mktemp("pole")
    own = base_config(
        root / "configs" / "pole.yaml", "bc.accuracy_threshold=0.9", "anneal.eval_episodes=3"
    )
    return record_dataset(root / "data", "pole", "CartPole-v1", "heuristic", (1, 2), 3, own)


def assert_no_traceback(result: pytest.RunResult, bundle: Path, names: list[str]) -> None:
    """Nowhere a traceback: the session's output, the reports, one-line summary messages."""
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and 'File "' not in output, output
    for name in names:
        files = DatasetFiles(bundle, name)
        assert "Traceback" not in files.report.read_text("utf-8")
        for step in summary(bundle, name)["steps"]:
            for text in (step["message"], step["remedial_action"]):
                assert text is None or ("\n" not in text and "Traceback" not in text), text


def test_other_environments_fail_with_their_real_causes_and_no_traceback(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    # Acrobot, random actions, with a base config of its own whose env.id is CartPole-v1's:
    # the overlay must take the environment from the manifest, the threshold from the config.
    own = base_config(
        tmp_path / "configs" / "acro.yaml", "bc.accuracy_threshold=0.6", "bc.epochs=10"
    )
    acro = record_dataset(data, "acro", "Acrobot-v1", "random", (1, 2), 2, own)
    # An environment nobody can make here, and a manifest naming another env than its captures'.
    nowhere = record_dataset(
        data, "nowhere", "Acrobot-v1", "random", (3,), 1, manifest_env="no_such_pkg:Corridor-v0"
    )
    mislabelled = record_dataset(
        data, "mislabelled", "CartPole-v1", "random", (4,), 2, manifest_env="Acrobot-v1"
    )
    # A demonstrator that always pushes left: BC is perfect and no better than the majority.
    still = record_dataset(data, "still", "CartPole-v1", "idle", (5,), 6)
    bundle = tmp_path / "bundle"
    names = ["acro", "nowhere", "mislabelled", "still"]

    result = rehearse(pytester, bundle, f"--dataset={acro},{nowhere},{mislabelled},{still}")

    assert result.ret == 1
    assert_no_traceback(result, bundle, names)
    assert_random_actions_on_their_own_base_config(bundle, own)
    assert_environment_causes(bundle)
    doc = summary(bundle, "still")
    assert doc["metrics"]["bc_trainer"]["accuracy"] == 1.0
    assert steps(doc)["bc_trainer"]["cause"] == "bc_no_better_than_baseline"


def assert_random_actions_on_their_own_base_config(bundle: Path, own: Path) -> None:
    """acro: the manifest's environment, its base config's threshold, and the real cause."""
    doc = summary(bundle, "acro")
    assert doc["base_config"] == {"path": str(own), "chosen_by": "manifest"}
    config = load_config(DatasetFiles(bundle, "acro").config)
    assert config.env.id == "Acrobot-v1" and config.bc.accuracy_threshold == 0.6
    acro_steps = steps(doc)
    assert {k: s["outcome"] for k, s in acro_steps.items()} == {
        "dataset_integrity": "passed",
        "bc_trainer": "failed",
        "anneal_smoke": "failed",
        "rollback_drill": "aborted",
        "artefact_capture": "failed",
    }
    assert doc["metrics"]["bc_trainer"]["threshold"] == 0.6
    # Random actions, which no policy can learn and more of which cannot fix.
    assert acro_steps["bc_trainer"]["cause"] == "random_demonstrator"
    assert acro_steps["anneal_smoke"]["cause"] == "smoke_bc_gate"
    assert acro_steps["rollback_drill"]["remedial_action"].startswith(
        "Fix BC trainer verification first"
    )
    assert acro_steps["artefact_capture"]["cause"] == "after_failed_steps"
    assert "(Rollback drill)" in acro_steps["artefact_capture"]["remedial_action"]
    for step in acro_steps.values():
        action = step["remedial_action"] or ""
        assert "record more demonstrations" not in action and "promotion" not in action
    report = DatasetFiles(bundle, "acro").report.read_text("utf-8")
    assert f"`{own}` (named by the manifest's base_config)" in report
    assert "Cause: the demonstrations are random actions." in report


def assert_environment_causes(bundle: Path) -> None:
    """nowhere: its environment cannot be made; mislabelled: its captures are of another."""
    nowhere_steps = steps(summary(bundle, "nowhere"))
    for key in ("bc_trainer", "anneal_smoke"):
        assert nowhere_steps[key]["cause"] == "env_unavailable"
        assert "no_such_pkg" in nowhere_steps[key]["remedial_action"]
        assert "Install what that line names" in nowhere_steps[key]["remedial_action"]
    assert nowhere_steps["anneal_smoke"]["message"].startswith("exit 2: ")
    mislabelled_steps = steps(summary(bundle, "mislabelled"))
    for key in ("bc_trainer", "anneal_smoke"):
        assert mislabelled_steps[key]["cause"] == "env_mismatch"
        assert "was recorded in CartPole-v1" in mislabelled_steps[key]["remedial_action"]


def test_two_datasets_on_their_own_base_configs_and_a_raised_drill_threshold_on_two_workers(
    pytester: pytest.Pytester, tmp_path: Path, pole: Path
) -> None:
    bundle = tmp_path / "bundle"

    result = rehearse(pytester, bundle, f"--dataset=idle_v1,{pole}", "-n", "2")

    assert result.ret == 0, result.stdout.str()
    assert verify_bundle(bundle).problems == []
    # idle_v1: the default base config, the outline's figures, the drill at 0.95 as asked.
    idle = summary(bundle, "idle_v1")
    assert idle["passed"] and idle["pytest"]["workers"] == 2
    # Inside the project: relative to it, as the summary shows every path it can.
    assert idle["base_config"] == {
        "path": POC_HYBRID.relative_to(REPO).as_posix(),
        "chosen_by": "default",
    }
    assert idle["metrics"]["bc_trainer"]["accuracy"] == pytest.approx(0.904)
    drill = idle["metrics"]["rollback_drill"]
    assert (drill["threshold_asked"], drill["threshold"], drill["threshold_raised"]) == (
        0.95,
        0.95,
        False,
    )
    # pole: its manifest's base config; BC above 0.95, so the drill raised its threshold just
    # above BC's accuracy, and its retrained BC, reproducing that accuracy, failed the gate.
    doc = summary(bundle, "pole")
    assert doc["passed"]
    own = pole.parents[2] / "configs" / "pole.yaml"
    assert doc["base_config"] == {"path": str(own), "chosen_by": "manifest"}
    bc = doc["metrics"]["bc_trainer"]
    assert bc["threshold"] == 0.9 and bc["accuracy"] > 0.95
    drill = doc["metrics"]["rollback_drill"]
    assert drill["threshold_asked"] == 0.95 and drill["threshold_raised"] is True
    assert bc["accuracy"] < drill["threshold"] <= min(bc["accuracy"] + 1e-4, 1.0)
    assert drill["bc_accuracy"] == bc["accuracy"] and drill["exit_code"] == 3
    assert drill["store_unchanged"] is True
    files = DatasetFiles(bundle, "pole")
    assert load_config(files.rollback_config).bc.accuracy_threshold == drill["threshold"]
    report = files.report.read_text("utf-8")
    assert (
        f"| Rollback drill threshold (step 4) | {drill['threshold']:.4f} (raised) | asked 0.9500: "
        f"step 2's hold-out accuracy {bc['accuracy']:.4f} already meets 0.95"
    ) in report
    # The smoke's run writes TensorBoard event files (output.tensorboard in the overlay), with
    # Stable-Baselines3's tag names, as TensorBoard's own reader lists them.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(files.run("anneal_smoke") / "logs"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/policy_gradient_loss", "train/value_loss", "train/entropy_loss"} <= tags
    assert {"train/bc_loss", "train/bc_coef", "bc/holdout_accuracy"} <= tags


def test_base_config_and_drill_threshold_options_and_a_drill_that_cannot_fail(
    pytester: pytest.Pytester, tmp_path: Path, pole: Path
) -> None:
    # 120 epochs: BC predicts every hold-out action of pole right; preflight's stays at 0.90.
    given = base_config(tmp_path / "long.yaml", "bc.epochs=120")
    bundle = tmp_path / "bundle"

    result = rehearse(
        pytester,
        bundle,
        f"--dataset={pole},preflight",
        f"--base-config={given}",
        "--drill-threshold=0.99",
    )

    assert result.ret == 1
    assert_no_traceback(result, bundle, ["pole", "preflight"])
    # --base-config wins over pole's manifest, for every dataset of the session.
    for name in ("pole", "preflight"):
        assert summary(bundle, name)["base_config"] == {
            "path": str(given),
            "chosen_by": "--base-config",
        }
    preflight = summary(bundle, "preflight")
    assert preflight["passed"]
    drill = preflight["metrics"]["rollback_drill"]
    assert (drill["threshold_asked"], drill["threshold"], drill["threshold_raised"]) == (
        0.99,
        0.99,
        False,
    )
    doc = summary(bundle, "pole")
    assert doc["metrics"]["bc_trainer"]["accuracy"] == 1.0
    pole_steps = steps(doc)
    assert [pole_steps[k]["outcome"] for k in ("bc_trainer", "anneal_smoke")] == ["passed"] * 2
    drill_step = pole_steps["rollback_drill"]
    assert drill_step["outcome"] == "failed" and drill_step["cause"] == "drill_unfailable"
    assert "no threshold of at most 1 can make the BC gate fail" in drill_step["message"]
    assert f"bc.holdout in {given}" in drill_step["remedial_action"]
    assert doc["metrics"]["rollback_drill"]["threshold"] is None
    assert pole_steps["artefact_capture"]["cause"] == "after_failed_steps"
    report = DatasetFiles(bundle, "pole").report.read_text("utf-8")
    assert "| Rollback drill threshold (step 4) | none | asked 0.9900: " in report
