"""Reading the files of a checkpoint store and the run logs as untrusted input: regular files
only, never through a link, their size checked before a byte is read.

A store or a log folder is a folder anyone can edit, so every file in it is opened with
``O_NOFOLLOW`` (a link is refused, wherever it leads) and ``O_NONBLOCK`` (a FIFO put in a file's
place cannot hang the reader), then ``fstat``-ed: anything but a regular file is refused, and so
is a file larger than its limit or than the size the checkpoint records for it, before it is
read. Errors are one line naming the file (``CheckpointError`` unless the caller names another
``HarnessError``).

``harness.files`` reads the files a user names, where a link is theirs to make; a store's files
are refused through any link and checked against the sizes the checkpoint records, hence this
module of its own. JSON is parsed by the project's one strict parser (``validation.parse_json``).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.validation import check, parse_json

BLOCK = 1 << 20
Error = type[HarnessError]


class CheckpointError(HarnessError):
    """A checkpoint or the promotion pointer is damaged: missing, altered or inconsistent."""


def open_regular(path: Path, what: str, error: Error = CheckpointError) -> tuple[int, int]:
    """A read-only descriptor of the regular file ``path`` and its size; the caller closes it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise error(f"{path}: {what} missing") from None
    except OSError as exc:
        if os.path.islink(path):
            raise error(f"{path}: {what} is a link, expected a regular file") from None
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise error(f"{path}: cannot read {what}: {kind}")
    return fd, info.st_size


def _check_size(
    path: Path, size: int, limit: int, expected: int | None, what: str, error: Error
) -> None:
    if expected is not None and size != expected:
        raise error(f"{path}: size mismatch (expected {expected} bytes, found {size})")
    if size > limit:
        raise error(f"{path}: {what} is {size} bytes, more than the {limit} allowed")


def read_regular(
    path: Path, limit: int, what: str, expected: int | None = None, error: Error = CheckpointError
) -> bytes:
    """The bytes of a regular file no larger than ``limit`` (and of ``expected`` size if given)."""
    fd, size = open_regular(path, what, error)
    try:
        _check_size(path, size, limit, expected, what, error)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(size + 1)  # one byte more shows a file that grew meanwhile
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    _check_size(path, len(data), limit, expected, what, error)
    return data


def sha256_regular(path: Path, limit: int, what: str, expected: int) -> str:
    """The sha256 of a regular file of ``expected`` bytes, streamed (never read whole)."""
    fd, size = open_regular(path, what)
    digest, seen = hashlib.sha256(), 0
    try:
        _check_size(path, size, limit, expected, what, CheckpointError)
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as fh:
            while seen <= expected and (block := fh.read(BLOCK)):
                digest.update(block)
                seen += len(block)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    _check_size(path, seen, limit, expected, what, CheckpointError)
    return digest.hexdigest()


# Digests of (schema, bytes) that passed: the same bytes parse to the same document, which
# passes again. A run log is read many times between two writes (a rehearsal reads the bundle's
# a dozen times), and jsonschema takes 10-20 ms per read of it; the digest, well under 1 ms.
_PASSED: set[tuple[str, bytes]] = set()
_PASSED_MAX = 256


def load_json_regular(
    path: Path, limit: int, what: str, schema: str, error: Error = CheckpointError
) -> Any:
    """A JSON document from a regular file no larger than ``limit``, parsed strictly (no repeated
    key, no NaN or Infinity, bounded nesting) and checked against ``schema`` (once per content:
    bytes that passed are not checked again)."""
    data = read_regular(path, limit, what, error=error)
    seen = (schema, hashlib.sha256(data).digest())
    try:
        document = parse_json(data.decode("utf-8-sig"), path)
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: cannot read {what}: not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None
    except HarnessError as exc:
        raise error(str(exc)) from None
    if seen not in _PASSED:
        check(document, schema, path)
        if len(_PASSED) >= _PASSED_MAX:
            _PASSED.clear()
        _PASSED.add(seen)
    return document
