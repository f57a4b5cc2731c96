"""Data-parallel training under torchrun (``harness/training/distributed.py``).

The fast tests check the launch's parsing and that a single process takes none of the
distributed path. The slow ones run real torchrun jobs of two processes (gloo, CPU): BC and PPO
against one process, the exit codes, and a rank killed mid-training.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from acceptance.cli_runs import job_exit_code, launch_argv
from harness.config import load_config
from harness.errors import HarnessError, SchemaError
from harness.training import distributed
from harness.training.checkpoints import CheckpointStore
from harness.training.runlog import log_path

from .conftest import REPO
from .test_run_training import overlay, run_training

BASE = REPO / "configs" / "examples" / "poc_hybrid.yaml"
SCRIPT = REPO / "scripts" / "run_training.py"
DRIVER = REPO / "tests" / "distributed_ppo_driver.py"
BC_FOR_MINUTES = ("--mode", "bc", "--epochs", "3000", "--seed", "1")


# --- fast: the launch, and the single process untouched ---------------------------------------


def test_no_torchrun_environment_is_a_single_process() -> None:
    assert distributed.launched({}) is distributed.SINGLE
    world = distributed.launched({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert (world.rank, world.size, world.local_rank, world.writer) == (1, 2, 1, False)


@pytest.mark.parametrize(
    "env",
    [
        {"RANK": "x", "WORLD_SIZE": "2"},
        {"RANK": "2", "WORLD_SIZE": "2"},
        {"RANK": "0", "WORLD_SIZE": "0"},
    ],
)
def test_a_broken_torchrun_environment_is_one_line(env: dict[str, str]) -> None:
    with pytest.raises(HarnessError, match="torchrun environment"):
        distributed.launched(env)


def test_single_process_helpers_are_identities() -> None:
    """Outside torchrun nothing is all-reduced, gathered or broadcast, and
    torch.distributed is not even initialised."""
    with distributed.launch("cpu", distributed.SINGLE) as world:
        assert world is distributed.SINGLE and distributed.current() is world
        batch = torch.arange(10)
        assert distributed.share(batch) is batch
        param = torch.nn.Parameter(torch.ones(3))
        param.grad = torch.full((3,), 2.0)
        assert distributed.reduce_gradients([param], [1.5, 2.5]) == [1.5, 2.5]
        assert param.grad.tolist() == [2.0, 2.0, 2.0]
        assert distributed.gather("x") == ["x"]
        assert distributed.on_writer(lambda: 7) == 7
        assert distributed.agree(3) == 3
    assert not torch.distributed.is_initialized()


def test_share_splits_a_minibatch_over_the_ranks() -> None:
    batch = torch.arange(7)
    shares = [distributed.share(batch, distributed.World(r, 2)) for r in range(2)]
    assert [s.tolist() for s in shares] == [[0, 1, 2, 3], [4, 5, 6]]


def test_num_envs_must_split_over_the_ranks() -> None:
    config = load_config(BASE)  # 8 environments
    distributed.check_num_envs(config, distributed.World(0, 2))
    with pytest.raises(HarnessError, match=r"poc_hybrid.yaml: ppo.num_envs 8 does not split"):
        distributed.check_num_envs(config, distributed.World(0, 3))


def test_training_device_is_checked_and_left_out_of_the_hash(tmp_path: Path) -> None:
    base = load_config(BASE)
    cuda = base.override({"training.device": "auto"})
    assert cuda.training.device == "auto" and cuda.hash() == base.hash()
    with pytest.raises(SchemaError, match=r"training\.device"):
        base.override({"training.device": "tpu"})


def test_the_job_exit_code_is_the_root_cause_of_torchrun_s_summary() -> None:
    summary = (
        "Failures:\n[1]:\n  exitcode  : -15 (pid: 2)\n------\n"
        "Root Cause (first observed failure):\n[0]:\n  time      : now\n"
        "  exitcode  : 3 (pid: 1)\n"
    )
    assert job_exit_code(1, summary) == 3
    assert job_exit_code(0, "") == 0
    assert job_exit_code(1, "no summary") == 1


# --- slow: real torchrun jobs ----------------------------------------------------------------


def torchrun(*args: str | Path, nproc: int = 2, timeout: float = 600) -> tuple[int, str, str]:
    """A torchrun job of ``nproc`` processes: its ranks' exit code, stdout and stderr."""
    done = subprocess.run(
        [*launch_argv("torchrun", nproc), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )
    return job_exit_code(done.returncode, done.stderr), done.stdout, done.stderr


def records(config: Path) -> list[dict]:
    document = json.loads(log_path(load_config(config).output.log_dir).read_text())
    return document["records"] if isinstance(document, dict) else document


def outputs(tmp_path: Path, name: str, *sets: str) -> Path:
    return overlay(
        tmp_path / f"{name}.yaml",
        f"output.log_dir={tmp_path / name / 'logs'}",
        f"output.checkpoint_dir={tmp_path / name / 'store'}",
        *sets,
    )


def promoted_weights(config: Path) -> dict[str, torch.Tensor]:
    promoted = CheckpointStore(load_config(config).output.checkpoint_dir).promoted()
    assert promoted is not None
    return torch.load(promoted.path / "policy.pt", weights_only=True)


@pytest.mark.slow
def test_bc_on_two_ranks_gives_the_single_process_weights(tmp_path: Path) -> None:
    """Same seed and global batch; 255 frames a batch so that the shares differ in size and the
    last batch of an epoch is partial."""
    sets = ("bc.batch_size=255", "bc.epochs=10")
    one, two = outputs(tmp_path, "one", *sets), outputs(tmp_path, "two", *sets)
    single = run_training(one, "--mode", "bc")
    assert single.returncode == 0, single.stderr
    code, stdout, stderr = torchrun(SCRIPT, two, "--mode", "bc")
    assert code == 0, stderr
    assert "data-parallel: 2 processes" in stdout
    a, b = promoted_weights(one), promoted_weights(two)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=0, atol=1e-5), key
    (r1,), (r2,) = records(one), records(two)
    assert (r1["world_size"], r2["world_size"]) == (1, 2)
    assert r1["accuracy"] == r2["accuracy"] and r1["holdout"] == r2["holdout"]


