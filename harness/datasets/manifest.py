"""Manifests: the captures of a dataset, each with its review status.

Only ``accepted`` captures are used downstream. Loading a manifest validates it against
``schemas/manifest.schema.json``, refuses duplicate ids, and resolves every capture path safely
(see ``paths.py``) before any capture is opened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.atomic import write_json_atomic
from harness.datasets.paths import resolve_inside
from harness.envs import EnvSpec
from harness.errors import HarnessError, UnsafePathError
from harness.validation import check, load_json

STATUSES = ("accepted", "rejected", "pending")
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One capture of a dataset and its review."""

    id: str
    path: str
    status: str
    episodes: int
    steps: int
    demonstrator: dict[str, Any]
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "status": self.status,
            "episodes": self.episodes,
            "steps": self.steps,
            "demonstrator": self.demonstrator,
            "review": {"reason": self.reason},
        }


@dataclass
class Manifest:
    """A loaded manifest; ``path`` is the file it came from or will be saved to."""

    path: Path
    dataset: str
    env_id: str
    captures_dir_text: str
    entries: list[Entry] = field(default_factory=list)
    description: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of ``gymnasium.make`` the captures were recorded with."""
    base_config: str | None = None
    """The training config the rehearsal overlays for this dataset, relative to the manifest's
    folder (``None``: the rehearsal's default)."""

    def env_spec(self) -> EnvSpec:
        """The environment of the dataset's captures."""
        return EnvSpec.of(self.env_id, self.env_kwargs)

    @property
    def base_config_path(self) -> Path | None:
        """``base_config`` resolved against the manifest's folder."""
        if self.base_config is None:
            return None
        return Path(os.path.normpath(self.path.parent / self.base_config))

    @property
    def captures_dir(self) -> Path:
        """The captures folder (``captures_dir`` resolved against the manifest's folder)."""
        return Path(os.path.normpath(self.path.parent / self.captures_dir_text))

    def accepted(self) -> list[Entry]:
        return [e for e in self.entries if e.status == "accepted"]

    def entry(self, entry_id: str) -> Entry:
        for e in self.entries:
            if e.id == entry_id:
                return e
        known = ", ".join(e.id for e in self.entries) or "none"
        raise HarnessError(f"{self.path}: no entry '{entry_id}' (entries: {known})")

    def capture_path(self, entry: Entry) -> Path:
        """The real path of ``entry``'s capture, refusing paths that leave the captures folder."""
        return resolve_inside(self.captures_dir, entry.path, source=self.path, entry=entry.id)

    def replace_entry(self, new: Entry) -> None:
        self.entries = [new if e.id == new.id else e for e in self.entries]

    def with_status(self, entry_id: str, status: str, reason: str) -> Entry:
        if status not in STATUSES:
            raise HarnessError(f"unknown status '{status}' (expected one of {', '.join(STATUSES)})")
        new = replace(self.entry(entry_id), status=status, reason=reason)
        self.replace_entry(new)
        return new

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "dataset": self.dataset,
            "env_id": self.env_id,
        }
        # Written only when set, so that manifests of environments made without arguments keep
        # their bytes.
        if self.env_kwargs:
            doc["env_kwargs"] = self.env_kwargs
        doc["captures_dir"] = self.captures_dir_text
        if self.base_config is not None:
            doc["base_config"] = self.base_config
        if self.description is not None:
            doc["description"] = self.description
        doc["entries"] = [e.to_json() for e in self.entries]
        return doc

    def save(self) -> None:
        """Validate and write atomically."""
        doc = self.to_json()
        check(doc, "manifest", self.path)
        _check_entries(self)
        write_json_atomic(self.path, doc)


def _check_captures_dir(manifest: Manifest) -> None:
    """``captures_dir`` must resolve inside the dataset's root (the folder holding the
    ``manifests/`` and ``checksums/`` folders), and be neither that root, nor the manifest's
    folder, nor in the checksums folder: no entry may then name a system file or a manifest."""
    text = manifest.captures_dir_text
    shown = text if len(text) <= 200 else text[:197] + "..."
    if "\x00" in text:
        raise UnsafePathError(f"{manifest.path}: captures_dir contains a NUL byte; refused")
    manifest_dir = Path(os.path.realpath(manifest.path.absolute().parent))
    root = manifest_dir.parent
    real = Path(os.path.realpath(manifest.captures_dir.absolute()))
    sheets = root / "checksums"
    if real in (root, manifest_dir) or not real.is_relative_to(root) or real.is_relative_to(sheets):
        raise UnsafePathError(
            f"{manifest.path}: captures_dir '{shown}' resolves to {real}, which is not a "
            f"captures folder inside the dataset's root {root} (the folder of manifests/ and "
            "checksums/); refused, nothing read"
        )


def _check_entries(manifest: Manifest) -> None:
    _check_captures_dir(manifest)
    seen: set[str] = set()
    for e in manifest.entries:
        if e.id in seen:
            raise HarnessError(f"{manifest.path}: duplicate entry id '{e.id}'")
        seen.add(e.id)
        manifest.capture_path(e)  # raises UnsafePathError


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Load and validate a manifest; every entry's path is checked before anything is read."""
    path = Path(path)
    doc = load_json(path, "manifest")
    check(doc, "manifest", path)
    manifest = Manifest(
        path=path,
        dataset=doc["dataset"],
        env_id=doc["env_id"],
        captures_dir_text=doc["captures_dir"],
        description=doc.get("description"),
        env_kwargs=doc.get("env_kwargs", {}),
        base_config=doc.get("base_config"),
        entries=[
            Entry(
                id=e["id"],
                path=e["path"],
                status=e["status"],
                episodes=e["episodes"],
                steps=e["steps"],
                demonstrator=e["demonstrator"],
                reason=e["review"]["reason"],
            )
            for e in doc["entries"]
        ],
    )
    _check_entries(manifest)
    return manifest


def new_manifest(
    path: str | os.PathLike[str],
    dataset: str,
    env_id: str,
    captures_dir: str | os.PathLike[str],
    description: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> Manifest:
    """A manifest with no entries whose ``captures_dir`` is stored relative to ``path``'s folder."""
    path = Path(path)
    rel = os.path.relpath(Path(captures_dir).absolute(), path.absolute().parent)
    return Manifest(
        path=path,
        dataset=dataset,
        env_id=env_id,
        captures_dir_text=Path(rel).as_posix(),
        description=description,
        env_kwargs=dict(env_kwargs or {}),
    )
