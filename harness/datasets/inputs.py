"""A dataset's inputs (its manifest, checksum sheet and captures), which no output may replace.

A command that writes a file the user names (``--ppo-log``, the training outputs,
``dataset export -o``, ``config overlay -o``, ``capture record -o``, ``--checksums``) first
asks ``refuse_overwrite`` whether that file is an input of a dataset: of the one the command
works on, and of every dataset laid out around the file (a ``manifests/`` folder beside one of
its ancestors). Paths are compared after resolving links and ``..``, and by inode for a file
that exists, so a symbolic or hard link to a manifest is caught as the manifest itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.datasets.checksums import SUMS_NAME
from harness.datasets.manifest import load_manifest
from harness.datasets.registry import sheet_beside
from harness.errors import HarnessError

MAX_MANIFESTS = 64  # manifests read per manifests/ folder around an output: the check stays cheap


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(path))


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


@dataclass(frozen=True)
class Target:
    """The file a command is about to write, resolved once."""

    real: Path
    identity: tuple[int, int] | None

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> Target:
        real = _real(path)
        return cls(real, _identity(real))

    def is_(self, other: Path, other_identity: tuple[int, int] | None) -> bool:
        return self.real == other or (self.identity is not None and self.identity == other_identity)

    def inside(self, folder: Path) -> bool:
        return self.real == folder or self.real.is_relative_to(folder)


@dataclass(frozen=True)
class DatasetInputs:
    """The real paths of a dataset's inputs; ``captures`` is None when its manifest cannot be
    read (its manifest and sheet are still protected)."""

    name: str
    manifest: Path
    sheet: Path
    captures: Path | None = None
    entries: dict[Path, str] = field(default_factory=dict)
    """Real path of each entry's capture -> entry id."""

    def role(
        self, target: Target, *, sheet_ok: bool, sums_ok: bool, captures_ok: bool
    ) -> str | None:
        """What ``target`` is to this dataset, if it must not be written; else None."""
        if target.is_(self.manifest, _identity(self.manifest)):
            return f"is the manifest of dataset '{self.name}'"
        for path, entry in self.entries.items():
            if target.is_(path, _identity(path)):
                return f"is capture '{entry}' of dataset '{self.name}'"
        if not sheet_ok and target.is_(self.sheet, _identity(self.sheet)):
            return f"is the checksum sheet of dataset '{self.name}'"
        if self.captures is None or captures_ok or not target.inside(self.captures):
            return None
        if sums_ok and target.real == self.captures / SUMS_NAME:
            return None
        return f"lies in the captures folder {self.captures} of dataset '{self.name}'"


def inputs_of(
    manifest: str | os.PathLike[str], sheet: str | os.PathLike[str] | None = None
) -> DatasetInputs:
    """The inputs of the dataset of ``manifest`` (its sheet: ``sheet``, else the one beside it)."""
    sheet_path = Path(sheet) if sheet is not None else sheet_beside(Path(manifest))
    try:
        loaded = load_manifest(manifest)
    except (HarnessError, OSError, ValueError, RecursionError):
        # Unreadable: nothing reads its captures, but its files are still not outputs.
        return DatasetInputs(Path(manifest).stem, _real(manifest), _real(sheet_path))
    entries = {}
    for entry in loaded.entries:
        entries[loaded.capture_path(entry)] = entry.id
    return DatasetInputs(
        loaded.dataset, _real(manifest), _real(sheet_path), _real(loaded.captures_dir), entries
    )


def datasets_around(path: str | os.PathLike[str]) -> Iterator[DatasetInputs]:
    """The datasets laid out around ``path``: those of the manifests in a ``manifests/``
    folder beside ``path``'s folder or any of its ancestors."""
    for folder in _real(path).parents:
        manifests = folder / "manifests"
        if manifests.is_dir():
            for manifest in sorted(manifests.glob("*.json"))[:MAX_MANIFESTS]:
                if manifest.is_file():
                    yield inputs_of(manifest)


def refuse_overwrite(
    output: str | os.PathLike[str],
    what: str,
    own: DatasetInputs | None = None,
    *,
    own_sheet: bool = False,
    own_sums: bool = False,
    into_captures: bool = False,
    also: Mapping[Path, str] | None = None,
) -> None:
    """Raise a one-line ``HarnessError`` if writing ``what`` to ``output`` would replace an
    input of ``own`` (the dataset the command works on) or of a dataset around ``output``.

    ``own_sheet``: ``output`` may be ``own``'s checksum sheet (the command writes the sheet);
    ``own_sums``: it may be ``SHA256SUMS`` in ``own``'s captures folder; ``into_captures``: it
    may lie in any captures folder, but never be a capture named by a manifest (recording).
    ``also`` maps other files that are inputs to what they are ("is the base config").
    """
    target = Target.of(output)
    for path, role in (also or {}).items():
        if target.is_(_real(path), _identity(_real(path))):
            _refuse(output, what, role)
    flags = {"sheet_ok": own_sheet, "sums_ok": own_sums, "captures_ok": into_captures}
    if own is not None and (role := own.role(target, **flags)):
        _refuse(output, what, role)
    for other in datasets_around(target.real):
        if own is not None and other.manifest == own.manifest:
            continue
        if role := other.role(target, sheet_ok=False, sums_ok=False, captures_ok=into_captures):
            _refuse(output, what, role)


def _refuse(output: str | os.PathLike[str], what: str, role: str) -> None:
    raise HarnessError(f"{output}: {role}; refusing to write {what} over it (nothing written)")