@pytest.mark.slow
def test_ppo_on_two_ranks_gives_the_single_process_rollouts(tmp_path: Path) -> None:
    """2 ranks x 4 environments against 1 x 8 on Acrobot-v1: the first update's rollout
    statistics are equal; the losses and weights differ only by float rounding (the values and
    logits of 4 observations a call against 8; gradients summed in another order)."""
    single = subprocess.run(
        [sys.executable, str(DRIVER), str(tmp_path / "one.json"), "8"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr
    code, _, stderr = torchrun(DRIVER, tmp_path / "two.json", "8")
    assert code == 0, stderr
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert (one["world_size"], two["world_size"]) == (1, 2)
    first, other = one["updates"][0], two["updates"][0]
    for key in ("episodes", "mean_episode_return", "env_steps"):
        assert first[key] == other[key], key
    assert first["env_steps"] == 8 * 128
    for a, b in zip(one["updates"], two["updates"], strict=True):
        for key in ("loss_total", "loss_policy", "loss_value", "entropy", "approx_kl"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key
    for key, values in one["weights"].items():
        assert np.allclose(values, two["weights"][key], rtol=0, atol=1e-5), key


@pytest.mark.slow
def test_mixed_under_torchrun_writes_one_record_per_stage(tmp_path: Path) -> None:
    config = outputs(tmp_path, "mixed")
    ppo_log = tmp_path / "ppo.jsonl"
    code, stdout, stderr = torchrun(
        SCRIPT, config, "--mode", "mixed", "--epochs", "1", "--ppo-log", ppo_log
    )
    assert code == 0, stderr
    assert [(r["mode"], r["world_size"]) for r in records(config)] == [("bc", 2), ("ppo", 2)]
    assert records(config)[1]["env_steps"] == 8 * 256
    assert len(ppo_log.read_text().splitlines()) == 1  # one PPO log line, rank 0's
    assert stdout.count("gate passed") == 2  # one report, rank 0's


@pytest.mark.slow
def test_exit_codes_under_torchrun(tmp_path: Path) -> None:
    """The job's code is the documented one: bad config 2 (before the process group), a
    corrupted capture 1 (rank 0 verifies), a failed gate 3 with the store byte-identical.
    torchrun stops the other ranks (SIGTERM, -15) once one has exited non-zero: a rank that
    exits a moment after another may show -15 in its summary, never another code."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.read_text().replace("batch_size: 256", "batch_size: -1"))
    code, _, stderr = torchrun(SCRIPT, bad, "--mode", "bc")
    assert code == 2 and set(rank_codes(stderr)) <= {2, -15}, stderr

    config = outputs(tmp_path, "drill")
    passed = run_training(config, "--mode", "bc")
    assert passed.returncode == 0, passed.stderr
    store = CheckpointStore(load_config(config).output.checkpoint_dir)
    before = store.snapshot()
    strict = overlay(tmp_path / "strict.yaml", "bc.accuracy_threshold=0.95", base=config)
    code, _, stderr = torchrun(SCRIPT, strict, "--mode", "mixed", "--epochs", "1")
    assert code == 3 and set(rank_codes(stderr)) <= {3, -15}, stderr
    assert store.snapshot() == before
    assert [(r["mode"], r["rolled_back"], r["world_size"]) for r in records(strict)][1:] == [
        ("bc", True, 2)
    ]

    corrupt = _corrupted_dataset(tmp_path)
    code, _, stderr = torchrun(SCRIPT, corrupt, "--mode", "bc")
    assert code == 1 and set(rank_codes(stderr)) <= {1, -15}, stderr
    assert "integrity check failed" in stderr
    assert not log_path(tmp_path / "corrupt" / "logs").exists()


@pytest.mark.slow
def test_every_rank_exits_with_the_writer_s_code(tmp_path: Path) -> None:
    """Two ranks started by hand (torchrun's environment, no torchrun to stop one early): the
    gate fails on rank 0, and rank 1, which only waited for rank 0's outcome, exits 3 too."""
    config = outputs(tmp_path, "ranks", "bc.accuracy_threshold=0.95")
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "WORLD_SIZE": "2",
    }
    ranks = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(config), "--mode", "bc"],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for r in range(2)
    ]
    outs = [rank.communicate(timeout=300) for rank in ranks]
    assert [rank.returncode for rank in ranks] == [3, 3], outs
    assert "gate failed" in outs[0][1] and outs[1] == ("", "")  # rank 0 reports for the job
    assert [r["world_size"] for r in records(config)] == [2]


def rank_codes(stderr: str) -> list[int]:
    """The exit codes torchrun's failure summary lists, one per failed rank, root cause last."""
    return [int(c) for c in re.findall(r"exitcode\s*:\s*(-?\d+)", stderr)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _corrupted_dataset(tmp_path: Path) -> Path:
    """A copy of idle_v1 with one accepted capture's bytes changed, and a config on it."""
    import shutil

    data = tmp_path / "data"
    for part in ("manifests", "checksums", "captures/idle_v1"):
        shutil.copytree(REPO / "data" / "bc_datasets" / part, data / part, dirs_exist_ok=True)
    capture = data / "captures" / "idle_v1" / "cap_001.h5"
    raw = bytearray(capture.read_bytes())
    raw[-100] ^= 0xFF
    capture.write_bytes(bytes(raw))
    return outputs(
        tmp_path,
        "corrupt",
        f"dataset.manifest={data / 'manifests' / 'idle_v1.json'}",
        f"dataset.checksums={data / 'checksums' / 'idle_v1.json'}",
    )


@pytest.mark.slow
def test_a_rank_killed_mid_training_leaves_the_store_and_log_whole(tmp_path: Path) -> None:
    config = outputs(tmp_path, "killed")
    first = run_training(config, "--mode", "bc")
    assert first.returncode == 0, first.stderr
    store = CheckpointStore(load_config(config).output.checkpoint_dir)
    log = log_path(tmp_path / "killed" / "logs")
    before, log_before = store.snapshot(), log.read_bytes()
    job = subprocess.Popen(
        [*launch_argv("torchrun", 2), str(SCRIPT), str(config), *BC_FOR_MINUTES],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert job.stdout is not None
        # Rank 0 reports the job once the process group stands, just before training.
        assert "data-parallel: 2 processes" in job.stdout.readline()
        time.sleep(2)  # inside BC training (its 3,000 epochs take minutes)
        os.kill(_rank_pid(job.pid, 1), signal.SIGKILL)
        _, stderr = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0
    assert "exitcode  : -9" in stderr, stderr
    assert store.snapshot() == before
    assert log.read_bytes() == log_before
    assert not (tmp_path / "killed" / "logs" / "rejected").exists()


def _rank_pid(launcher: int, rank: int) -> int:
    """The pid of the worker of ``rank`` that torchrun ``launcher`` started."""
    for pid in _children(launcher):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return pid
    raise AssertionError(f"torchrun {launcher} has no worker of rank {rank}")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found.extend(int(c) for c in children)
    return found
