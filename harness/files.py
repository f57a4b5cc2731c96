"""Opening the files the harness reads: regular files only, and a size checked before a whole read.

A FIFO, a device (``/dev/zero``), a socket or a folder given where a document or a capture is
expected would hang a read or fill memory. Every whole-file read goes through ``read_regular``:
it opens without blocking (a FIFO with no writer opens at once), checks what the open file is,
and checks its size against a limit before reading a byte. Files read piecewise (HDF5 captures,
files being hashed) are checked with ``open_regular`` or ``check_regular`` first.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from harness.errors import HarnessError

MiB = 1 << 20
# Limits of whole-file reads, far above any real file of the kind, so that no hostile file can
# fill memory: a manifest of 50,000 captures is about 15 MiB.
MAX_JSON_BYTES = 32 * MiB  # manifests, checksum sheets, run logs, summaries, checkpoint metadata
MAX_JSONL_BYTES = 256 * MiB  # a PPO log: one line per update
MAX_CONFIG_BYTES = 64 << 10  # a training config (YAML): a few dozen keys, about 3 KB


class NotRegularFileError(OSError):
    """The path is a FIFO, a device, a socket or a folder where a regular file is expected."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse(path: str | os.PathLike[str], mode: int) -> NotRegularFileError:
    kind = _kind(mode)
    return NotRegularFileError(errno.EINVAL, f"is {kind}, not a regular file", os.fspath(path))


def open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """A read-only file descriptor of ``path`` and its ``fstat``; ``NotRegularFileError`` (an
    ``OSError``) if it is not a regular file. Opened with ``O_NONBLOCK``, so a FIFO does not
    wait for a writer; the check is on the open file, so a swap after a check cannot fool it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(path, info.st_mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def check_regular(path: str | os.PathLike[str]) -> os.stat_result:
    """``os.stat`` of ``path`` (links followed); ``NotRegularFileError`` if not a regular file.

    For files another library opens by name (h5py): opening a FIFO there would hang.
    """
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(path, info.st_mode)
    return info


def _one_line_error(path: str | os.PathLike[str], what: str, exc: OSError) -> HarnessError:
    if isinstance(exc, FileNotFoundError):
        return HarnessError(f"{path}: {what} not found")
    if isinstance(exc, NotRegularFileError):
        return HarnessError(f"{path}: {exc.strerror}; expected a {what}")
    return HarnessError(f"{path}: cannot read {what}: {exc.strerror or exc}")


def read_regular(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """The bytes of the regular file ``path``, refused with one ``HarnessError`` line naming it
    and ``what`` ("manifest", "config"...) if it is missing, not a regular file, unreadable, or
    larger than ``limit`` bytes (checked before reading, and again while reading)."""
    try:
        fd, info = open_regular(path)
    except OSError as exc:
        raise _one_line_error(path, what, exc) from None
    with os.fdopen(fd, "rb", buffering=0) as fh:
        if info.st_size > limit:
            raise HarnessError(_too_large(path, what, limit, f"{info.st_size:,} bytes"))
        try:
            data = _read_at_most(fh, limit + 1)
        except OSError as exc:
            raise _one_line_error(path, what, exc) from None
    if len(data) > limit:  # it grew after fstat, or its size says nothing (/proc)
        raise HarnessError(_too_large(path, what, limit, f"more than {limit:,} bytes read"))
    return data


def _read_at_most(fh: BinaryIO, n: int) -> bytes:
    chunks: list[bytes] = []
    left = n
    while left > 0:
        block = fh.read(min(left, 4 * MiB))
        if not block:
            break
        chunks.append(block)
        left -= len(block)
    return b"".join(chunks)


def _too_large(path: str | os.PathLike[str], what: str, limit: int, found: str) -> str:
    return f"{path}: larger than the {limit:,}-byte limit of a {what} ({found}); not read"
