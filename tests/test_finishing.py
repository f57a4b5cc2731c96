"""A stage's finish as one transaction: the store and the run log are left either as they were or
wholly as the stage leaves them, whichever write fails, and the failure is one line.

``finish`` runs here on synthetic payloads (bytes; no training, no torch) against a real store and
run log; every write it makes is failed in turn. The CLI tests at the end train for real.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.config import Config, load_config
from harness.datasets.manifest import Manifest, load_manifest
from harness.errors import EXIT_BAD_INPUT, HarnessError
from harness.formatting import utc_now
from harness.training.checkpoints import CheckpointStore, PromotionStands
from harness.training.finishing import FinishError, Finishing, StageContext, finish
from harness.training.results import GateResult
from harness.training.runlog import log_path, read_log, record_digest

from .conftest import PREFLIGHT, REPO, assert_one_line_error, call_cli

BASE = REPO / "configs" / "examples" / "poc_hybrid.yaml"
METRICS: dict[str, Any] = {
    "accuracy": 0.9,
    "threshold": 0.8,
    "majority_baseline": 0.5,
    "majority_action": 0,
    "per_action_recall": {"0": 0.9, "1": 0.9},
    "train": {"episodes": 2, "steps": 100},
    "holdout": {"episodes": 1, "steps": 50},
    "train_accuracy": 0.9,
    "train_loss": 0.1,
}


@functools.cache
def base_config() -> Config:
    return load_config(BASE)


def config(root: Path, **changes: Any) -> Config:
    return base_config().override(
        {
            "dataset.manifest": PREFLIGHT / "manifests" / "preflight.json",
            "dataset.checksums": PREFLIGHT / "checksums" / "preflight.json",
            "output.log_dir": root / "logs",
            "output.checkpoint_dir": root / "ckpt",
            **changes,
        }
    )


@functools.cache
def manifest() -> Manifest:
    return load_manifest(PREFLIGHT / "manifests" / "preflight.json")


def stage(root: Path, payload: bytes, passed: bool = True) -> Finishing:
    """What a BC stage would hand to ``finish``, its parent the store's promoted checkpoint."""
    return Finishing(
        stage="bc",
        gate=GateResult(passed, [] if passed else ["accuracy below the threshold"]),
        files={"policy.pt": payload},
        model={"policy": {"obs_dim": 4, "n_actions": 2, "hidden_sizes": [8]}},
        metrics=METRICS,
        parent=CheckpointStore(root / "ckpt").promoted(),
        lineage={},
        fields={**METRICS, "epochs": 3},
        gate_record={"stage": "bc", "accuracy": 0.9},
        started=utc_now(),
        t0=time.perf_counter(),
    )


def run_finish(root: Path, payload: bytes, passed: bool = True) -> Any:
    ctx = StageContext(config(root), "drill", True, False)
    return finish(ctx, manifest(), CheckpointStore(root / "ckpt"), stage(root, payload, passed))


