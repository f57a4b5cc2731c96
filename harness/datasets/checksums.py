"""Checksum sheets: the sha256 and size of every accepted capture of a dataset, and their
``SHA256SUMS`` export for coreutils. The hashing itself is ``harness.hashing``'s."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.atomic import write_json_atomic, write_text_atomic
from harness.datasets.manifest import Manifest
from harness.errors import HarnessError
from harness.hashing import hash_files
from harness.validation import check, load_json

SUMS_NAME = "SHA256SUMS"  # the coreutils export kept in a captures folder
SCHEMA_VERSION = 1


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
