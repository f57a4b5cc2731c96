"""Dataset names: ``idle_v1``, ``preflight``, any registered name, or a manifest path.

The same resolution serves ``harness dataset ...``, the trainer and the rehearsal's
``--dataset``. Registered datasets live under ``data/bc_datasets/`` of the project root; the
synthetic preflight dataset lives under ``artifacts/m5/preflight/``. Both use the same layout::

    <root>/manifests/<name>.json
    <root>/checksums/<name>.json
    <root>/captures/<name>/...

One rule gives a manifest's checksum sheet, unless one is given: ``../checksums/<manifest file
name>`` beside the manifest's folder (``sheet_beside``), for a dataset name, a manifest path and
a config without ``dataset.checksums`` alike. It goes by the file's name, not the dataset name
inside the manifest: the two agree for every dataset laid out as above, and a copy of a manifest
under another file name has the sheet of that name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.validation import load_json

DEFAULT_DATASET = "idle_v1"
PREFLIGHT = "preflight"
DATASETS_DIR = Path("data/bc_datasets")
PREFLIGHT_DIR = Path("artifacts/m5/preflight")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def project_root() -> Path:
    """The project checkout: ``$HARNESS_ROOT``, else the checkout this package was installed
    from (``pip install -e .``), else the working folder."""
    env = os.environ.get("HARNESS_ROOT")
    if env:
        return Path(env)
    source = Path(__file__).resolve().parents[2]
    if (source / DATASETS_DIR).is_dir():
        return source
    return Path.cwd()


@dataclass(frozen=True)
class DatasetRef:
    """Where a dataset's files are."""

    name: str
    manifest: Path
    checksums: Path


def sheet_beside(manifest: Path) -> Path:
    """The conventional checksum sheet of a manifest: ``../checksums/<manifest file name>``."""
    return manifest.parent.parent / "checksums" / manifest.name


def registered_names(root: Path | None = None) -> list[str]:
    root = root or project_root()
    names = {p.stem for p in (root / DATASETS_DIR / "manifests").glob("*.json")}
    if (root / PREFLIGHT_DIR / "manifests" / f"{PREFLIGHT}.json").is_file():
        names.add(PREFLIGHT)
    return sorted(names)


def looks_like_path(arg: str) -> bool:
    return "/" in arg or os.sep in arg or arg.endswith(".json")


def resolve(arg: str, root: Path | None = None) -> DatasetRef:
    """Resolve a dataset name or manifest path; the sheet is the one beside the manifest.

    For a manifest path the dataset name is read from the manifest itself.
    """
    root = root or project_root()
    if not arg:
        raise HarnessError("empty dataset name")
    if arg == PREFLIGHT:
        manifest = root / PREFLIGHT_DIR / "manifests" / f"{PREFLIGHT}.json"
        return DatasetRef(PREFLIGHT, manifest, sheet_beside(manifest))
    if not looks_like_path(arg):
        manifest = root / DATASETS_DIR / "manifests" / f"{arg}.json"
        if not _NAME.match(arg) or not manifest.is_file():
            known = ", ".join(registered_names(root)) or "none"
            raise HarnessError(
                f"unknown dataset '{arg}' (registered under {root / DATASETS_DIR}: "
                f"{known}); give a manifest path to use another"
            )
        return DatasetRef(arg, manifest, sheet_beside(manifest))
    manifest = Path(arg)
    doc = load_json(manifest, "manifest")
    name = doc.get("dataset") if isinstance(doc, dict) else None
    if not isinstance(name, str) or not _NAME.match(name):
        name = manifest.stem  # the schema check that follows names the real problem
    return DatasetRef(name, manifest, sheet_beside(manifest))
