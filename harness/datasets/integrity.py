"""Integrity verification of a dataset against its checksum sheet.

In the manner of bagit's ``Bag.validate()``: cheap checks first (sheet against manifest, files
present, sizes), then digests, hashed in parallel. Every problem is collected as a typed record
and all of them are reported together; a read error is reported as unreadable, never as a
mismatch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.datasets.checksums import SUMS_NAME, ChecksumSheet
from harness.datasets.manifest import Entry, Manifest
from harness.formatting import display
from harness.hashing import hash_files

# Files that may sit in a captures folder without being captures.
IGNORED_FILES = frozenset({SUMS_NAME})


@dataclass(frozen=True)
class Problem:
    """One integrity problem; ``kind`` is one of the ``verify_report`` schema's kinds."""

    kind: str
    entry: str | None
    path: str
    message: str
    expected: Any = None
    found: Any = None


@dataclass
class VerifyReport:
    dataset: str
    manifest: Path
    checksums: Path
    checked: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        problems = []
        for p in self.problems:
            record = {k: v for k, v in asdict(p).items() if v is not None or k == "entry"}
            problems.append(record)
        return {
            "dataset": self.dataset,
            "manifest": str(self.manifest),
            "checksums": str(self.checksums),
            "ok": self.ok,
            "checked": self.checked,
            "problems": problems,
        }


def _problem(kind: str, entry: str | None, path: Path, what: str, **extra: Any) -> Problem:
    where = f"entry '{entry}' ({display(path)})" if entry else display(path)
    return Problem(kind, entry, str(path), f"{kind.replace('_', ' ')}: {where}: {what}", **extra)


def verify(
    manifest: Manifest,
    sheet: ChecksumSheet,
    *,
    jobs: int | None = None,
    progress: Callable[[int], Any] | None = None,
) -> VerifyReport:
    """Check every accepted capture of ``manifest`` against ``sheet``; never raises on data.

    Named phases, cheap ones first, as bagit's ``validate``: the sheet against the manifest,
    each accepted entry's file (present, its size), stray files in the captures folder, then
    the digests of the entries that passed the cheap checks.
    """
    report = VerifyReport(manifest.dataset, manifest.path, sheet.path)
    report.problems += _validate_sheet(manifest, sheet)
    to_hash = _validate_entries(manifest, sheet, report.problems)
    report.problems += _unexpected_files(manifest)
    _validate_digests(sheet, to_hash, report, jobs, progress)
    return report


def _validate_sheet(manifest: Manifest, sheet: ChecksumSheet) -> list[Problem]:
    """The sheet belongs to the dataset and lists only accepted entries."""
    problems = []
    if sheet.dataset != manifest.dataset:
        problems.append(
            _problem(
                "dataset_mismatch",
                None,
                sheet.path,
                f"sheet is for dataset '{sheet.dataset}', manifest is for '{manifest.dataset}'",
                expected=manifest.dataset,
                found=sheet.dataset,
            )
        )
    accepted = {e.id for e in manifest.accepted()}
    for key, s in sorted(sheet.entries.items()):
        if key not in accepted:
            status = next((e.status for e in manifest.entries if e.id == key), None)
            where = (
                f"its manifest status is {status}" if status else "the manifest has no such entry"
            )
            problems.append(
                _problem(
                    "not_accepted",
                    key,
                    manifest.captures_dir / s.path,
                    f"listed in the checksum sheet {display(sheet.path)} but {where}",
                )
            )
    return problems


def _validate_entries(
    manifest: Manifest, sheet: ChecksumSheet, problems: list[Problem]
) -> list[tuple[str, Path]]:
    """Each accepted entry is on the sheet under its own path, its file exists and has the
    sheet's size; returns the entries left to hash (their problems go to ``problems``)."""
    to_hash: list[tuple[str, Path]] = []
    for entry in manifest.accepted():
        path = manifest.capture_path(entry)
        problem = _entry_problem(entry, path, sheet)
        if problem is None:
            to_hash.append((entry.id, path))
        else:
            problems.append(problem)
    return to_hash


def _entry_problem(entry: Entry, path: Path, sheet: ChecksumSheet) -> Problem | None:
    expected = sheet.entries.get(entry.id)
    if expected is None:
        what = f"accepted but absent from the checksum sheet {display(sheet.path)}"
        return _problem("not_in_sheet", entry.id, path, what)
    if expected.path != entry.path:
        return _problem(
            "path_mismatch",
            entry.id,
            path,
            f"sheet names '{expected.path}', manifest names '{entry.path}'",
            expected=entry.path,
            found=expected.path,
        )
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return _problem("file_missing", entry.id, path, "capture file does not exist")
    except OSError as exc:
        return _problem("file_unreadable", entry.id, path, exc.strerror or str(exc))
    if size != expected.bytes:
        return _problem(
            "size_mismatch",
            entry.id,
            path,
            f"expected {expected.bytes} bytes, found {size}",
            expected=expected.bytes,
            found=size,
        )
    return None


def _validate_digests(
    sheet: ChecksumSheet,
    to_hash: list[tuple[str, Path]],
    report: VerifyReport,
    jobs: int | None,
    progress: Callable[[int], Any] | None,
) -> None:
    """Hash the remaining entries in parallel; each either matches (``checked``) or is a
    problem. A read error is ``file_unreadable``, never a mismatch."""
    digests = hash_files([p for _, p in to_hash], jobs=jobs, progress=progress)
    for (entry_id, path), result in zip(to_hash, digests, strict=True):
        expected = sheet.entries[entry_id]
        if isinstance(result, OSError):
            what = result.strerror or str(result)
            report.problems.append(_problem("file_unreadable", entry_id, path, what))
        elif result.sha256 != expected.sha256:
            report.problems.append(
                _problem(
                    "digest_mismatch",
                    entry_id,
                    path,
                    f"sha256 expected {expected.sha256}, found {result.sha256}",
                    expected=expected.sha256,
                    found=result.sha256,
                )
            )
        elif result.bytes != expected.bytes:  # the file changed size while being read
            report.problems.append(
                _problem(
                    "size_mismatch",
                    entry_id,
                    path,
                    f"expected {expected.bytes} bytes, read {result.bytes}",
                    expected=expected.bytes,
                    found=result.bytes,
                )
            )
        else:
            report.checked.append(
                {
                    "id": entry_id,
                    "path": expected.path,
                    "bytes": result.bytes,
                    "sha256": result.sha256,
                }
            )


def _unexpected_files(manifest: Manifest) -> list[Problem]:
    """Files in the captures folder that no manifest entry names (of any status)."""
    root = manifest.captures_dir
    if not root.is_dir():
        return []
    known = {os.path.realpath(manifest.capture_path(e)) for e in manifest.entries}
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if name in IGNORED_FILES or name.startswith("."):
                continue
            if os.path.realpath(path) not in known:
                found.append(
                    _problem(
                        "unexpected_file",
                        None,
                        path,
                        f"in the captures folder but not in the manifest {display(manifest.path)}",
                    )
                )
    return found
