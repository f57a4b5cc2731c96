"""Curating a dataset: adding captures, reviewing them, keeping the checksum sheet in step.

The checksum sheet is written whenever a review changes which captures are accepted, so that
"accepted" and "has a sha256 on the sheet" never drift apart.

A dataset has one lock, ``.<manifest file name>.lock`` beside its manifest, covering the
manifest and its sheet together. Every command that changes either holds it exclusively from
before it reads them until both are written (``editing``); one that reads both to compare them
holds it shared (``reading``), so it never sees a review's new sheet with the old manifest.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from harness.atomic import atomic_path
from harness.datasets.capture import open_capture, read_meta
from harness.datasets.checksums import ChecksumSheet, build_sheet, save_sheet
from harness.datasets.manifest import Entry, Manifest
from harness.datasets.quality import inspect_capture
from harness.errors import CaptureError, HarnessError
from harness.formatting import clip, display
from harness.locking import exclusive, lock_file, shared


def dataset_lock(manifest: str | os.PathLike[str]) -> Path:
    """The lock file of a dataset: ``.<manifest file name>.lock`` beside its manifest (its real
    path, so that every way of naming the manifest finds the same lock)."""
    return lock_file(os.path.realpath(manifest))


@contextlib.contextmanager
def editing(manifest: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold the dataset's lock exclusively: load the manifest and sheet inside, write, leave."""
    with exclusive(dataset_lock(manifest), what):
        yield


@contextlib.contextmanager
def reading(manifest: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the dataset's lock shared while its manifest and sheet are read together."""
    with shared(dataset_lock(manifest)):
        yield


def add_capture(
    manifest: Manifest,
    capture: str | os.PathLike[str],
    *,
    entry_id: str | None = None,
    copy: bool = False,
) -> Entry:
    """Add ``capture`` to ``manifest`` as ``pending`` (not saved).

    The capture must lie in the captures folder, or ``copy`` copies it in. Its environment must
    be the dataset's.
    """
    capture = Path(capture)
    entry_id = entry_id or capture.stem
    if any(e.id == entry_id for e in manifest.entries):
        raise HarnessError(f"{manifest.path}: entry '{entry_id}' already exists")
    with open_capture(capture) as f:
        meta = read_meta(f, capture)
    if meta.env_spec() != manifest.env_spec():
        raise CaptureError(
            f"{capture}: recorded in {clip(str(meta.env_spec()))}, dataset '{manifest.dataset}' "
            f"is for {manifest.env_spec()}"
        )
    root = Path(os.path.realpath(manifest.captures_dir))
    real = Path(os.path.realpath(capture))
    if not real.is_relative_to(root):
        if not copy:
            raise HarnessError(
                f"{capture}: not inside the captures folder {display(root)}; "
                f"record it there or pass --copy"
            )
        target = root / capture.name
        if target.exists():
            raise HarnessError(f"{target}: already exists; refusing to overwrite a capture")
        with atomic_path(target, suffix=".h5.tmp") as tmp:
            shutil.copyfile(capture, tmp)
        real = target
    entry = Entry(
        id=entry_id,
        path=real.relative_to(root).as_posix(),
        status="pending",
        episodes=meta.episodes,
        steps=meta.steps,
        demonstrator=meta.demonstrator_record(),
        reason="",
    )
    manifest.entries.append(entry)
    manifest.capture_path(entry)  # safety check on the stored path
    return entry


def review(
    manifest: Manifest, entry_id: str, status: str, reason: str, sheet_path: str | os.PathLike[str]
) -> tuple[Entry, ChecksumSheet]:
    """Set an entry's status, then save the manifest and a fresh checksum sheet.

    Accepting a capture that the quality check finds malformed is refused.
    """
    if status == "rejected" and not reason.strip():
        raise HarnessError("--reject needs --reason: say why the capture is rejected")
    entry = manifest.entry(entry_id)
    if status == "accepted":
        quality = inspect_capture(manifest.capture_path(entry), expected_env=manifest.env_spec())
        if quality.errors:
            raise HarnessError(
                f"{manifest.capture_path(entry)}: entry '{entry_id}' cannot be "
                f"accepted: {quality.errors[0]}"
            )
    manifest.with_status(entry_id, status, reason)
    sheet = build_sheet(manifest, sheet_path)
    # Each file is written atomically; a crash between the two leaves a sheet and a manifest
    # that disagree, which ``verify`` reports, never a half-written file.
    save_sheet(sheet, manifest)
    manifest.save()
    return manifest.entry(entry_id), sheet