@pytest.fixture(scope="module")
def old_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a promoted checkpoint and a run log holding its record."""
    root = tmp_path_factory.mktemp("old")
    run_finish(root, b"first weights")
    return root


def fresh(old_state: Path, tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    shutil.copytree(old_state, root, symlinks=True)
    return root


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones included) and its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def state(root: Path) -> tuple[str | None, list[str]]:
    """The store and the run log as their readers see them: the promoted id, the records."""
    promoted = CheckpointStore(root / "ckpt").promoted()
    records = read_log(log_path(root / "logs"))
    return (promoted.id if promoted else None, [record_digest(r) for r in records])


WRITES = (
    (os, "replace"),
    (os, "rename"),
    (os, "fsync"),
    (os, "unlink"),
    (os, "rmdir"),
    (os, "mkdir"),
    (os, "chmod"),
    (tempfile, "mkstemp"),
    (tempfile, "mkdtemp"),
)


@contextmanager
def failing_writes(
    monkeypatch: pytest.MonkeyPatch, fail_at: int | None, sticky: bool = False
) -> Iterator[list[str]]:
    """Count every call that writes (rename, replace, fsync, unlink, mkdir, temp files...);
    the ``fail_at``-th raises ENOSPC, and with ``sticky`` every one after it too."""
    calls: list[str] = []
    with monkeypatch.context() as patch:
        for module, name in WRITES:
            real = getattr(module, name)

            def wrapper(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
                calls.append(_name)
                n = len(calls)
                if fail_at is not None and (n == fail_at or (sticky and n > fail_at)):
                    target = args[-1] if args and isinstance(args[-1], str | Path) else None
                    raise OSError(errno.ENOSPC, "No space left on device", target)
                if _name == "fsync":
                    return None  # counted and failed like the rest; durability is not tested here
                return _real(*args, **kwargs)

            patch.setattr(module, name, wrapper)
        yield calls


def count_writes(old_state: Path, tmp_path: Path, passed: bool) -> int:
    root = fresh(old_state, tmp_path, "count")
    with pytest.MonkeyPatch.context() as patch, failing_writes(patch, None) as calls:
        run_finish(root, b"second weights", passed)
    return len(calls)


@pytest.mark.parametrize("passed", [True, False], ids=["promotion", "rollback"])
@pytest.mark.parametrize("sticky", [False, True], ids=["one-write", "every-write-after"])
def test_failing_each_write_in_turn_leaves_the_old_state_or_the_whole_new_one(
    old_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, passed: bool, sticky: bool
) -> None:
    new_root = fresh(old_state, tmp_path, "new")
    result = run_finish(new_root, b"second weights", passed)
    old, new = state(old_state), state(new_root)
    assert new[1][:-1] == old[1] and (new[0] != old[0]) == passed
    total = count_writes(old_state, tmp_path, passed)
    assert total >= (15 if passed else 8)  # the drill below fails each of them in turn

    outcomes = []
    for k in range(1, total + 1):
        root = fresh(old_state, tmp_path, f"k{k}")
        error: HarnessError | None = None
        with failing_writes(monkeypatch, k, sticky):
            try:
                run_finish(root, b"second weights", passed)
            except HarnessError as exc:
                error = exc
        now = state(root)
        assert now == old or (now[0] == new[0] and len(now[1]) == len(new[1])), (k, now)
        if now != old:  # the same transaction: the same record but for when it ran
            timing = {"duration_s": 0, "started_at": ""}
            record = read_log(log_path(root / "logs"))[-1]
            assert {**record, **timing} == {**result.record, **timing}
        check_error(error, now == old, k)
        outcomes.append("old" if now == old else "new")
        if not sticky and now == old:
            # A single failed write is undone completely: not a byte left behind.
            assert files(root) == files(old_state), k
            continue
        # Whatever was left, the next run finishes: from the old state it writes the new one.
        again = run_finish(root, b"second weights", passed)
        if now == old:
            assert state(root)[0] == new[0] and again.checkpoint_id == result.checkpoint_id
        assert state(root)[0] == (again.checkpoint_id if passed else old[0])
        assert not (root / "ckpt" / "promoting.json").exists()
    print(
        f"failing each of the {total} writes in turn: {outcomes.count('old')} left the old "
        f"state, {outcomes.count('new')} the whole new one"
    )


def check_error(error: HarnessError | None, old: bool, k: int) -> None:
    """A failure is one line, exit 2, and says what is left; no failure means the new state."""
    if error is None:
        assert not old, k  # no error: the stage finished
        return
    message = str(error)
    assert "\n" not in message and error.exit_code == EXIT_BAD_INPUT, (k, message)
    assert "nothing written" not in message
    if old:
        assert isinstance(error, FinishError), (k, message)
        assert message.endswith(
            "the bc stage did not finish: the store and the run log are as they were"
        ), (k, message)
    else:
        assert isinstance(error, PromotionStands) and "it stands" in message, (k, message)


def test_a_damaged_run_log_is_refused_before_anything_is_written(
    old_state: Path, tmp_path: Path
) -> None:
    root = fresh(old_state, tmp_path, "damaged")
    log = log_path(root / "logs")
    log.write_text(log.read_text()[:-20])
    before = files(root)
    with pytest.raises(FinishError) as info:
        run_finish(root, b"second weights")
    message = str(info.value)
    assert message.startswith(f"{log}: not valid JSON") and "\n" not in message
    assert message.endswith("the store and the run log are as they were")
    assert files(root) == before


def test_no_room_on_the_disk_is_refused_before_anything_is_written(
    old_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fresh(old_state, tmp_path, "full")
    before = files(root)
    usage = shutil.disk_usage(root)
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage._replace(free=4096))
    with pytest.raises(FinishError, match="not enough free space") as info:
        run_finish(root, b"second weights")
    assert "\n" not in str(info.value)
    assert files(root) == before


def test_a_log_folder_that_cannot_be_written_is_refused_first(
    old_state: Path, tmp_path: Path
) -> None:
    root = fresh(old_state, tmp_path, "blocked")
    (root / "blocker").write_text("a file where a folder should be\n")
    ctx = StageContext(
        config(root, **{"output.log_dir": root / "blocker" / "logs"}), "r", True, False
    )
    before = files(root)
    with pytest.raises(FinishError, match="blocker: is not a folder"):
        finish(ctx, manifest(), CheckpointStore(root / "ckpt"), stage(root, b"second weights"))
    assert files(root) == before


KILL_AT = """
import os, signal, sys
sys.path.insert(0, {repo!r})
real = os.replace
def replace(src, dst, *a, **k):
    if str(dst).endswith({name!r}):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **k)
