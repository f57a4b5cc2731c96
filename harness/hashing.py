"""sha256 of files: streamed in 1 MiB blocks, several files in parallel.

One module for every file digest the project takes: checksum sheets and integrity checks of
captures, checkpoint store snapshots, and the artefacts of an acceptance bundle (digests of bytes
already in memory, such as checkpoint ids, use hashlib directly). hashlib releases the GIL
while it digests a block, so several files hash in parallel on plain threads; with OpenSSL's SHA
extensions one core already outruns coreutils' ``sha256sum``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.files import open_regular

BLOCK = 1 << 20


@dataclass(frozen=True)
class Digest:
    sha256: str
    bytes: int


def sha256_file(
    path: str | os.PathLike[str], progress: Callable[[int], Any] | None = None
) -> Digest:
    """Stream ``path`` through sha256; ``progress`` is called with each block's size.

    Only a regular file is read: a FIFO or a device raises ``NotRegularFileError`` (an
    ``OSError``) instead of hanging or never ending.
    """
    digest = hashlib.sha256()
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    size = 0
    fd, _ = open_regular(path)
    with open(fd, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            digest.update(view[:n])
            size += n
            if progress is not None:
                progress(n)
    return Digest(digest.hexdigest(), size)


def default_jobs(n_files: int) -> int:
    return max(1, min(n_files, os.cpu_count() or 1))


def hash_files(
    paths: Sequence[Path], jobs: int | None = None, progress: Callable[[int], Any] | None = None
) -> list[Digest | OSError]:
    """Digest of each path in order, or the ``OSError`` that reading it raised.

    Largest files are started first so that the threads finish together.
    """
    results: list[Digest | OSError] = [OSError("not hashed")] * len(paths)
    if not paths:
        return results
    sizes = []
    for p in paths:
        try:
            sizes.append(os.stat(p).st_size)
        except OSError:
            sizes.append(0)
    order = sorted(range(len(paths)), key=lambda i: -sizes[i])

    def one(i: int) -> tuple[int, Digest | OSError]:
        try:
            return i, sha256_file(paths[i], progress)
        except OSError as exc:
            return i, exc

    workers = jobs or default_jobs(len(paths))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sha256") as pool:
        for i, result in pool.map(one, order):
            results[i] = result
    return results
