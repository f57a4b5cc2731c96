"""The run log, ``<log dir>/anneal_results.json``: a JSON array of stage records in run order.

Each stage appends its record by rewriting the whole file atomically, under a lock so that two
processes sharing a log folder cannot lose each other's records. The file is always complete,
valid JSON: a killed run leaves the previous version.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.atomic import write_json_atomic
from harness.validation import check, load_json

LOG_NAME = "anneal_results.json"


def log_path(log_dir: str | Path) -> Path:
    return Path(log_dir) / LOG_NAME


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a run log (``[]`` when it does not exist yet), schema-checked."""
    path = Path(path)
    if not path.exists():
        return []
    records = load_json(path, "run log")
    check(records, "run_log", path)
    return records


@contextlib.contextmanager
def _locked(log_dir: Path) -> Iterator[None]:
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f".{LOG_NAME}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_record(log_dir: str | Path, record: dict[str, Any]) -> Path:
    """Append ``record`` to the log in ``log_dir``; the new log is validated before it is written."""
    path = log_path(log_dir)
    with _locked(path.parent):
        records = [*read_log(path), record]
        check(records, "run_log", f"{path} (record being appended)")
        write_json_atomic(path, records)
    return path
