"""TensorBoard event files (``output.tensorboard``, ``--tensorboard``): written by the harness's
own writer, read back with TensorBoard's own reader, and nothing imported when it is off."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing import event_accumulator, event_file_loader

from harness.training.runlog import log_path, read_log, read_ppo_log
from harness.training.tensorboard_events import (
    FILE_PREFIX,
    StageEvents,
    crc32c,
    event_file,
    masked_crc32c,
)

from .conftest import PREFLIGHT, REPO, call_cli

BASE = REPO / "configs" / "examples" / "poc_hybrid.yaml"
SCRIPT = REPO / "scripts" / "run_training.py"
SB3_TAGS = {
    "rollout/ep_rew_mean",
    "train/loss",
    "train/policy_gradient_loss",
    "train/value_loss",
    "train/entropy_loss",
    "train/approx_kl",
    "train/clip_fraction",
}
HARNESS_TAGS = {"train/bc_loss", "train/bc_coef", "bc/train_loss", "bc/holdout_accuracy"}
# Prints the TensorBoard modules loaded by a training run, after the run.
RUN_AND_LIST_MODULES = (
    "import json, sys\n"
    "from harness.cli import train_main\n"
    "code = train_main(sys.argv[1:], prog='run_training.py')\n"
    "names = sorted(m for m in sys.modules if 'tensorboard' in m.lower())\n"
    "print(json.dumps({'code': code, 'modules': names}))\n"
)


# The files are read with TensorBoard's own reader (the test extra), never the harness's code.


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of a run folder, by tag, as TensorBoard loads it."""
    acc = event_accumulator.EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(s.step, s.value) for s in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def f32(value: float) -> float:
    """A value as an event's float32 ``simple_value`` holds it."""
    import struct

    return struct.unpack("<f", struct.pack("<f", value))[0]


# --- the writer --------------------------------------------------------------------------------


def test_crc32c_is_castagnolis() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert crc32c(b"") == 0
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as theirs

    for data in (b"", b"\x00" * 8, bytes(range(256)), b"brain.Event:2"):
        assert masked_crc32c(data) == theirs(data)


def test_tensorboards_reader_reads_back_every_value(tmp_path: Path) -> None:
    events = StageEvents(tmp_path / "run" / f"{FILE_PREFIX}x", clock=lambda: 1000.5)
    events.scalars(1, {"a/one": 0.25, "a/two": -3.0, "a/skipped": None})
    events.scalars(2, {"a/one": math.nan, "a/two": 1e39})  # beyond float32: infinite
    events.scalars(3, {})  # nothing to log: no event
    events.scalars(2**40, {"a/one": 7.0})
    events.write()

    loaded = list(event_file_loader.EventFileLoader(str(events.path)).Load())
    assert loaded[0].file_version == "brain.Event:2"
    assert [e.wall_time for e in loaded] == [1000.5] * 4
    got = scalars(tmp_path / "run")
    assert got["a/two"] == [(1, -3.0), (2, math.inf)]
    assert got["a/one"][0] == (1, 0.25) and got["a/one"][2] == (2**40, 7.0)
    assert got["a/one"][1][0] == 2 and math.isnan(got["a/one"][1][1])
    assert "a/skipped" not in got


def test_the_reader_checks_the_frames_so_a_damaged_file_stops_it(tmp_path: Path) -> None:
    events = StageEvents(tmp_path / f"{FILE_PREFIX}x", clock=lambda: 0.0)
    events.scalars(1, {"a": 1.0})
    events.scalars(2, {"a": 2.0})
    data = bytearray(events.write().read_bytes())
    data[-6] ^= 0x01  # in the last record's value
    events.path.write_bytes(bytes(data))
    # TensorBoard checks each record's masked CRC-32C: the damaged one is not read.
    assert [e.step for e in event_file_loader.EventFileLoader(str(events.path)).Load()] == [0, 1]


def test_with_a_fixed_clock_two_writes_are_byte_identical(tmp_path: Path) -> None:
    files = []
    for name in ("a", "b"):
        events = StageEvents(tmp_path / name / f"{FILE_PREFIX}bc", clock=lambda: 12.0)
        for epoch in range(1, 4):
            events.bc_epoch(epoch, 1.0 / epoch, 0.5 + epoch / 10)
        files.append(events.write().read_bytes())
    assert files[0] == files[1]


# --- a training run ----------------------------------------------------------------------------


def small_config(tmp_path: Path, *sets: str) -> Path:
    """poc_hybrid on the preflight dataset, PPO cut down to seconds; outputs in tmp_path."""
    out = tmp_path / "small.yaml"
    args: list[str | Path] = ["config", "overlay", BASE, "-o", out]
    for change in (
        f"dataset.manifest={PREFLIGHT / 'manifests' / 'preflight.json'}",
        f"dataset.checksums={PREFLIGHT / 'checksums' / 'preflight.json'}",
        f"output.log_dir={tmp_path / 'logs'}",
        f"output.checkpoint_dir={tmp_path / 'ckpt'}",
        "bc.epochs=3",  # a policy that still drops the pole in PPO's short rollouts
        "ppo.num_envs=2",
        "ppo.num_steps=64",
        "ppo.minibatch_size=64",
        "anneal.eval_episodes=2",
        *sets,
    ):
        args += ["--set", change]
    result = call_cli(*args)
    assert result.returncode == 0, result.stderr
    return out


