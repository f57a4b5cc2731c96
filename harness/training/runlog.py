"""The run logs: ``<log dir>/anneal_results.json`` and the PPO log (``--ppo-log FILE``).

``anneal_results.json`` is a JSON array of stage records in run order. Each stage appends its
record by rewriting the whole file atomically, under a lock so that two processes sharing a log
folder cannot lose each other's records. The file is always complete, valid JSON: a killed run
leaves the previous version.

A stage's record is also the commit point of its promotion: ``PendingRecord`` is what the
checkpoint store appends (and, if the promotion cannot be completed, withdraws again) while it
moves its pointer, and ``holds_record`` tells a reader of the store whether an interrupted
promotion's record made it into the log (``harness.training.checkpoints``).

The PPO log is JSON Lines, one line per PPO update. Lines go to a hidden temporary file beside
it as they come (``tail -f`` works on that file) and the file appears under its name, whole,
when the stage ends; a failed or killed run leaves the previous PPO log, if any.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.atomic import atomic_path, write_json_atomic
from harness.errors import HarnessError
from harness.locking import exclusive
from harness.training.storefiles import load_json_regular
from harness.validation import check, parse_json, read_text

LOG_NAME = "anneal_results.json"
# A record is a few KB: this is tens of thousands of stages, and refuses a file that is not a
# log before it is read whole.
MAX_LOG_BYTES = 64 << 20
LOCK_NAME = f".{LOG_NAME}.lock"  # beside the run log; held while the log is rewritten
REJECTED_DIR = "rejected"  # where a run keeps a checkpoint that failed its gate


def log_path(log_dir: str | Path) -> Path:
    return Path(log_dir) / LOG_NAME


def rejected_dir(log_dir: str | Path) -> Path:
    """Where the stages of a run set aside a checkpoint that failed its gate (the store is
    never written on a rollback)."""
    return Path(log_dir) / REJECTED_DIR


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a run log (``[]`` when it does not exist yet), schema-checked; a log that
    is a link, not a regular file or larger than ``MAX_LOG_BYTES`` is refused unread."""
    path = Path(path)
    if not os.path.lexists(path):
        return []
    return load_json_regular(path, MAX_LOG_BYTES, "run log", "run_log", error=HarnessError)


@contextlib.contextmanager
def _locked(log_dir: Path) -> Iterator[None]:
    # The project's locks: a bounded wait naming the holder, and no FIFO or link as the lock.
    log_dir.mkdir(parents=True, exist_ok=True)
    with exclusive(log_dir / LOCK_NAME, "writing the run log"):
        yield


def update_log(
    log_dir: str | Path,
    change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    what: str = "log being rewritten",
) -> Path:
    """Rewrite the log in ``log_dir`` as ``change(records)``, under the log's lock.

    The new log is validated before it is written, and written atomically.
    """
    path = log_path(log_dir)
    with _locked(path.parent):
        records = change(read_log(path))
        check(records, "run_log", f"{path} ({what})")
        write_json_atomic(path, records)
    return path


def append_record(log_dir: str | Path, record: dict[str, Any]) -> Path:
    """Append ``record`` to the log in ``log_dir``; the new log is validated before it is written."""
    return update_log(log_dir, lambda records: [*records, record], "record being appended")


def record_digest(record: dict[str, Any]) -> str:
    """sha256 of a record's canonical JSON (sorted keys, compact): the same before it is
    written and after it is read back."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def holds_record(path: str | Path, digest: str) -> bool:
    """Whether the run log ``path`` holds a record of this digest (``False`` if it does not
    exist; a damaged log is an error naming it)."""
    return any(record_digest(r) == digest for r in read_log(path))


@dataclass(frozen=True)
class PendingRecord:
    """A stage's record on its way into the run log of ``log_dir``: appended as the commit
    point of a promotion, withdrawn if the promotion cannot be completed."""

    log_dir: Path
    record: dict[str, Any]

    @property
    def log(self) -> Path:
        return log_path(self.log_dir)

    @property
    def digest(self) -> str:
        return record_digest(self.record)

    def append(self) -> Path:
        return append_record(self.log_dir, self.record)

    def withdraw(self) -> None:
        """Remove the last record of this digest again (the one ``append`` wrote)."""

        def change(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            digests = [record_digest(r) for r in records]
            if self.digest not in digests:
                return records
            last = len(digests) - 1 - digests[::-1].index(self.digest)
            return records[:last] + records[last + 1 :]

        update_log(self.log_dir, change, "record being withdrawn")


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN or infinity: such a figure is logged as null."""
    return value if value is None or math.isfinite(value) else None


@contextlib.contextmanager
def ppo_log_writer(path: str | Path | None) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Yield ``write(line)``, which validates one PPO log line and appends it.

    ``path=None`` (no ``--ppo-log``) yields a writer that only validates.
    """
    if path is None:
        yield lambda line: check(line, "ppo_log", "PPO log line")
        return
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:

        def write(line: dict[str, Any]) -> None:
            check(line, "ppo_log", f"{path} (line being written)")
            out.write(json.dumps(line, allow_nan=False) + "\n")
            out.flush()

        yield write


def read_ppo_log(path: str | Path) -> list[dict[str, Any]]:
    """The lines of a PPO log, each schema-checked; errors name the file and the line."""
    lines = []
    for number, text in enumerate(read_text(path, "PPO log", "JSON Lines file").splitlines(), 1):
        line = parse_json(text, f"{path}: line {number}")  # strict, as every JSON read
        check(line, "ppo_log", f"{path}: line {number}")
        lines.append(line)
    return lines
