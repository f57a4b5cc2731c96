"""Checksum sheets: the sha256 and size of every accepted capture of a dataset.

Hashing streams each file in 1 MiB blocks. hashlib releases the GIL while it digests a block, so
several files hash in parallel on plain threads; with OpenSSL's SHA extensions one core already
outruns coreutils' ``sha256sum``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.atomic import write_json_atomic, write_text_atomic
from harness.datasets.manifest import Manifest
from harness.errors import HarnessError
from harness.validation import check, load_json

BLOCK = 1 << 20
SUMS_NAME = "SHA256SUMS"  # the coreutils export kept in a captures folder
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Digest:
    sha256: str
    bytes: int


def sha256_file(
    path: str | os.PathLike[str], progress: Callable[[int], Any] | None = None
) -> Digest:
    """Stream ``path`` through sha256; ``progress`` is called with each block's size."""
    digest = hashlib.sha256()
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as fh:
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


@dataclass(frozen=True)
class SheetEntry:
    path: str
    sha256: str
    bytes: int


@dataclass
class ChecksumSheet:
    path: Path
    dataset: str
    entries: dict[str, SheetEntry]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "dataset": self.dataset,
            "algorithm": "sha256",
            "entries": {
                key: {"path": e.path, "sha256": e.sha256, "bytes": e.bytes}
                for key, e in sorted(self.entries.items())
            },
        }

    def save(self) -> None:
        doc = self.to_json()
        check(doc, "checksums", self.path)
        write_json_atomic(self.path, doc)


def load_sheet(path: str | os.PathLike[str]) -> ChecksumSheet:
    path = Path(path)
    doc = load_json(path, "checksum sheet")
    check(doc, "checksums", path)
    return ChecksumSheet(
        path=path,
        dataset=doc["dataset"],
        entries={
            key: SheetEntry(path=e["path"], sha256=e["sha256"].lower(), bytes=e["bytes"])
            for key, e in doc["entries"].items()
        },
    )


def build_sheet(
    manifest: Manifest, sheet_path: str | os.PathLike[str], jobs: int | None = None
) -> ChecksumSheet:
    """Hash every accepted capture of ``manifest`` into a new sheet (not yet saved).

    A capture that cannot be read is an error: a sheet must never record a guess.
    """
    accepted = manifest.accepted()
    paths = [manifest.capture_path(e) for e in accepted]
    entries = {}
    for entry, path, result in zip(accepted, paths, hash_files(paths, jobs), strict=True):
        if isinstance(result, OSError):
            reason = result.strerror or str(result)
            raise HarnessError(f"{manifest.path}: entry '{entry.id}': cannot read {path}: {reason}")
        entries[entry.id] = SheetEntry(entry.path, result.sha256, result.bytes)
    return ChecksumSheet(path=Path(sheet_path), dataset=manifest.dataset, entries=entries)


def sha256sums_text(
    sheet: ChecksumSheet, manifest: Manifest, output: str | os.PathLike[str]
) -> str:
    """The sheet in coreutils format, paths relative to ``output``'s folder.

    ``cd $(dirname OUTPUT) && sha256sum -c $(basename OUTPUT)`` then checks the dataset without
    Python.
    """
    base = Path(output).absolute().parent
    lines = []
    for key, e in sorted(sheet.entries.items()):
        target = manifest.captures_dir.absolute() / e.path
        rel = Path(os.path.relpath(target, base)).as_posix()
        if "\n" in rel or "\\" in rel:
            raise HarnessError(f"{sheet.path}: entry '{key}': path cannot be written to SHA256SUMS")
        lines.append(f"{e.sha256}  {rel}\n")
    return "".join(lines)


def save_sheet(sheet: ChecksumSheet, manifest: Manifest) -> None:
    """Save ``sheet``, and refresh the captures folder's SHA256SUMS if there is one, so that
    ``sha256sum -c`` never checks against a stale list."""
    sheet.save()
    sums = manifest.captures_dir / SUMS_NAME
    if sums.is_file():
        export_sha256sums(sheet, manifest, sums)


def export_sha256sums(
    sheet: ChecksumSheet, manifest: Manifest, output: str | os.PathLike[str]
) -> Path:
    output = Path(output)
    write_text_atomic(output, sha256sums_text(sheet, manifest, output))
    return output