def run_listing_modules(*args: str | Path) -> tuple[dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.stdout, result.stderr
    return json.loads(result.stdout.splitlines()[-1]), result.stdout


def test_a_mixed_run_writes_the_sb3_and_harness_tags(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    ppo_log = tmp_path / "ppo.jsonl"
    ran, out = run_listing_modules(
        config, "--mode", "mixed", "--epochs", "2", "--tensorboard", "--ppo-log", ppo_log
    )
    assert ran["code"] == 0, out
    assert f"tensorboard: events in {tmp_path / 'logs'}" in out
    # The writer is the harness's own: neither TensorBoard nor tensorboardX was imported.
    assert ran["modules"] == ["harness.training.tensorboard_events"]
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.glob(f"{FILE_PREFIX}*")) == [
        f"{FILE_PREFIX}bc",
        f"{FILE_PREFIX}ppo",
    ]
    got = scalars(logs)
    assert set(got) >= SB3_TAGS | HARNESS_TAGS

    # The values are the run log's and the PPO log's, at the epochs and the env steps.
    bc = read_log(log_path(logs))[0]
    history = bc["epoch_history"]
    assert got["bc/holdout_accuracy"] == [(e["epoch"], f32(e["holdout_accuracy"])) for e in history]
    assert got["bc/train_loss"] == [(e["epoch"], f32(e["train_loss"])) for e in history]
    lines = read_ppo_log(ppo_log)
    assert got["train/loss"] == [(x["env_steps"], f32(x["loss_total"])) for x in lines]
    assert got["train/entropy_loss"] == [(x["env_steps"], f32(-x["entropy"])) for x in lines]
    assert got["train/bc_coef"] == [(x["env_steps"], f32(x["bc_coef"])) for x in lines]
    assert [step for step, _ in got["train/approx_kl"]] == [128, 256]
    mean_return = read_log(log_path(logs))[1]["mean_return"]
    assert got["eval/mean_reward"] == [(256, f32(mean_return))]
    # Logged once episodes have ended, as Stable-Baselines3 does (none did in the first rollout).
    returns = [(x["env_steps"], x["mean_episode_return"]) for x in lines]
    assert returns[0][1] is None
    assert got["rollout/ep_rew_mean"] == [(s, f32(r)) for s, r in returns if r is not None] != []


def test_off_imports_nothing_and_writes_no_event_file(tmp_path: Path) -> None:
    config = small_config(tmp_path)
    ran, out = run_listing_modules(config, "--mode", "bc", "--epochs", "1")
    assert ran == {"code": 0, "modules": []}, out
    assert list((tmp_path / "logs").glob("*tfevents*")) == []
    assert read_log(log_path(tmp_path / "logs"))[0]["epochs"] == 1


def test_the_config_key_turns_it_on_and_a_rerun_replaces_the_file(tmp_path: Path) -> None:
    from harness import TrainingHarness, load_config

    config = load_config(small_config(tmp_path, "output.tensorboard=true"))
    TrainingHarness(config, progress=False).run_bc_training()
    first = scalars(tmp_path / "logs")
    TrainingHarness(config.override({"bc.epochs": 2}), progress=False).run_bc_training()
    second = scalars(tmp_path / "logs")
    assert [step for step, _ in first["bc/train_loss"]] == [1, 2, 3]
    assert second["bc/train_loss"] == first["bc/train_loss"][:2]  # replaced, same seed
    assert event_file(tmp_path / "logs", "bc").exists()
    assert not list((tmp_path / "logs").glob(f".{FILE_PREFIX}*"))  # no temporary file left


@pytest.mark.slow
def test_the_smoke_run_lists_the_tags(tmp_path: Path) -> None:
    """The rehearsal's smoke command on the base config, as a user runs it."""
    out = tmp_path / "smoke.yaml"
    sets = [f"output.log_dir={tmp_path / 'logs'}", f"output.checkpoint_dir={tmp_path / 'ckpt'}"]
    result = call_cli(
        "config", "overlay", BASE, "-o", out, *(a for s in sets for a in ("--set", s))
    )
    assert result.returncode == 0, result.stderr
    smoke = [out, "--mode", "mixed", "--epochs", "1", "--ppo-log", tmp_path / "ppo.jsonl"]
    run = subprocess.run(
        [sys.executable, SCRIPT, *smoke, "--tensorboard"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    got = scalars(tmp_path / "logs")
    # No episode ends in the smoke's one rollout (8 environments x 256 steps of a policy that
    # balances longer): like Stable-Baselines3, and like the PPO log's null, no ep_rew_mean.
    (line,) = read_ppo_log(tmp_path / "ppo.jsonl")
    assert line["mean_episode_return"] is None and "rollout/ep_rew_mean" not in got
    assert set(got) >= (SB3_TAGS - {"rollout/ep_rew_mean"}) | HARNESS_TAGS | {"eval/mean_reward"}
    assert len(got["bc/holdout_accuracy"]) == 30 and len(got["train/loss"]) == 1
    record = read_log(log_path(tmp_path / "logs"))[1]
    assert got["eval/mean_reward"] == [(2048, f32(record["mean_return"]))]
