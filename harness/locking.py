"""Locks around the read-modify-writes of shared files: ``fcntl.flock`` on a sibling lock file.

A file that is replaced atomically (a rename) cannot carry its own lock: the lock would stay on
the old inode. So a shared file, or a group of files that must change together (a dataset's
manifest and checksum sheet), has a lock file beside it that is never replaced. The exclusive
holder writes who it is into the lock file (pid, host, start time, what it does), so that a
process that gives up waiting names the holder in its one line. The kernel drops a lock when
its holder dies, however it dies: there is never a stale lock to clean up.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from harness.errors import HarnessError, LockBusyError
from harness.formatting import utc_now

WAIT_S = 60.0  # how long a command waits for another's lock before it gives up (exit 75)
WAIT_ENV = "HARNESS_LOCK_WAIT_S"  # replaces WAIT_S (seconds), e.g. for a script that must not wait
_HOLDER_BYTES = 1024  # a holder line is far shorter; never read more


def lock_file(path: str | os.PathLike[str]) -> Path:
    """The lock file of ``path``: ``.<name>.lock`` in the same folder."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


def holder(fd: int) -> str:
    """Who holds the lock on ``fd``, as its holder wrote it (or that it did not say)."""
    unknown = "another process, which did not say who it is (a reader, or one just starting)"
    try:
        doc = json.loads(os.pread(fd, _HOLDER_BYTES, 0).decode("utf-8"))
        pid, host = int(doc["pid"]), str(doc["host"])[:100]
        shown = f"pid {pid} on {host} since {str(doc['since'])[:40]} ({str(doc['what'])[:200]})"
    except (OSError, ValueError, KeyError, TypeError):
        return unknown
    # Left by a writer that was killed: the lock is someone else's now (a reader's).
    return unknown if host == socket.gethostname() and not _alive(pid) else shown


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False  # 0 and negatives name process groups, not a holder
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, under another user
    return True


def _open(path: Path, *, create: bool) -> int:
    """The lock file, opened (and created) for writing, or only opened for reading.

    Never through a link, and never anything but a regular file (a FIFO would block).
    """
    mode = (os.O_RDWR | os.O_CREAT) if create else os.O_RDONLY
    fd = os.open(path, mode | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise HarnessError(f"{path}: the lock file is not a regular file; remove it")
    return fd


def _open_for_writing(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)  # its errors name the folder at fault
    try:
        return _open(path, create=True)
    except OSError as exc:
        why = "is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise HarnessError(f"{path}: cannot open the lock file: {why}") from None


def default_wait() -> float:
    """``$HARNESS_LOCK_WAIT_S`` if it is a number of seconds >= 0, else ``WAIT_S``."""
    try:
        value = float(os.environ.get(WAIT_ENV, ""))
    except ValueError:
        return WAIT_S
    return value if 0 <= value < float("inf") else WAIT_S


def _acquire(fd: int, mode: int, path: Path, wait_s: float | None) -> None:
    """Take the lock, polling, for at most ``wait_s`` seconds (default: ``$HARNESS_LOCK_WAIT_S``,
    else ``WAIT_S``); then name the holder."""
    wait_s = default_wait() if wait_s is None else wait_s
    deadline = time.monotonic() + wait_s
    pause = 0.01
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockBusyError(
                    f"{path}: locked by {holder(fd)}; gave up after {wait_s:g} s "
                    "waiting, nothing written; try again when it has finished"
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


@contextlib.contextmanager
def exclusive(
    lock: str | os.PathLike[str], what: str, wait_s: float | None = None
) -> Iterator[None]:
    """Hold ``lock`` exclusively (creating it), waiting at most ``wait_s`` seconds for it.

    ``what`` says what the holder does, for whoever waits on it. Read the shared files inside
    the block: a read before it may be stale by the time the lock is held.
    """
    path = Path(lock)
    fd = _open_for_writing(path)
    try:
        _acquire(fd, fcntl.LOCK_EX, path, wait_s)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now(), "what": what}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode("utf-8"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # a later reader of the file must not name a gone holder
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def shared(lock: str | os.PathLike[str], wait_s: float | None = None) -> Iterator[None]:
    """Hold ``lock`` shared (several readers at once, no writer) while reading.

    Without a lock file (no writer ever took the lock, or it cannot be opened), it reads
    unlocked: every writer creates the lock file before it writes.
    """
    path = Path(lock)
    fd = _open_for_reading(path)
    if fd is None:
        yield
        return
    try:
        _acquire(fd, fcntl.LOCK_SH, path, wait_s)
        yield
    finally:
        os.close(fd)


def _open_for_reading(path: Path) -> int | None:
    """The lock file if there is one; a reader never creates it (it leaves no file behind in
    a dataset it only reads). Without one, no writer has ever locked the files: None."""
    try:
        return _open(path, create=False)
    except OSError:
        return None
