"""One checkpoint folder: its ``checkpoint.json``, its id, writing it atomically and reading it
back verified. The store (``checkpoints``) keeps such folders and points at the promoted one.

A checkpoint is a folder holding its payload files (opaque bytes: the trainer serialises its
state dict itself, so this module never imports torch) and ``checkpoint.json``: their sha256 and
size, and the caller's metadata. Its id is ``<stage>-<12 hex>`` of the sha256 of everything in
``checkpoint.json`` but the id itself (canonical JSON: sorted keys, compact), so it covers the
metadata (policy spec, metrics, dataset, config, lineage) and, through the listed sha256, every
payload byte: an edit anywhere is refused on reading. There is no timestamp in it, so a
deterministic run in another store writes the same id.

A folder is built as a hidden ``.tmp-<id>-XXXX`` folder beside its final place and renamed onto
it once complete, so ``<id>/`` is either whole or absent. A writer killed before its rename
leaves only the hidden temp folder, which every reader skips and the next write into the same
folder removes once it is ``STALE_TEMP_SECONDS`` old (see ``stale_temp_cleanup``).

Reading refuses a folder, ``checkpoint.json`` or payload that is a link, and any file that is not
regular; sizes are checked before anything is read (``storefiles``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.atomic import dumps_json, fsync_dir
from harness.training.storefiles import (
    CheckpointError,
    load_json_regular,
    read_regular,
    sha256_regular,
)
from harness.validation import check

SCHEMA_VERSION = 2  # 2: the id covers the metadata, not only the payloads
META_NAME = "checkpoint.json"
TEMP_PREFIX = ".tmp-"
# A temp folder younger than this may belong to a writer that is still running (two runs sharing
# a store), so cleanup leaves it alone; writing a checkpoint takes well under a second.
STALE_TEMP_SECONDS = 600.0
# Read limits, checked before reading (a file in a store is untrusted input). A payload's limit
# is also the schema's maximum for its recorded size.
MAX_PAYLOAD_BYTES = 256 << 20
MAX_META_BYTES = 16 << 20

# Stages and payload names become path components: one plain name, never hidden, never a path.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RESERVED_KEYS = ("schema_version", "id", "stage", "files")


@dataclass(frozen=True)
class Checkpoint:
    id: str
    path: Path
    """The checkpoint's folder."""
    meta: dict[str, Any]
    """The whole ``checkpoint.json`` document (schema_version, id, stage, files, ...)."""

    @property
    def stage(self) -> str:
        return str(self.meta["stage"])

    def file(self, name: str) -> Path:
        """Path of the payload file ``name`` (a ``KeyError`` if the checkpoint has none)."""
        if name not in self.meta["files"]:
            raise KeyError(f"checkpoint {self.id} has no payload file {name!r}")
        return self.path / name

    def payload(self, name: str) -> bytes:
        """The bytes of payload ``name``, read only after its size matched the recorded one,
        and checked against the recorded sha256."""
        path, expected = self.file(name), self.meta["files"][name]
        data = read_regular(path, MAX_PAYLOAD_BYTES, "payload file", expected["bytes"])
        _check_sha256(path, hashlib.sha256(data).hexdigest(), expected["sha256"])
        return data


def _canonical(document: Mapping[str, Any]) -> bytes:
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def checkpoint_id(document: Mapping[str, Any]) -> str:
    """``<stage>-<12 hex>``: sha256 of the canonical JSON (sorted keys, compact) of a
    ``checkpoint.json`` document without its ``id``."""
    body = {key: value for key, value in document.items() if key != "id"}
    return f"{document['stage']}-{hashlib.sha256(_canonical(body)).hexdigest()[:12]}"


