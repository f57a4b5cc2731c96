"""Removing a dataset from a bundle: before a session rehearses it again (so a rerun cannot leave
stale files of an earlier one beside its own), with ``--fresh`` for every other dataset, and with
``harness bundle clear DATASET``."""

from __future__ import annotations

import contextlib
import glob
import shutil
from collections.abc import Iterable
from pathlib import Path

from harness.bundle.layout import LOGS_DIR, DatasetFiles, bundle_lock, run_log, session_lock
from harness.bundle.session import remove_datasets
from harness.formatting import utc_now
from harness.locking import exclusive
from harness.training.runlog import update_log


def clear_dataset(root: Path, dataset: str) -> None:
    """Remove everything a dataset owns in the bundle, its records in the run log included.
    The caller holds the dataset's bundle lock; the session files are left as they are."""
    files = DatasetFiles(root, dataset)
    for path in files.files:
        path.unlink(missing_ok=True)
        # A session killed mid-write leaves its atomic writer's temporary file beside the target
        # (``harness.atomic``: ``.<name>.<random>.tmp``); the session lock makes it stale now.
        for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            leftover.unlink(missing_ok=True)
    for folder in (files.runs, files.figures):
        if folder.exists():
            shutil.rmtree(folder)
    if run_log(root).exists():
        update_log(
            root / LOGS_DIR,
            lambda records: [r for r in records if r.get("dataset") != dataset],
            f"records of {dataset} being removed",
        )


def clear_datasets(root: Path, datasets: Iterable[str], wait_s: float | None = None) -> None:
    """``harness bundle clear``: each dataset under its bundle lock (a session rehearsing it
    makes this wait, then refuse), then the session files rewritten without them."""
    names = sorted(set(datasets))
    with contextlib.ExitStack() as locks:
        for name in names:
            what = f"harness bundle clear {name} in {root}"
            locks.enter_context(exclusive(bundle_lock(root, name), what, wait_s))
        for name in names:
            clear_dataset(root, name)
        with exclusive(session_lock(root), f"session files of {root}", wait_s):
            remove_datasets(root, set(names), utc_now())
