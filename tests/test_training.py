"""The BC stage end to end, in process: real captures, real training, the gate, promotion,
rollback and the run log."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import TrainingHarness, load_config
from harness.config import Config
from harness.datasets.capture import Episode, write_capture
from harness.datasets.checksums import build_sheet
from harness.datasets.curation import add_capture
from harness.datasets.manifest import new_manifest
from harness.errors import HarnessError, IntegrityError
from harness.training.checkpoints import CheckpointStore, load_checkpoint
from harness.training.policy import PolicySpec, load_policy
from harness.training.runlog import log_path, read_log
from harness.validation import schema_problems

from .conftest import PREFLIGHT, REPO, Dataset

BASE = REPO / "configs" / "examples" / "poc_hybrid.yaml"


def configured(tmp_path: Path, dataset: Dataset | None = None, **changes: Any) -> Config:
    """The base config with its outputs in ``tmp_path`` (and another dataset if given)."""
    overrides: dict[str, Any] = {
        "output.log_dir": tmp_path / "logs",
        "output.checkpoint_dir": tmp_path / "ckpt",
    }
    if dataset is not None:
        overrides["dataset.manifest"] = dataset.manifest_path
        overrides["dataset.checksums"] = dataset.sheet_path
    overrides.update({k.replace("__", "."): v for k, v in changes.items()})
    return load_config(BASE).override(overrides)


def preflight(tmp_path: Path, **changes: Any) -> Config:
    return configured(tmp_path, Dataset(PREFLIGHT, "preflight"), **changes)


def test_base_config_passes_on_idle_v1_and_promotes(tmp_path: Path) -> None:
    result = TrainingHarness(configured(tmp_path)).run_bc_training()

    # An honest margin on both sides: well above the 0.8 gate, below what noisy labels allow.
    assert 0.85 <= result.accuracy <= 0.95, result.accuracy
    assert result.passed and not result.rolled_back and result.reasons == []
    assert result.threshold == 0.8
    assert result.baseline < result.accuracy
    assert set(result.per_action_recall) == {"0", "1"}
    assert result.train_size == {"episodes": 8, "steps": 4000}
    assert result.holdout_size == {"episodes": 2, "steps": 1000}

    store = CheckpointStore(tmp_path / "ckpt")
    promoted = store.promoted()
    assert (
        promoted is not None and promoted.id == result.checkpoint_id == result.promoted_checkpoint
    )
    assert promoted.path == result.checkpoint

    records = read_log(log_path(tmp_path / "logs"))
    assert [r["mode"] for r in records] == [("bc")]
    assert records[0] == result.record
    assert records[0]["dataset"] == "idle_v1" and records[0]["run"] == "poc_hybrid"
    assert records[0]["checkpoint"]["status"] == "promoted"


def test_the_checkpoint_reproduces_the_gate_accuracy(tmp_path: Path) -> None:
    from harness.datasets.capture import read_capture

    result = TrainingHarness(preflight(tmp_path)).run_bc_training()
    checkpoint = load_checkpoint(result.checkpoint)
    policy = load_policy(
        PolicySpec.from_json(checkpoint.meta["policy"]),
        checkpoint.file("policy.pt").read_bytes(),
    )
    # Score the hold-out episodes named in the record with the reloaded weights.
    correct = total = 0
    for name in result.record["holdout"]["names"]:
        capture, demo = name.split("/")
        _, episodes = read_capture(PREFLIGHT / "captures" / "preflight" / f"{capture}.h5")
        episode = episodes[int(demo.removeprefix("demo_"))]
        correct += int(np.sum(policy.act(episode.obs) == episode.actions))
        total += len(episode)
    assert correct / total == result.accuracy
    assert checkpoint.meta["config_hash"] == preflight(tmp_path).hash()
    assert schema_problems(checkpoint.meta, "checkpoint") == []


def test_same_config_and_seed_give_the_same_metrics_and_weights(tmp_path: Path) -> None:
    first = TrainingHarness(preflight(tmp_path / "a")).run_bc_training()
    second = TrainingHarness(preflight(tmp_path / "b")).run_bc_training()
    other_seed = TrainingHarness(preflight(tmp_path / "c", seed=1)).run_bc_training()

    def metrics(r: Any) -> dict[str, Any]:
        return {k: v for k, v in r.record.items() if k not in ("started_at", "duration_s")}

    assert metrics(first) == metrics(second)
    assert first.checkpoint_id == second.checkpoint_id  # content-addressed: same bytes
    assert other_seed.checkpoint_id != first.checkpoint_id


def test_a_failed_gate_rolls_back_and_leaves_the_store_byte_for_byte(tmp_path: Path) -> None:
    passed = TrainingHarness(preflight(tmp_path)).run_bc_training()
    store = CheckpointStore(tmp_path / "ckpt")
    before = store.snapshot()
    assert before  # the drill runs against a store that holds a promoted checkpoint

    failed = TrainingHarness(preflight(tmp_path, bc__accuracy_threshold=0.95)).run_bc_training()

    assert not failed.passed and failed.rolled_back
    assert failed.accuracy == passed.accuracy  # same training; only the gate moved
    assert any("below the threshold 0.95" in r for r in failed.reasons)
    assert store.snapshot() == before
    assert store.promoted().id == passed.checkpoint_id == failed.promoted_checkpoint
    # The failed checkpoint is kept aside for inspection, outside the store.
    assert failed.checkpoint.parent == tmp_path / "logs" / "rejected"
    assert load_checkpoint(failed.checkpoint).meta["metrics"]["accuracy"] == failed.accuracy

    records = read_log(log_path(tmp_path / "logs"))
    assert [(r["passed"], r["rolled_back"]) for r in records] == [(True, False), (False, True)]
    assert records[1]["checkpoint"]["status"] == "rejected"
    assert (tmp_path / "logs" / records[1]["checkpoint"]["path"]).resolve() == failed.checkpoint


def test_a_failed_gate_on_an_empty_store_writes_nothing_there(tmp_path: Path) -> None:
    result = TrainingHarness(preflight(tmp_path, bc__accuracy_threshold=0.95)).run_bc_training()
    assert result.rolled_back and result.promoted_checkpoint is None
    assert not (tmp_path / "ckpt").exists()


def _imbalanced(root: Path) -> Dataset:
    """90 % of the labels are action 0, and the observations say nothing about the action."""
    ds = Dataset(root, "imbalanced")
    manifest = new_manifest(ds.manifest_path, ds.name, "CartPole-v1", ds.captures)
    rng = np.random.default_rng(7)
    episodes = []
    for _ in range(10):
        steps = 200
        terminated = np.zeros(steps, dtype=bool)
        terminated[-1] = True
        episodes.append(
            Episode(
                obs=rng.uniform(-0.05, 0.05, (steps, 4)).astype(np.float32),
                actions=(rng.random(steps) < 0.1).astype(np.int64),
                rewards=np.ones(steps, dtype=np.float32),
                terminated=terminated,
                truncated=np.zeros(steps, dtype=bool),
            )
        )
    write_capture(
        ds.captures / "skewed.h5",
        episodes,
        env_id="CartPole-v1",
        demonstrator="random",
        demonstrator_params={"p_action_1": 0.1},
        seed=7,
    )
    add_capture(manifest, ds.captures / "skewed.h5")
    manifest.with_status("skewed", "accepted", "synthetic, imbalanced on purpose")
    manifest.save()
    build_sheet(manifest, ds.sheet_path).save()
    return ds


def test_the_majority_class_cannot_pass_on_an_imbalanced_dataset(tmp_path: Path) -> None:
    ds = _imbalanced(tmp_path / "data")
    result = TrainingHarness(configured(tmp_path, ds)).run_bc_training()

    assert result.baseline >= 0.85
    assert result.accuracy >= result.threshold  # the threshold alone would have passed it
    assert not result.passed and result.rolled_back
    assert any("majority-class baseline" in r for r in result.reasons)
    assert result.record["majority_action"] == 0
    assert result.per_action_recall["1"] is not None and result.per_action_recall["1"] < 0.5


def test_a_corrupt_capture_stops_training_before_anything_is_written(
    small_dataset: Dataset, tmp_path: Path
) -> None:
    capture = small_dataset.capture("a")
    data = bytearray(capture.read_bytes())
    data[len(data) // 2] ^= 0xFF
    capture.write_bytes(bytes(data))

    with pytest.raises(IntegrityError, match=r"small: integrity check failed.*digest mismatch"):
        TrainingHarness(configured(tmp_path / "out", small_dataset)).run_bc_training()
    assert not (tmp_path / "out").exists()


def test_training_on_unverified_data_is_an_explicit_recorded_choice(
    small_dataset: Dataset, tmp_path: Path
) -> None:
    (small_dataset.sheet_path).write_text(
        json.dumps({"schema_version": 1, "dataset": "small", "algorithm": "sha256", "entries": {}})
    )
    config = configured(tmp_path, small_dataset)
    with pytest.raises(IntegrityError):
        TrainingHarness(config).run_bc_training()
    result = TrainingHarness(config, verify=False).run_bc_training()
    assert result.record["verified"] is False


def test_an_env_that_is_not_the_datasets_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"env\.id is 'Acrobot-v1'.*recorded in 'CartPole-v1'"):
        TrainingHarness(preflight(tmp_path, env__id="Acrobot-v1")).run_bc_training()


def test_a_crash_while_logging_leaves_the_previous_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    TrainingHarness(preflight(tmp_path)).run_bc_training()
    log = log_path(tmp_path / "logs")
    before = log.read_bytes()

    def crash(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(HarnessError, match="the store and the run log are as they were"):
        TrainingHarness(preflight(tmp_path)).run_bc_training()
    monkeypatch.undo()
    assert log.read_bytes() == before
    assert not [p for p in log.parent.iterdir() if p.name.endswith(".tmp")]


def test_every_record_matches_the_run_log_schema(tmp_path: Path) -> None:
    TrainingHarness(preflight(tmp_path)).run_bc_training()
    TrainingHarness(preflight(tmp_path, bc__accuracy_threshold=1.0)).run_bc_training()
    records = json.loads(log_path(tmp_path / "logs").read_text())
    assert len(records) == 2 and schema_problems(records, "run_log") == []
    bad = [dict(records[1], rolled_back=False)]
    assert schema_problems(bad, "run_log")  # a failed gate must record its rollback


def test_the_record_keeps_each_epochs_loss_and_hold_out_accuracy(tmp_path: Path) -> None:
    from harness.training.bc import load_demonstrations, split_by_episode, train
    from harness.training.policy import MLPPolicy, policy_bytes
    from harness.training.seeding import deterministic
    from harness.training.stages import env_policy

    config = preflight(tmp_path, bc__epochs=4)
    result = TrainingHarness(config).run_bc_training()
    history = result.record["epoch_history"]
    assert history == result.epoch_history and result.mae_per_dimension is None
    assert [e["epoch"] for e in history] == [1, 2, 3, 4]
    assert history[-1]["holdout_accuracy"] == result.accuracy  # the gate's figure, last epoch
    assert history[-1]["train_loss"] == result.record["train_loss"]
    assert len({e["holdout_accuracy"] for e in history}) > 1  # measured after each epoch
    assert "mae_per_dimension" not in result.record

    # Measuring the hold-out between epochs leaves training as it was: the same seed without
    # the measurement gives the promoted weights byte for byte.
    spec = env_policy(config)[0]
    demos = load_demonstrations(TrainingHarness(config).load_dataset(), spec)
    train_eps, _ = split_by_episode(len(demos.refs), config.bc.holdout, config.seed)
    with deterministic(config.seed) as generator:
        policy = MLPPolicy(spec)
        stats = train(policy, *demos.frames(train_eps), config.bc, generator)
    assert stats.epoch_losses == [e["train_loss"] for e in history]
    assert policy_bytes(policy) == load_checkpoint(result.checkpoint).file("policy.pt").read_bytes()


def test_a_damaged_store_is_refused_before_training(tmp_path: Path) -> None:
    TrainingHarness(preflight(tmp_path)).run_bc_training()
    store = CheckpointStore(tmp_path / "ckpt")
    shutil.rmtree(store.promoted().path)
    with pytest.raises(HarnessError, match=r"promoted\.json"):
        TrainingHarness(preflight(tmp_path)).run_bc_training()
    assert len(read_log(log_path(tmp_path / "logs"))) == 1


def test_a_log_dir_inside_the_store_is_refused(tmp_path: Path) -> None:
    config = preflight(tmp_path, output__log_dir=tmp_path / "ckpt" / "logs")
    with pytest.raises(HarnessError, match=r"output\.log_dir .* overlaps output\.checkpoint_dir"):
        TrainingHarness(config)
