"""The checkpoint store: content-addressed checkpoints, promotion, and rollback by never writing.

Layout of a store (``output.checkpoint_dir`` of a training config)::

    <store>/
      promoted.json                  # the pointer; absent until the first promotion
      checkpoints/<id>/checkpoint.json
      checkpoints/<id>/<payload files, e.g. policy.pt>

A checkpoint is a folder holding its payload files (opaque bytes: the trainer serialises its
state dict itself, so this module never imports torch) and ``checkpoint.json`` with their sha256
and the caller's metadata. Its id is ``<stage>-<12 hex>`` over the payload bytes, so a
deterministic rerun finds its checkpoint already there instead of writing a duplicate.

Promotion and rollback:

- A checkpoint whose gate passed is added to the store, then ``promote`` moves the pointer: one
  atomic replace of ``promoted.json``, the only moment the pointer moves.
- A checkpoint whose gate failed is never written into the store: ``set_aside`` writes it to a
  quarantine folder chosen by the caller (the trainer uses ``<log dir>/rejected``). So on a failed
  gate every byte of the store is unchanged, which ``CheckpointStore.snapshot`` lets tests prove.

Crash safety: a checkpoint folder is built as a hidden ``.tmp-<id>-XXXX`` folder beside its final
place and renamed onto it once complete, so ``<id>/`` is either whole or absent. A writer killed
before its rename leaves only the hidden temp folder, which every reader skips and the next write
into the same folder removes once it is ``STALE_TEMP_SECONDS`` old (see ``stale_temp_cleanup``).

Reading (``CheckpointStore(...)``, ``promoted``, ``list``, ``snapshot``, ``load_checkpoint``)
never writes, and nothing here writes outside the folder it is given.
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

from harness.atomic import dumps_json, fsync_dir, write_json_atomic
from harness.errors import HarnessError
from harness.formatting import utc_now
from harness.hashing import sha256_file
from harness.validation import check, load_validated

SCHEMA_VERSION = 1
META_NAME = "checkpoint.json"
POINTER_NAME = "promoted.json"
CHECKPOINTS_DIR = "checkpoints"
TEMP_PREFIX = ".tmp-"
# A temp folder younger than this may belong to a writer that is still running (two runs sharing
# a store), so cleanup leaves it alone; writing a checkpoint takes well under a second.
STALE_TEMP_SECONDS = 600.0

# Stages and payload names become path components: one plain name, never hidden, never a path.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_RESERVED = ("schema_version", "id", "stage", "created", "files")


class CheckpointError(HarnessError):
    """A checkpoint or the promotion pointer is damaged: missing, altered or inconsistent."""


@dataclass(frozen=True)
class Checkpoint:
    id: str
    path: Path
    """The checkpoint's folder."""
    meta: dict[str, Any]
    """The whole ``checkpoint.json`` document (schema_version, id, stage, created, files, ...)."""

    @property
    def stage(self) -> str:
        return str(self.meta["stage"])

    def file(self, name: str) -> Path:
        """Path of the payload file ``name`` (a ``KeyError`` if the checkpoint has none)."""
        if name not in self.meta["files"]:
            raise KeyError(f"checkpoint {self.id} has no payload file {name!r}")
        return self.path / name


def checkpoint_id(stage: str, files: Mapping[str, bytes]) -> str:
    """``<stage>-<12 hex>``: sha256 over the payload files in name order, names and bytes both.

    Each name and each payload is preceded by its length, so no two different file sets hash
    the same stream (``{"ab": b"c"}`` and ``{"a": b"bc"}`` differ).
    """
    digest = hashlib.sha256()
    for name in sorted(files):
        encoded = name.encode("utf-8")
        data = files[name]
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return f"{stage}-{digest.hexdigest()[:12]}"


