"""Mixed and PPO modes end to end, in process: real captures, real CartPole, real training; the
regression gate, promotion, rollback, the run log and the PPO log. PPO runs are shortened
(2 epochs of 4 x 64 steps) to keep the suite fast; the full-size run is in test_run_training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import TrainingHarness
from harness.config import Config
from harness.errors import HarnessError
from harness.training.checkpoints import CheckpointStore, load_checkpoint
from harness.training.evaluation import EVAL_SEED_OFFSET, evaluate
from harness.training.policy import PolicySpec, load_policy
from harness.training.runlog import log_path, read_log, read_ppo_log
from harness.validation import schema_problems

from .test_training import configured

SHORT = {
    "ppo__epochs": 2,
    "ppo__num_envs": 4,
    "ppo__num_steps": 64,
    "ppo__minibatch_size": 64,
    "anneal__eval_episodes": 3,
}


def short(tmp_path: Path, **changes: Any) -> Config:
    return configured(tmp_path, **{**SHORT, **changes})


def test_mixed_promotes_the_fine_tuned_policy_and_logs_both_stages(tmp_path: Path) -> None:
    ppo_log = tmp_path / "out" / "ppo.jsonl"
    result = TrainingHarness(short(tmp_path)).run_mixed_training(ppo_log)

    bc, ppo = result.bc, result.ppo
    assert bc.passed and ppo is not None and ppo.passed and result.passed
    assert ppo.loss_total is not None and np.isfinite(ppo.loss_total)
    store = CheckpointStore(tmp_path / "ckpt")
    promoted = store.promoted()
    assert promoted is not None and promoted.id == ppo.checkpoint_id == ppo.promoted_checkpoint
    assert promoted.id.startswith("ppo-") and set(promoted.meta["files"]) == {
        "policy.pt",
        "value.pt",
    }
    assert promoted.meta["parent"] == promoted.meta["init_checkpoint"] == bc.checkpoint_id

    records = read_log(log_path(tmp_path / "logs"))
    assert [r["mode"] for r in records] == ["bc", "ppo"]
    record = records[1]
    assert record == ppo.record
    assert record["cli_mode"] == "mixed" and record["passed"] and not record["rolled_back"]
    assert record["init_checkpoint"] == record["baseline_checkpoint"] == bc.checkpoint_id
    assert (record["updates"], record["env_steps"]) == (2, 2 * 4 * 64)
    assert record["bc_coef_start"] == 1.0 and record["schedule"] == "linear"
    assert len(record["eval_returns"]) == len(record["baseline_returns"]) == 3
    assert record["ppo_log"] == "../out/ppo.jsonl"

    lines = read_ppo_log(ppo_log)
    assert [line["update"] for line in lines] == [1, 2]
    # anneal.granularity minibatch: the weight falls within each update, 1 -> 0.5 -> 0.
    assert [(line["bc_coef"], line["bc_coef_end"]) for line in lines] == [(1.0, 0.5), (0.5, 0.0)]
    assert all(line["loss_bc"] is not None and line["mode"] == "mixed" for line in lines)
    assert lines[-1]["loss_total"] == record["loss_total"]
    assert lines[-1]["env_steps"] == record["env_steps"]

    # The promoted weights are the evaluated policy: they reproduce the recorded returns.
    policy = load_policy(
        PolicySpec.from_json(promoted.meta["policy"]), promoted.file("policy.pt").read_bytes()
    )
    returns = evaluate(policy, "CartPole-v1", 3, record["eval_seed"])
    assert returns == record["eval_returns"] and record["eval_seed"] == EVAL_SEED_OFFSET


def test_a_forced_regression_rolls_back_and_leaves_the_store_as_bc_left_it(
    tmp_path: Path,
) -> None:
    # A store that already holds the BC checkpoint, as the rerun of a deterministic BC gives.
    bc_only = TrainingHarness(short(tmp_path)).run_bc_training()
    store = CheckpointStore(tmp_path / "ckpt")
    before = store.snapshot()

    # A negative tolerance demands that fine-tuning beat BC, which cannot happen at 500.
    config = short(tmp_path, anneal__regression_tolerance=-1.0)
    result = TrainingHarness(config).run_mixed_training(tmp_path / "ppo.jsonl")

    assert result.bc.checkpoint_id == bc_only.checkpoint_id and result.bc.passed
    ppo = result.ppo
    assert ppo is not None and not ppo.passed and ppo.rolled_back and not result.passed
    assert store.snapshot() == before
    assert ppo.promoted_checkpoint == bc_only.checkpoint_id == store.promoted().id  # type: ignore[union-attr]
    assert ppo.checkpoint == tmp_path / "logs" / "rejected" / ppo.checkpoint_id
    assert load_checkpoint(ppo.checkpoint).stage == "ppo"
    assert "anneal.regression_tolerance -1" in ppo.reasons[0]

    record = read_log(log_path(tmp_path / "logs"))[-1]
    assert (record["mode"], record["passed"], record["rolled_back"]) == ("ppo", False, True)
    assert record["checkpoint"]["status"] == "rejected"
    assert record["promoted_checkpoint"] == bc_only.checkpoint_id
    # The PPO log of a rolled-back stage is kept: it is what explains the regression.
    assert len(read_ppo_log(tmp_path / "ppo.jsonl")) == 2


def test_a_sabotaged_fine_tune_is_caught_by_the_gate(tmp_path: Path) -> None:
    """A real regression, not a forced one: a learning rate 400 times too high and no BC term
    wreck the BC policy, and the default tolerance catches it."""
    config = short(
        tmp_path, ppo__lr=0.1, ppo__epochs=3, anneal__bc_coef_start=0.0, ppo__max_grad_norm=100.0
    )
    ppo = TrainingHarness(config).run_mixed_training().ppo
    assert ppo is not None and ppo.baseline_mean_return is not None
    assert ppo.mean_return < ppo.baseline_mean_return - 25.0
    assert ppo.rolled_back and CheckpointStore(tmp_path / "ckpt").promoted().stage == "bc"  # type: ignore[union-attr]


def test_a_failed_bc_gate_runs_no_ppo(tmp_path: Path) -> None:
    ppo_log = tmp_path / "ppo.jsonl"
    result = TrainingHarness(short(tmp_path, bc__accuracy_threshold=0.95)).run_mixed_training(
        ppo_log
    )
    assert not result.bc.passed and result.ppo is None and result.rolled_back
    assert [r["mode"] for r in read_log(log_path(tmp_path / "logs"))] == ["bc"]
    assert not ppo_log.exists() and not (tmp_path / "ckpt").exists()


def test_same_config_and_seed_give_the_same_ppo_run(tmp_path: Path) -> None:
    runs = []
    for name in ("one", "two"):
        harness = TrainingHarness(short(tmp_path / name))
        result = harness.run_mixed_training(tmp_path / name / "ppo.jsonl")
        lines = read_ppo_log(tmp_path / name / "ppo.jsonl")
        for line in lines:
            line.pop("steps_per_second")
        assert result.ppo is not None
        runs.append((result.ppo.checkpoint_id, result.ppo.returns, lines))
    assert runs[0] == runs[1]
    other = TrainingHarness(short(tmp_path / "seed1", seed=1)).run_mixed_training()
    assert other.ppo is not None and other.ppo.checkpoint_id != runs[0][0]


def test_ppo_from_scratch_has_no_bc_term_and_promotes_into_an_empty_store(
    tmp_path: Path,
) -> None:
    result = TrainingHarness(short(tmp_path)).run_ppo_training(tmp_path / "ppo.jsonl")
    assert result.passed and result.baseline_checkpoint is None
    assert result.record["cli_mode"] == "ppo" and result.record["init_checkpoint"] is None
    assert result.record["bc_coef_start"] is None and result.record["schedule"] is None
    lines = read_ppo_log(tmp_path / "ppo.jsonl")
    assert all(line["loss_bc"] is None and line["bc_coef"] == 0.0 for line in lines)
    assert [r["mode"] for r in read_log(log_path(tmp_path / "logs"))] == ["ppo"]
    assert CheckpointStore(tmp_path / "ckpt").promoted().id == result.checkpoint_id  # type: ignore[union-attr]


def test_a_failure_during_the_stage_leaves_no_partial_ppo_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "out").mkdir()
    ppo_log = tmp_path / "out" / "ppo.jsonl"
    ppo_log.write_text("previous run\n")

    def broken(*args: Any, **kwargs: Any) -> list[float]:
        raise RuntimeError("evaluation crashed")

    monkeypatch.setattr("harness.training.stages.evaluate", broken)
    with pytest.raises(RuntimeError, match="evaluation crashed"):
        TrainingHarness(short(tmp_path)).run_mixed_training(ppo_log)
    assert ppo_log.read_text() == "previous run\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ppo.jsonl"]
    assert [r["mode"] for r in read_log(log_path(tmp_path / "logs"))] == ["bc"]


def test_ppo_log_paths_that_would_break_a_promise_are_refused(tmp_path: Path) -> None:
    harness = TrainingHarness(short(tmp_path))
    with pytest.raises(HarnessError, match="inside the checkpoint store"):
        harness.run_mixed_training(tmp_path / "ckpt" / "ppo.jsonl")
    with pytest.raises(HarnessError, match="names the run log"):
        harness.run_mixed_training(tmp_path / "logs" / "anneal_results.json")
    (tmp_path / "folder").mkdir()
    with pytest.raises(HarnessError, match="names a folder"):
        harness.run_ppo_training(tmp_path / "folder")
    assert not (tmp_path / "logs").exists() and not (tmp_path / "ckpt").exists()


def test_every_ppo_record_and_line_matches_its_schema(tmp_path: Path) -> None:
    TrainingHarness(short(tmp_path)).run_mixed_training(tmp_path / "ppo.jsonl")
    records = json.loads(log_path(tmp_path / "logs").read_text())
    assert schema_problems(records, "run_log") == []
    broken = {**records[1], "loss_total": None}  # a passed stage must have a finite loss
    assert schema_problems([broken], "run_log") != []
    assert schema_problems([{**records[1], "surprise": 1}], "run_log") != []
    for text in (tmp_path / "ppo.jsonl").read_text().splitlines():
        assert schema_problems(json.loads(text), "ppo_log") == []
    assert schema_problems({**json.loads(text), "clip_fraction": 2}, "ppo_log") != []


def test_no_minibatch_is_left_with_a_single_frame(tmp_path: Path) -> None:
    """9 frames in minibatches of 8 used to leave a minibatch of one frame, whose advantage
    standard deviation is NaN; the update splits the frames evenly instead."""
    config = short(tmp_path, ppo__num_envs=1, ppo__num_steps=9, ppo__minibatch_size=8)
    ppo = TrainingHarness(config).run_mixed_training().ppo
    assert ppo is not None and ppo.passed
    assert all(np.isfinite(u.loss_total) and np.isfinite(u.loss_policy) for u in ppo.updates)