def checkpoint_document(
    stage: str, files: Mapping[str, bytes], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """``checkpoint.json`` for these payloads and metadata, id included, exactly as it will read
    back (a ``ValueError`` for metadata JSON cannot hold, such as NaN)."""
    _check_arguments(stage, files, meta)
    entries = {
        name: {"sha256": hashlib.sha256(files[name]).hexdigest(), "bytes": len(files[name])}
        for name in sorted(files)
    }
    body = json.loads(dumps_json({"stage": stage, "files": entries, **meta}))
    body = {"schema_version": SCHEMA_VERSION, **body}
    return {"schema_version": SCHEMA_VERSION, "id": checkpoint_id(body), **body}


def _check_arguments(stage: str, files: Mapping[str, bytes], meta: Mapping[str, Any]) -> None:
    # Misuse by the calling code, not bad user input: a plain ValueError.
    if not _NAME.fullmatch(stage):
        raise ValueError(f"invalid checkpoint stage {stage!r}")
    if not files:
        raise ValueError("a checkpoint needs at least one payload file")
    for name in files:
        if not _NAME.fullmatch(name) or name == META_NAME:
            raise ValueError(f"invalid payload file name {name!r}")
    clash = [key for key in RESERVED_KEYS if key in meta]
    if clash:
        raise ValueError(f"checkpoint meta may not set {', '.join(clash)}")
    for name, data in files.items():
        if len(data) > MAX_PAYLOAD_BYTES:
            raise CheckpointError(
                f"payload {name} is {len(data)} bytes, more than the {MAX_PAYLOAD_BYTES} a "
                "checkpoint may hold"
            )


def _check_sha256(path: Path, found: str, expected: str) -> None:
    if found != expected:
        raise CheckpointError(f"{path}: sha256 mismatch (expected {expected}, found {found})")


def no_link(path: Path, what: str) -> None:
    if path.is_symlink():
        raise CheckpointError(f"{path}: {what} is a link; a store holds no links")


def stale_temp_cleanup(parent: Path, max_age: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Remove the ``.tmp-*`` folders in ``parent`` older than ``max_age`` seconds; return them.

    They are what a writer killed before its rename leaves behind: never referenced by anything,
    skipped by every reader. Only write paths call this, and only on the folder they write into,
    so a failed gate (which writes only to its quarantine folder) never cleans the store.
    """
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    cutoff = time.time() - max_age
    for entry in sorted(parent.iterdir()):
        if not entry.name.startswith(TEMP_PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        with contextlib.suppress(OSError):  # best effort: a leftover is harmless, only untidy
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry)
                removed.append(entry)
    return removed


def write_checkpoint(
    parent: Path, stage: str, files: Mapping[str, bytes], meta: Mapping[str, Any]
) -> Checkpoint:
    """Write ``<parent>/<id>/`` atomically and return it; reuse it if it is already there.

    The id covers everything the folder holds, so an existing folder of that id is the same
    checkpoint: it is verified, not rewritten. On any failure nothing is left in ``parent`` but
    what was there.
    """
    return write_new(Path(parent), stage, files, meta)[0]


def write_new(
    parent: Path, stage: str, files: Mapping[str, bytes], meta: Mapping[str, Any]
) -> tuple[Checkpoint, bool]:
    """``write_checkpoint``, and whether this call created the folder."""
    document = checkpoint_document(stage, files, meta)
    target = parent / document["id"]
    # Validate before touching the disk: bad metadata writes nothing at all.
    check(document, "checkpoint", target / META_NAME)
    no_link(parent, "checkpoint folder")
    parent.mkdir(parents=True, exist_ok=True)
    stale_temp_cleanup(parent)
    if os.path.lexists(target):
        return load_checkpoint(target, verify=True), False

    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{document['id']}-", dir=parent))
    try:
        # Payloads first, checkpoint.json last: each file fsynced before the folder is renamed.
        contents = {**{n: files[n] for n in document["files"]}, META_NAME: dumps_json(document)}
        for name, data in contents.items():
            with open(tmp / name, "xb") as fh:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
                fh.flush()
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a checkpoint is as readable as a file
        os.rename(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and os.path.lexists(target):
            # Another writer renamed the same checkpoint into place first: reuse it.
            return load_checkpoint(target, verify=True), False
        raise
    fsync_dir(parent)
    return Checkpoint(document["id"], target, document), True


def discard(checkpoint: Checkpoint) -> None:
    """Remove a checkpoint folder this run created (the undo of a write): renamed to a hidden
    temp name first, so that an interrupted removal leaves only what readers skip."""
    trash = checkpoint.path.with_name(f"{TEMP_PREFIX}{checkpoint.id}-discarded")
    os.rename(checkpoint.path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def load_checkpoint(folder: Path, verify: bool = True) -> Checkpoint:
    """Read and check ``<folder>/checkpoint.json``; with ``verify``, check every payload.

    The id must match the folder's name and the document's own content (so an edited
    ``checkpoint.json`` is refused even without ``verify``). Verification then checks each
    payload's size (before reading it) and sha256. Problems are one-line ``CheckpointError``s.
    """
    folder = Path(folder)
    no_link(folder, "checkpoint folder")
    meta_path = folder / META_NAME
    document = load_json_regular(meta_path, MAX_META_BYTES, "checkpoint metadata", "checkpoint")
    ckpt_id = document["id"]
    if ckpt_id != folder.name:
        raise CheckpointError(f"{meta_path}: id '{ckpt_id}' does not match its folder name")
    actual = checkpoint_id(document)
    if actual != ckpt_id:
        raise CheckpointError(
            f"{meta_path}: id '{ckpt_id}' does not match its content, which hashes to "
            f"'{actual}': the file was edited"
        )
    if verify:
        for name, expected in document["files"].items():
            path = folder / name
            found = sha256_regular(path, MAX_PAYLOAD_BYTES, "payload file", expected["bytes"])
            _check_sha256(path, found, expected["sha256"])
    return Checkpoint(ckpt_id, folder, document)
