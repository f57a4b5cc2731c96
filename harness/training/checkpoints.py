"""The checkpoint store: checkpoints, the promotion pointer, and rollback by never writing.

Layout of a store (``output.checkpoint_dir`` of a training config)::

    <store>/
      promoted.json                  # the pointer; absent until the first promotion
      promoting.json                 # only while a promotion is under way (or was interrupted)
      checkpoints/<id>/checkpoint.json
      checkpoints/<id>/<payload files, e.g. policy.pt>

Each ``checkpoints/<id>/`` is a checkpoint folder (``checkpoint_folder``): its id covers its
metadata and payloads, it is written whole or not at all, and it is verified when read.

Promotion and rollback:

- ``commit`` is a passed gate's transaction: the checkpoint is written into the store, then its
  run-log record (the commit point), then ``promoted.json`` moves (see "Crash safety").
- ``reject`` is the rollback: a checkpoint whose gate failed goes to a quarantine folder chosen by
  the caller (the trainer uses ``<log dir>/rejected``), then its record; every byte of the store
  stays as it was, which ``CheckpointStore.snapshot`` lets tests prove.

Crash safety: a promotion first writes ``promoting.json`` (the new pointer and the digest of the
record that confirms it), then appends the record, then replaces ``promoted.json`` and removes
``promoting.json``. Readers take the new pointer from ``promoting.json`` exactly when its record
is in the run log, so a crash at any point leaves the old state or the whole new one, and
``promoted.json`` never names a checkpoint without its record. The next promotion, under the
store's lock, completes or drops what an interrupted one left. A failed write is undone: the
record withdrawn, ``promoting.json`` and the new checkpoint folder removed.

``promoted`` reads under a shared lock (it waits while a writer, or a ``hold``, has the store).
Reading (``CheckpointStore(...)``, ``promoted``, ``list``, ``snapshot``, ``load_checkpoint``)
never writes, and refuses links inside the store and files that are not regular
(``storefiles``); nothing here writes outside the folder it is given.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness.atomic import write_json_atomic
from harness.errors import HarnessError
from harness.formatting import utc_now
from harness.hashing import sha256_file
from harness.training.checkpoint_folder import (
    MAX_PAYLOAD_BYTES,
    META_NAME,
    RESERVED_KEYS,
    SCHEMA_VERSION,
    STALE_TEMP_SECONDS,
    TEMP_PREFIX,
    Checkpoint,
    checkpoint_document,
    checkpoint_id,
    discard,
    load_checkpoint,
    no_link,
    stale_temp_cleanup,
    write_checkpoint,
    write_new,
)
from harness.training.runlog import PendingRecord, holds_record
from harness.training.storefiles import CheckpointError, load_json_regular
from harness.validation import check

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "META_NAME",
    "RESERVED_KEYS",
    "SCHEMA_VERSION",
    "STALE_TEMP_SECONDS",
    "TEMP_PREFIX",
    "Checkpoint",
    "CheckpointError",
    "CheckpointStore",
    "PromotionStands",
    "checkpoint_document",
    "checkpoint_id",
    "load_checkpoint",
    "stale_temp_cleanup",
    "write_checkpoint",
]

POINTER_NAME = "promoted.json"
INTENT_NAME = "promoting.json"
CHECKPOINTS_DIR = "checkpoints"
MAX_POINTER_BYTES = 1 << 20


class PromotionStands(HarnessError):
    """A write failed after the promotion's record was logged and could not be undone: the
    promotion stands (``promoting.json`` completes ``promoted.json`` on the next promotion)."""


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
    def intent(self) -> Path:
        """``promoting.json``: the promotion under way, or one a crash interrupted."""
        return self.root / INTENT_NAME

    @property
    def checkpoints_dir(self) -> Path:
        no_link(self.root / CHECKPOINTS_DIR, "checkpoints folder")
        return self.root / CHECKPOINTS_DIR

    # --- reading ---------------------------------------------------------------------------

    def promoted(self) -> Checkpoint | None:
        """The promoted checkpoint, verified; ``None`` before the first promotion.

        Read under a shared lock on the root: while a writer (or ``hold``) has the store, this
        waits, so it never reads a pointer half-way through a promotion or a seeding."""
        with self._reading():
            return self._promoted()

    def _promoted(self) -> Checkpoint | None:
        document = self._effective_pointer()
        if document is None:
            return None
        ckpt_id = document["checkpoint"]
        if document["path"] != f"{CHECKPOINTS_DIR}/{ckpt_id}":
            raise CheckpointError(
                f"{self.pointer}: path '{document['path']}' does not match checkpoint '{ckpt_id}'"
            )
        folder = self.checkpoints_dir / ckpt_id
        if not folder.is_dir() or folder.is_symlink():
            what = "is a link" if folder.is_symlink() else f"is missing (no folder {folder})"
            raise CheckpointError(f"{self.pointer}: promoted checkpoint '{ckpt_id}' {what}")
        checkpoint = load_checkpoint(folder, verify=True)
        if checkpoint.stage != document["stage"]:
            raise CheckpointError(
                f"{self.pointer}: stage '{document['stage']}' does not match checkpoint "
                f"'{ckpt_id}' (stage '{checkpoint.stage}')"
            )
        return checkpoint

    def _read_pointer(self) -> dict[str, Any] | None:
        if not os.path.lexists(self.pointer):
            return None
        return load_json_regular(self.pointer, MAX_POINTER_BYTES, "checkpoint pointer", "promoted")

    def _read_intent(self) -> dict[str, Any] | None:
        if not os.path.lexists(self.intent):
            return None
        intent = load_json_regular(self.intent, MAX_POINTER_BYTES, "promotion", "promoting")
        check(intent["pointer"], "promoted", f"{self.intent} (pointer)")
        return intent

    def _confirmed(self, intent: dict[str, Any]) -> bool:
        """Whether the record that commits ``intent`` is in its run log."""
        record = intent["record"]
        return holds_record(self.root / record["log"], record["sha256"])

    def _effective_pointer(self) -> dict[str, Any] | None:
        """The pointer as it stands: a promotion whose record is logged counts, even if a crash
        kept it from replacing ``promoted.json``."""
        intent = self._read_intent()
        if intent is not None and self._confirmed(intent):
            return intent["pointer"]
        return self._read_pointer()

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

    # --- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """A shared lock on the root while it is read; none to take before the root exists (or
        when the root is not a folder: the read itself then says what is wrong)."""
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def hold(self) -> contextlib.AbstractContextManager[None]:
        """The store's exclusive lock, for a caller that fills the store itself: writers and
        ``promoted`` wait until it is released (the rehearsal seeds its drill's store so, while
        the drill's process already starts). Not reentrant: do not read the store while holding
        it."""
        return self._locked()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The store's writers take turns (a lock on the root folder itself: no lock file)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def add(self, stage: str, files: Mapping[str, bytes], meta: Mapping[str, Any]) -> Checkpoint:
        """Write a checkpoint into the store (not promoted yet); see ``write_checkpoint``."""
        return write_checkpoint(self.checkpoints_dir, stage, files, meta)

    def promote(self, ckpt: Checkpoint, gate: Mapping[str, Any]) -> None:
        """Point ``promoted.json`` at ``ckpt`` (no run log: ``commit`` is the trainer's way).

        The checkpoint is verified first, so the pointer never names a damaged checkpoint.
        Promoting the checkpoint that is already promoted writes nothing, and the chain never
        points at itself.
        """
        with self._locked():
            self._settle()
            self._promote(ckpt, gate, None)

    def commit(
        self,
        stage: str,
        files: Mapping[str, bytes],
        meta: Mapping[str, Any],
        gate: Mapping[str, Any],
        record: PendingRecord,
    ) -> Checkpoint:
        """A passed gate, as one transaction under the store's lock: write the checkpoint, log
        ``record`` (the commit point) and promote it. A failure undoes what it wrote, unless the
        promotion already stands (``PromotionStands``)."""
        with self._locked():
            self._settle()
            checkpoint, created = write_new(self.checkpoints_dir, stage, files, meta)
            try:
                self._promote(checkpoint, gate, record)
            except BaseException:
                if created and not self._stands(checkpoint):
                    with contextlib.suppress(OSError):
                        discard(checkpoint)
                raise
            return checkpoint

    def _stands(self, checkpoint: Checkpoint) -> bool:
        """Whether ``checkpoint`` is promoted as the store reads now (``True`` when that cannot be
        told: an undo never removes what might be promoted)."""
        try:
            pointer = self._effective_pointer()
        except (OSError, HarnessError):
            return True
        return pointer is not None and pointer["checkpoint"] == checkpoint.id

    def reject(
        self,
        quarantine: Path,
        stage: str,
        files: Mapping[str, bytes],
        meta: Mapping[str, Any],
        record: PendingRecord,
    ) -> Checkpoint:
        """A failed gate: keep the checkpoint in ``quarantine`` and log ``record``; the store is
        not touched. If the record cannot be logged, the quarantined copy is removed again."""
        checkpoint, created = self._quarantine(quarantine, stage, files, meta)
        try:
            record.append()
        except BaseException:
            if created and not _logged(record):
                with contextlib.suppress(OSError):
                    discard(checkpoint)
            raise
        return checkpoint

    def set_aside(
        self, quarantine: Path, stage: str, files: Mapping[str, bytes], meta: Mapping[str, Any]
    ) -> Checkpoint:
        """Keep a checkpoint that failed its gate in ``quarantine``; the store is not touched.

        This is the rollback: the pointer and every file of the store stay byte for byte as they
        were. ``quarantine`` must be outside the store (a ``ValueError`` otherwise).
        """
        return self._quarantine(quarantine, stage, files, meta)[0]

    def _quarantine(
        self, quarantine: Path, stage: str, files: Mapping[str, bytes], meta: Mapping[str, Any]
    ) -> tuple[Checkpoint, bool]:
        quarantine = Path(quarantine)
        if _inside(quarantine, self.root):
            raise ValueError(f"quarantine folder {quarantine} is inside the store {self.root}")
        return write_new(quarantine, stage, files, meta)

    def _promote(
        self, ckpt: Checkpoint, gate: Mapping[str, Any], record: PendingRecord | None
    ) -> None:
        """Move the pointer (under the lock, after ``_settle``); with ``record``, through
        ``promoting.json`` and the record, as the module's "Crash safety" says."""
        in_store = ckpt.path.parent.resolve() == self.checkpoints_dir.resolve()
        if ckpt.path.name != ckpt.id or not in_store:
            raise ValueError(f"checkpoint {ckpt.path} is not in the store {self.root}")
        checkpoint = load_checkpoint(ckpt.path, verify=True)
        current = self._read_pointer()
        if current is not None and current["checkpoint"] == checkpoint.id:
            if record is not None:
                record.append()
            return
        document = {
            "schema_version": 1,
            "checkpoint": checkpoint.id,
            "stage": checkpoint.stage,
            "path": f"{CHECKPOINTS_DIR}/{checkpoint.id}",
            "promoted_at": utc_now(),
            "gate": dict(gate),
            "previous": current["checkpoint"] if current else None,
        }
        check(document, "promoted", self.pointer)
        if record is None:
            write_json_atomic(self.pointer, document)
            return
        confirmation = {"log": os.path.relpath(record.log, self.root), "sha256": record.digest}
        intent = {"schema_version": 1, "pointer": document, "record": confirmation}
        check(intent, "promoting", self.intent)
        write_json_atomic(self.intent, intent)
        try:
            record.append()  # the commit point
            write_json_atomic(self.pointer, document)
        except BaseException as exc:
            self._undo(checkpoint, record, exc)
            raise
        with contextlib.suppress(OSError):  # a leftover agrees with promoted.json now
            self.intent.unlink()

    def _undo(self, checkpoint: Checkpoint, record: PendingRecord, exc: BaseException) -> None:
        """After a failed write in ``_promote``: withdraw the record and drop ``promoting.json``,
        unless ``promoted.json`` was written already. If the promotion stands after all (the
        undo failed too), raise ``PromotionStands`` saying so."""
        with contextlib.suppress(OSError, HarnessError):
            current = self._read_pointer()
            written = current is not None and current["checkpoint"] == checkpoint.id
            if not written and holds_record(record.log, record.digest):
                record.withdraw()
            # promoting.json goes only with its record: the two together are the promotion.
            if written or not holds_record(record.log, record.digest):
                self.intent.unlink(missing_ok=True)
        if self._stands(checkpoint) and isinstance(exc, Exception):
            where = getattr(exc, "filename", None) or record.log
            raise PromotionStands(
                f"{where}: a write failed ({_reason(exc)}) after the promotion of "
                f"{checkpoint.id} was logged, and it could not be undone: it stands, recorded in "
                f"{record.log}; {self.intent} completes {self.pointer} on the next promotion"
            ) from exc

    def _settle(self) -> None:
        """Complete or drop what an interrupted promotion left (under the lock): its pointer is
        written if its record made it into the run log."""
        intent = self._read_intent()
        if intent is None:
            return
        if self._confirmed(intent) and self._read_pointer() != intent["pointer"]:
            write_json_atomic(self.pointer, intent["pointer"])
        self.intent.unlink()

    # Defined last: inside the class body, ``list`` names this method from here on.
    def list(self, verify: bool = False) -> list[Checkpoint]:
        """The checkpoints in the store, oldest first (by when their metadata was written, then
        id). Hidden temp folders are skipped. Payloads are only hashed with ``verify``."""
        if not self.checkpoints_dir.is_dir():
            return []
        checkpoints = [
            load_checkpoint(entry, verify=verify)
            for entry in self.checkpoints_dir.iterdir()
            if not entry.name.startswith(".") and (entry.is_dir() or entry.is_symlink())
        ]

        def written(c: Checkpoint) -> tuple[int, str]:
            return (c.path.joinpath(META_NAME).stat().st_mtime_ns, c.id)

        return sorted(checkpoints, key=written)


def _logged(record: PendingRecord) -> bool:
    """Whether ``record`` is in its run log (``True`` when that cannot be told)."""
    try:
        return holds_record(record.log, record.digest)
    except (OSError, HarnessError):
        return True


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__