def _file_entries(files: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    return {
        name: {"sha256": hashlib.sha256(files[name]).hexdigest(), "bytes": len(files[name])}
        for name in sorted(files)
    }


def _check_arguments(stage: str, files: Mapping[str, bytes], meta: Mapping[str, Any]) -> None:
    # Misuse by the calling code, not bad user input: a plain ValueError.
    if not _NAME.fullmatch(stage):
        raise ValueError(f"invalid checkpoint stage {stage!r}")
    if not files:
        raise ValueError("a checkpoint needs at least one payload file")
    for name in files:
        if not _NAME.fullmatch(name) or name == META_NAME:
            raise ValueError(f"invalid payload file name {name!r}")
    clash = [key for key in _RESERVED if key in meta]
    if clash:
        raise ValueError(f"checkpoint meta may not set {', '.join(clash)}")


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
    """Write ``<parent>/<id>/`` atomically and return it; reuse it if it already holds these bytes.

    A reused checkpoint is returned untouched (its ``checkpoint.json``, with the metadata of the
    first write, is not rewritten). A folder with the same id but other or damaged payload files
    is a ``CheckpointError``. On any failure nothing is left in ``parent`` but what was there.
    """
    parent = Path(parent)
    _check_arguments(stage, files, meta)
    ckpt_id = checkpoint_id(stage, files)
    target = parent / ckpt_id
    entries = _file_entries(files)
    document = {
        "schema_version": SCHEMA_VERSION,
        "id": ckpt_id,
        "stage": stage,
        "created": utc_now(),
        "files": entries,
        **meta,
    }
    # Serialise and validate before touching the disk: bad metadata writes nothing at all.
    text = dumps_json(document)
    document = json.loads(text)  # exactly what load_checkpoint will read back
    check(document, "checkpoint", target / META_NAME)

    parent.mkdir(parents=True, exist_ok=True)
    stale_temp_cleanup(parent)
    if target.exists():
        return _reuse(target, stage, entries)

    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{ckpt_id}-", dir=parent))
    try:
        # Payloads first, checkpoint.json last: each file fsynced before the folder is renamed.
        contents = {**{name: files[name] for name in entries}, META_NAME: text.encode("utf-8")}
        for name, data in contents.items():
            with open(tmp / name, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a checkpoint is as readable as a file
        os.rename(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and target.exists():
            # Another writer renamed the same checkpoint into place first: same bytes, reuse it.
            return _reuse(target, stage, entries)
        raise
    fsync_dir(parent)
    return Checkpoint(ckpt_id, target, document)


def _reuse(target: Path, stage: str, entries: dict[str, dict[str, Any]]) -> Checkpoint:
    existing = load_checkpoint(target, verify=True)
    if existing.stage != stage or existing.meta["files"] != entries:
        raise CheckpointError(
            f"{target / META_NAME}: holds other payload files than the checkpoint being written "
            "with the same id"
        )
    return existing


def load_checkpoint(folder: Path, verify: bool = True) -> Checkpoint:
    """Read and schema-check ``<folder>/checkpoint.json``; with ``verify``, check every payload.

    Verification recomputes each payload file's size and sha256 and the id from the bytes, and
    raises ``CheckpointError`` naming the first file that does not match.
    """
    folder = Path(folder)
    meta_path = folder / META_NAME
    document = load_validated(meta_path, "checkpoint", "checkpoint metadata")
    ckpt_id, stage = document["id"], document["stage"]
    if ckpt_id != folder.name:
        raise CheckpointError(f"{meta_path}: id '{ckpt_id}' does not match its folder name")
    if not ckpt_id.startswith(f"{stage}-"):
        raise CheckpointError(f"{meta_path}: id '{ckpt_id}' does not match its stage '{stage}'")
    if verify:
        payloads: dict[str, bytes] = {}
        for name, expected in document["files"].items():
            path = folder / name
            if path.is_symlink():
                raise CheckpointError(f"{path}: payload is a link, expected a regular file")
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise CheckpointError(f"{path}: payload file missing") from None
            except OSError as exc:
                raise CheckpointError(
                    f"{path}: cannot read payload: {exc.strerror or exc}"
                ) from None
            if len(data) != expected["bytes"]:
                raise CheckpointError(
                    f"{path}: size mismatch (expected {expected['bytes']} bytes, found {len(data)})"
                )
            found = hashlib.sha256(data).hexdigest()
            if found != expected["sha256"]:
                raise CheckpointError(
                    f"{path}: sha256 mismatch (expected {expected['sha256']}, found {found})"
                )
            payloads[name] = data
        # Every file matches its sheet, so a different id means checkpoint.json was rewritten.
        actual = checkpoint_id(stage, payloads)
        if actual != ckpt_id:
            raise CheckpointError(
                f"{meta_path}: id '{ckpt_id}' does not match its payload files (they hash to '{actual}')"
            )
    return Checkpoint(ckpt_id, folder, document)


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


class CheckpointStore:
    """The checkpoints of one training setup and the pointer to the promoted one.

    Constructing a store and reading it never writes, not even the root folder.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def pointer(self) -> Path:
        return self.root / POINTER_NAME

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    def promoted(self) -> Checkpoint | None:
        """The promoted checkpoint, verified; ``None`` before the first promotion."""
        if not self.pointer.exists():
            return None
        document = load_validated(self.pointer, "promoted", "checkpoint pointer")
        ckpt_id = document["checkpoint"]
        if document["path"] != f"{CHECKPOINTS_DIR}/{ckpt_id}":
            raise CheckpointError(
                f"{self.pointer}: path '{document['path']}' does not match checkpoint '{ckpt_id}'"
            )
        folder = self.checkpoints_dir / ckpt_id
        if not folder.is_dir():
            raise CheckpointError(
                f"{self.pointer}: promoted checkpoint '{ckpt_id}' is missing (no folder {folder})"
            )
        checkpoint = load_checkpoint(folder, verify=True)
        if checkpoint.stage != document["stage"]:
            raise CheckpointError(
                f"{self.pointer}: stage '{document['stage']}' does not match checkpoint "
                f"'{ckpt_id}' (stage '{checkpoint.stage}')"
            )
        return checkpoint

    def add(self, stage: str, files: Mapping[str, bytes], meta: Mapping[str, Any]) -> Checkpoint:
        """Write a checkpoint into the store (not promoted yet); see ``write_checkpoint``."""
        return write_checkpoint(self.checkpoints_dir, stage, files, meta)

    def promote(self, ckpt: Checkpoint, gate: Mapping[str, Any]) -> None:
        """Point ``promoted.json`` at ``ckpt``, recording the gate that passed and the previous one.

        The checkpoint is verified first, so the pointer never names a damaged checkpoint.
        Promoting the checkpoint that is already promoted writes nothing: a deterministic rerun
        (same config, same seed, same weights) leaves the store byte for byte as it was, and
        the chain never points at itself.
        """
        in_store = ckpt.path.parent.resolve() == self.checkpoints_dir.resolve()
        if ckpt.path.name != ckpt.id or not in_store:
            raise ValueError(f"checkpoint {ckpt.path} is not in the store {self.root}")
        checkpoint = load_checkpoint(ckpt.path, verify=True)
        previous: str | None = None
        if self.pointer.exists():
            current = load_validated(self.pointer, "promoted", "checkpoint pointer")
            if current["checkpoint"] == checkpoint.id:
                return
            previous = current["checkpoint"]
        document = {
            "schema_version": SCHEMA_VERSION,
            "checkpoint": checkpoint.id,
            "stage": checkpoint.stage,
            "path": f"{CHECKPOINTS_DIR}/{checkpoint.id}",
            "promoted_at": utc_now(),
            "gate": dict(gate),
            "previous": previous,
        }
        check(document, "promoted", self.pointer)
        write_json_atomic(self.pointer, document)

    def set_aside(
        self, quarantine: Path, stage: str, files: Mapping[str, bytes], meta: Mapping[str, Any]
    ) -> Checkpoint:
        """Keep a checkpoint that failed its gate in ``quarantine``; the store is not touched.

        This is the rollback: the pointer and every file of the store stay byte for byte as they
        were. ``quarantine`` must be outside the store (a ``ValueError`` otherwise).
        """
        quarantine = Path(quarantine)
        if _inside(quarantine, self.root):
            raise ValueError(f"quarantine folder {quarantine} is inside the store {self.root}")
        return write_checkpoint(quarantine, stage, files, meta)

    def snapshot(self) -> dict[str, str]:
        """Relative posix path -> sha256 of every regular file under the root, sorted.

        Hidden files count (a leftover temp file shows up); ``{}`` when the root does not exist.
        Comparing snapshots before and after a failed gate proves the rollback wrote nothing.
        """
        if not self.root.is_dir():
            return {}
        found: dict[str, str] = {}
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                path = Path(dirpath, name)
                if path.is_file() and not path.is_symlink():
                    found[path.relative_to(self.root).as_posix()] = sha256_file(path).sha256
        return dict(sorted(found.items()))

    # Defined last: inside the class body, ``list`` names this method from here on.
    def list(self, verify: bool = False) -> list[Checkpoint]:
        """The checkpoints in the store, oldest first (by ``created``, then id).

        Hidden temp folders are skipped. Payloads are only hashed with ``verify``.
        """
        if not self.checkpoints_dir.is_dir():
            return []
        checkpoints = [
            load_checkpoint(entry, verify=verify)
            for entry in self.checkpoints_dir.iterdir()
            if entry.is_dir() and not entry.name.startswith(".")
        ]
        return sorted(checkpoints, key=lambda c: (c.meta["created"], c.id))
