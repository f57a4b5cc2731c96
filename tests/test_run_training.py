"""``scripts/run_training.py`` and ``harness train`` as a user runs them: real subprocesses for
the documented bc and mixed paths, in-process calls for the many ways input can be wrong."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import TrainingHarness
from harness.training.checkpoints import CheckpointStore
from harness.training.runlog import log_path, read_ppo_log
from harness.validation import schema_problems

from .conftest import REPO, assert_one_line_error, call_cli

BASE = REPO / "configs" / "examples" / "poc_hybrid.yaml"
SCRIPT = REPO / "scripts" / "run_training.py"


def run_training(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def overlay(out: Path, *sets: str, base: Path = BASE) -> Path:
    args: list[str | Path] = ["config", "overlay", base, "-o", out]
    for s in sets:
        args += ["--set", s]
    result = call_cli(*args)
    assert result.returncode == 0, result.stderr
    return out


def test_bc_passes_then_a_forced_gate_failure_rolls_back(tmp_path: Path) -> None:
    """The documented bc path: a pass, then a forced gate failure, with real subprocesses."""
    ok = overlay(
        tmp_path / "ok.yaml",
        f"output.log_dir={tmp_path / 'logs'}",
        f"output.checkpoint_dir={tmp_path / 'ckpt'}",
    )
    strict = overlay(tmp_path / "strict.yaml", "bc.accuracy_threshold=0.95", base=ok)

    passed = run_training(ok, "--mode", "bc")
    assert passed.returncode == 0, passed.stderr
    assert "gate passed" in passed.stdout and passed.stderr == ""
    store = CheckpointStore(tmp_path / "ckpt")
    before = store.snapshot()

    failed = run_training(strict, "--mode", "bc")
    assert failed.returncode == 3, failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr
    assert failed.stderr.strip().count("\n") == 0
    assert "rolled back" in failed.stderr and "below the threshold 0.95" in failed.stderr
    assert store.snapshot() == before

    records = json.loads(log_path(tmp_path / "logs").read_text())
    assert schema_problems(records, "run_log") == []
    assert [(r["mode"], r["passed"], r["rolled_back"]) for r in records] == [
        ("bc", True, False),
        ("bc", False, True),
    ]
    assert records[1]["promoted_checkpoint"] == records[0]["checkpoint"]["id"]

    # In process, the same config gives the same accuracy to the last digit.
    again = TrainingHarness(ok, overrides={"output.log_dir": tmp_path / "again"})
    assert again.run_bc_training().accuracy == records[0]["accuracy"]


def test_mixed_passes_and_a_forced_regression_rolls_back(tmp_path: Path) -> None:
    """The documented mixed path: the base config's mixed --epochs 1 passes; with a negative
    regression tolerance the PPO stage rolls back and leaves the store as BC left it. The two
    runs use separate folders and run at the same time."""
    ok = overlay(
        tmp_path / "ok.yaml",
        f"output.log_dir={tmp_path / 'ok' / 'logs'}",
        f"output.checkpoint_dir={tmp_path / 'ok' / 'ckpt'}",
    )
    regress = overlay(
        tmp_path / "regress.yaml",
        f"output.log_dir={tmp_path / 'regress' / 'logs'}",
        f"output.checkpoint_dir={tmp_path / 'regress' / 'ckpt'}",
        "anneal.regression_tolerance=-1",
    )
    # The regression drill's store already holds the BC checkpoint that its BC stage will give.
    TrainingHarness(regress).run_bc_training()
    store = CheckpointStore(tmp_path / "regress" / "ckpt")
    before = store.snapshot()

    ppo_log = tmp_path / "ok" / "ppo.jsonl"
    runs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(config), "--mode", "mixed", "--epochs", "1", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for config, extra in ((ok, ["--ppo-log", str(ppo_log)]), (regress, []))
    ]
    (ok_out, ok_err), (regress_out, regress_err) = (run.communicate(timeout=300) for run in runs)

    assert runs[0].returncode == 0, ok_err
    assert ok_err == "" and "ppo: gate passed" in ok_out
    records = json.loads(log_path(tmp_path / "ok" / "logs").read_text())
    assert schema_problems(records, "run_log") == []
    assert [(r["mode"], r["passed"]) for r in records] == [("bc", True), ("ppo", True)]
    assert isinstance(records[1]["loss_total"], float) and records[1]["updates"] == 1
    lines = read_ppo_log(ppo_log)
    assert len(lines) == 1 and lines[0]["env_steps"] == 8 * 256

    assert runs[1].returncode == 3, regress_err
    assert "Traceback" not in regress_out + regress_err
    assert regress_err.strip().count("\n") == 0 and "ppo gate failed" in regress_err
    assert "regression gate FAILED" in regress_out
    assert store.snapshot() == before
    last = json.loads(log_path(tmp_path / "regress" / "logs").read_text())[-1]
    assert (last["mode"], last["passed"], last["rolled_back"]) == ("ppo", False, True)


def test_epochs_set_the_last_stages_epochs(tmp_path: Path) -> None:
    ok = overlay(
        tmp_path / "ok.yaml",
        f"output.checkpoint_dir={tmp_path / 'ckpt'}",
        "ppo.num_envs=2",
        "ppo.num_steps=32",
        "ppo.minibatch_size=32",
        "anneal.eval_episodes=2",
    )
    result = call_cli("train", ok, "--mode", "ppo", "--epochs", "2", "--log-dir", tmp_path / "l")
    assert result.returncode == 0, result.stderr
    assert "2 update(s) from scratch" in result.stdout
    (record,) = json.loads(log_path(tmp_path / "l").read_text())
    assert (record["updates"], record["env_steps"], record["ppo_log"]) == (2, 128, None)


@pytest.mark.parametrize(
    ("setting", "fragments"),
    [
        ("bc.accuracy_treshold: 0.8", ["bad.yaml", "bc.accuracy_treshold", "unknown key"]),
        ("bc.accuracy_threshold: 1.5", ["bad.yaml", "bc.accuracy_threshold"]),
        ("bc.accuracy_threshold: -0.1", ["bad.yaml", "bc.accuracy_threshold"]),
        ("bc.epochs: ten", ["bad.yaml", "bc.epochs"]),
        ("dataset.manifest: ../nowhere.json", ["nowhere.json", "not found"]),
    ],
)
def test_bad_configs_get_one_line_and_write_nothing(
    tmp_path: Path, setting: str, fragments: list[str]
) -> None:
    import yaml

    doc = yaml.safe_load(BASE.read_text())
    doc["output"] = {"log_dir": str(tmp_path / "logs"), "checkpoint_dir": str(tmp_path / "ckpt")}
    doc["dataset"] = {"manifest": str(REPO / "data/bc_datasets/manifests/idle_v1.json")}
    key, value = setting.split(": ")
    section, name = key.split(".")
    doc[section][name] = yaml.safe_load(value)
    bad = tmp_path / "cfg" / "bad.yaml"
    bad.parent.mkdir()
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))

    assert_one_line_error(call_cli("train", bad, "--mode", "bc"), *fragments)
    assert not (tmp_path / "logs").exists() and not (tmp_path / "ckpt").exists()


def test_bad_arguments_get_one_line(tmp_path: Path) -> None:
    assert_one_line_error(call_cli("train", tmp_path / "missing.yaml", "--mode", "bc"), "not found")
    assert_one_line_error(call_cli("train", BASE, "--mode", "dagger"), "invalid choice")
    assert_one_line_error(call_cli("train", BASE, "--mode", "bc", "--epochs", "0"), "--epochs")
    assert_one_line_error(
        call_cli("train", BASE, "--mode", "bc", "--ppo-log", tmp_path / "p.jsonl"), "--ppo-log"
    )


def test_cli_overrides_reach_the_record(tmp_path: Path) -> None:
    ok = overlay(tmp_path / "ok.yaml", f"output.checkpoint_dir={tmp_path / 'ckpt'}")
    result = call_cli(
        "train", ok, "--mode", "bc", "--epochs", "3", "--seed", "5", "--log-dir",
        tmp_path / "here", "--run", "drill",
    )  # fmt: skip
    assert result.returncode in (0, 3), result.stderr
    (record,) = json.loads(log_path(tmp_path / "here").read_text())
    assert (record["epochs"], record["seed"], record["run"]) == (3, 5, "drill")


def test_help_documents_the_exit_codes() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "run_training.py" in result.stdout
    for fragment in ("--mode", "--epochs", "--ppo-log", "--log-dir", "--seed", "3 a gate failed"):
        assert fragment in result.stdout


def test_a_killed_run_never_leaves_half_written_json(tmp_path: Path) -> None:
    """SIGKILL runs at moments spread around their end, when the writes happen: every JSON file
    left behind is whole and valid, and the pointer names a complete checkpoint."""
    ok = overlay(
        tmp_path / "ok.yaml",
        f"output.log_dir={tmp_path / 'logs'}",
        f"output.checkpoint_dir={tmp_path / 'ckpt'}",
    )
    start = time.perf_counter()
    assert run_training(ok, "--mode", "bc").returncode == 0
    solo = time.perf_counter() - start

    # Four runs at once on a shared store and log (other seeds, so other checkpoints to write),
    # each killed at its own moment; running together they are slower than one alone.
    runs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(ok), "--mode", "bc", "--seed", str(seed)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
        )
        for seed in (1, 2, 3, 4)
    ]
    start = time.perf_counter()
    for proc, fraction in zip(runs, (0.9, 1.3, 1.7, 2.1), strict=True):
        time.sleep(max(0.0, solo * fraction - (time.perf_counter() - start)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)

    records = json.loads(log_path(tmp_path / "logs").read_text())
    assert records and schema_problems(records, "run_log") == []
    assert CheckpointStore(tmp_path / "ckpt").promoted() is not None  # verifies its files
    for path in tmp_path.rglob("*.json"):
        json.loads(path.read_text())  # whole, never half