os.replace = replace
from pathlib import Path
from tests import test_finishing as t
t.run_finish(Path({root!r}), b"second weights")
"""


@pytest.mark.parametrize(
    ("killed_writing", "expected"),
    [("anneal_results.json", "old"), ("promoted.json", "new")],
    ids=["before-the-record", "before-the-pointer"],
)
def test_a_run_killed_between_the_writes_leaves_the_old_state_or_the_whole_new_one(
    old_state: Path, tmp_path: Path, killed_writing: str, expected: str
) -> None:
    """SIGKILL just before the record's rename, or just before the pointer's: the readers see the
    old state or the whole new one, and the next promotion tidies what was left."""
    new_root = fresh(old_state, tmp_path, "new")
    run_finish(new_root, b"second weights")
    root = fresh(old_state, tmp_path, "killed")
    code = KILL_AT.format(repo=str(REPO), name=killed_writing, root=str(root))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    store = CheckpointStore(root / "ckpt")
    assert store.intent.exists()  # the promotion was under way
    pointer = json.loads(store.pointer.read_text())
    assert pointer["checkpoint"] == state(old_state)[0]  # promoted.json itself is untouched
    now, old = state(root), state(old_state)
    if expected == "old":
        assert now == old
    else:
        assert now[0] == state(new_root)[0] and now[1][:-1] == old[1] and len(now[1]) == 2
    store.promote(store.promoted(), {"stage": "bc"})  # the next promotion settles the store
    assert not store.intent.exists()
    assert json.loads(store.pointer.read_text())["checkpoint"] == now[0]


# --- the command line: one line, exit 2, and a message that says what is left -----------------


def write_config(root: Path) -> Path:
    path = root / "config.yaml"
    path.write_text(config(root).to_yaml())
    return path


def test_cli_a_damaged_run_log_is_one_line_and_nothing_is_trained(tmp_path: Path) -> None:
    log = log_path(tmp_path / "logs")
    log.parent.mkdir()
    log.write_text('[{"mode": "bc"')
    result = call_cli("train", write_config(tmp_path), "--mode", "bc")
    assert_one_line_error(result, f"{log}: not valid JSON")
    assert not (tmp_path / "ckpt").exists() and "hold-out accuracy" not in result.stdout


def test_cli_a_full_disk_at_the_record_is_one_line_and_the_store_is_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path)
    real = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
        if str(dst).endswith("anneal_results.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    result = call_cli("train", path, "--mode", "bc")
    line = assert_one_line_error(result, "anneal_results.json: cannot write: No space left")
    assert line.endswith("the bc stage did not finish: the store and the run log are as they were")
    assert "nothing written" not in line
    store = CheckpointStore(tmp_path / "ckpt")
    assert store.promoted() is None and store.list() == []
    assert not log_path(tmp_path / "logs").exists()


def test_cli_exit_2_is_documented_without_nothing_written() -> None:
    text = " ".join(call_cli("train", "--help").stdout.split())
    assert "2 bad arguments or input, or outputs that cannot be written" in text
    assert "nothing written" not in text
