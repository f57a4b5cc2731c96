"""Changing a config: ``Config.override``, ``--set KEY=VALUE`` and overlay files.

An overlay is a config derived from a base with a few keys changed, written as a complete,
standalone file. Its relative paths are rewritten relative to its own folder, so it points at the
same files wherever it is written (``overlay``, ``harness config overlay``). Each change names
its key; an unknown key or a bad value is one ``SchemaError`` line naming the change at fault.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.atomic import write_text_atomic
from harness.config.dataset_match import env_mismatch
from harness.config.keys import KEY_TYPES, SECTIONS, path_keys, takes_text
from harness.config.model import Config, relative_path
from harness.config.pipeline import build, config_from_document, problems
from harness.config.yaml_text import dump_yaml, parse_yaml, read_yaml
from harness.datasets.inputs import inputs_of, refuse_overwrite
from harness.datasets.manifest import load_manifest
from harness.datasets.registry import resolve, sheet_beside
from harness.errors import HarnessError, SchemaError
from harness.formatting import and_more

Change = tuple[str, Any, str]
"""One change: dotted key, value, and the value as the user typed it (for messages)."""


def _show(value: Any) -> str:
    """A value as a user would type it on one line."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    # A line break would end a YAML comment and corrupt an overlay's header.
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _check_key(key: str, origin: str, prefix: str = "") -> None:
    if key in KEY_TYPES:
        return
    name, _, sub = key.partition(".")
    if name in SECTIONS and SECTIONS[name] and not sub:
        why = f"'{key}' in {origin} is a section; set one of its keys ({', '.join(SECTIONS[name])})"
    elif name in SECTIONS and not SECTIONS[name]:
        why = f"unknown key '{key}' in {origin} ('{name}' is a value, not a section)"
    elif name in SECTIONS:
        why = f"unknown key '{key}' in {origin} (known keys of {name}: {', '.join(SECTIONS[name])})"
    else:
        why = f"unknown key '{key}' in {origin} (known keys: {', '.join(SECTIONS)})"
    raise SchemaError(prefix + why)


def _apply(
    document: dict[str, Any],
    changes: Sequence[Change],
    origin: str,
    cwd: str,
    prefix: str = "",
) -> dict[str, bool]:
    """Apply changes to a complete document with absolute paths, and validate the result.

    A relative path value resolves against ``cwd``. Replacing ``dataset.manifest`` alone also
    replaces ``dataset.checksums`` by the manifest's conventional sheet: a sheet belongs to its
    manifest. Raises a ``SchemaError`` starting with ``prefix`` and naming the change at fault.
    Returns, for each path key changed, whether it was given relative.
    """
    relative: dict[str, bool] = {}
    seen: set[str] = set()
    for key, value, _ in changes:
        _check_key(key, origin, prefix)
        if key in seen:
            raise SchemaError(f"{prefix}{origin} {key} given twice")
        seen.add(key)
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, tuple):
            value = list(value)  # the schema's arrays are lists; a Config holds tuples
        if KEY_TYPES[key] is Path and isinstance(value, str) and value:
            relative[key] = not os.path.isabs(value)
            value = os.path.normpath(os.path.join(cwd, value))
        name, _, sub = key.partition(".")
        if sub:
            document[name][sub] = value
        else:
            document[name] = value
    if "dataset.manifest" in seen and "dataset.checksums" not in seen:
        manifest = document["dataset"]["manifest"]
        if isinstance(manifest, str) and manifest:
            document["dataset"]["checksums"] = str(sheet_beside(Path(manifest)))
            relative["dataset.checksums"] = relative.get("dataset.manifest", False)

    found = problems(document)
    if found:
        shown = {key: text for key, _, text in changes}
        first, more = found[0], and_more(found)
        key, _, message = first.partition(": ")
        if key in shown:
            raise SchemaError(f"{prefix}{origin} {key}={shown[key]}: {message}{more}")
        together = ", ".join(f"{k}={v}" for k, v in shown.items())
        raise SchemaError(f"{prefix}{origin} {together}: {first}{more}")
    return relative


def override(config: Config, changes: Mapping[str, Any]) -> Config:
    """``Config.override``: a copy of ``config`` with dotted keys replaced (see there)."""
    label = str(config.source) if config.source is not None else "config"
    document = config.to_document()
    given = [(key, value, _show(value)) for key, value in changes.items()]
    _apply(document, given, "override", os.getcwd(), prefix=f"{label}: ")
    return build(document, Path.cwd(), config.source)


def _parse_set(text: str) -> Change:
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise HarnessError(
            f"--set '{text}': expected KEY=VALUE, e.g. --set bc.accuracy_threshold=0.95"
        )
    _check_key(key, "--set")
    value = parse_yaml(raw, f"--set {key}")
    if takes_text(key) and not isinstance(value, str):
        value = raw  # a path or id is text as typed, even if it looks like 2024 or true
    return key, value, _show(raw)


def flatten(document: dict[str, Any]) -> dict[str, Any]:
    """``{"bc": {"epochs": 30}}`` -> ``{"bc.epochs": 30}``: a config document by dotted key."""
    flat: dict[str, Any] = {}
    for name, value in document.items():
        if isinstance(value, dict):
            flat.update({f"{name}.{k}": v for k, v in value.items()})
        else:
            flat[name] = value
    return flat


def changed_keys(before: Config, after: Config) -> list[str]:
    """Dotted keys whose value differs between two configs (absolute paths compared)."""
    a, b = flatten(before.to_document()), flatten(after.to_document())
    return [key for key in b if a.get(key) != b[key]]


def _refuse_out(out: Path, base: Path) -> None:
    if out.is_dir():
        raise HarnessError(f"{out}: is a folder; give the overlay's file name")
    if os.path.abspath(out) == os.path.abspath(base) or (
        out.exists() and os.path.samefile(out, base)
    ):
        raise HarnessError(f"{out}: is the base config itself; write the overlay to another file")


def overlay(
    base: str | os.PathLike[str],
    out: str | os.PathLike[str],
    sets: Sequence[str] = (),
    dataset: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Config:
    """Write to ``out`` a complete, standalone config derived from ``base``; return it as loaded.

    ``write_overlay``, keeping only the overlay.
    """
    return write_overlay(base, out, sets, dataset, cwd)[1]


def write_overlay(
    base: str | os.PathLike[str],
    out: str | os.PathLike[str],
    sets: Sequence[str] = (),
    dataset: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[Config, Config]:
    """Write to ``out`` a complete, standalone config derived from ``base``; return the base and
    the overlay as loaded, each validated once.

    ``sets`` are ``KEY=VALUE`` strings (``bc.accuracy_threshold=0.95``); VALUE is parsed as YAML,
    except that a key taking text (a path, ``env.id``) keeps the text as typed when YAML would
    make it something else. ``dataset`` is a dataset name or manifest path
    (``harness.datasets.registry.resolve``) and sets ``dataset.manifest`` and
    ``dataset.checksums``, and ``env.id`` and ``env.kwargs`` from its manifest; it is applied
    before ``sets``.

    Paths: a relative path from ``base`` is relative to base's folder; a relative path given in
    ``sets`` is relative to ``cwd`` (default: the working folder), as the user typing it means;
    an absolute path stays absolute. In ``out``, every path that was relative (and those of
    ``dataset``) is written relative to out's folder, so ``out`` points at the same files
    wherever it is written. Everything is validated before anything is written; the write is
    atomic; the bytes are deterministic (no timestamps).
    """
    base, out = Path(base), Path(out)
    here = os.path.abspath(os.getcwd() if cwd is None else cwd)
    # The base first: a broken base is the first thing to report, whatever else is wrong.
    raw = read_yaml(base)
    before = config_from_document(raw, os.path.dirname(os.path.abspath(base)), base)
    changes = [_parse_set(text) for text in sets]
    if dataset is not None and any(key == "dataset.manifest" for key, _, _ in changes):
        raise HarnessError("give either --dataset or --set dataset.manifest, not both")
    _refuse_out(out, base)

    # Which paths of the result are to be written relative to out's folder.
    relative = {
        key: not os.path.isabs(value)
        for key, value in flatten(raw).items()
        if key in path_keys() and isinstance(value, str)
    }
    relative.setdefault("dataset.checksums", relative["dataset.manifest"])
    document = before.to_document()
    if dataset is not None:
        ref = resolve(dataset)
        recorded = load_manifest(ref.manifest)
        document["dataset"] = {
            "manifest": os.path.abspath(ref.manifest),
            "checksums": os.path.abspath(ref.checksums),
        }
        # The dataset brings its environment: training elsewhere would be refused anyway.
        document["env"] = {"id": recorded.env_id, "kwargs": recorded.env_kwargs}
        relative.update({"dataset.manifest": True, "dataset.checksums": True})
    relative.update(_apply(document, changes, "--set", here))

    after = build(document, os.path.dirname(os.path.abspath(out)), out)  # _apply validated it
    for config in (before, after):  # nor any input of the base's dataset or the overlay's
        own = inputs_of(config.dataset.manifest, config.dataset.checksums)
        refuse_overwrite(out, "the overlay", own, also={base: "is the base config"})
    if after.dataset.manifest.is_file():
        # A config that would train in another env than its dataset's is refused by config
        # check and the trainer: not written either.
        problem = env_mismatch(after, load_manifest(after.dataset.manifest))
        if problem:
            raise HarnessError(f"{out}: not written: {problem.partition(': ')[2]}")
    write_text_atomic(out, _overlay_text(base, out, before, after, relative))
    return before, after


def _overlay_text(
    base: Path, out: Path, before: Config, after: Config, relative: dict[str, bool]
) -> str:
    """The overlay file: a header naming the base and the changes, then ``after`` as YAML with
    the ``relative`` keys' paths relative to out's folder."""
    out_dir = os.path.dirname(os.path.abspath(out))
    written = after.to_document()
    for key, is_relative in relative.items():
        if is_relative:
            name, _, sub = key.partition(".")
            written[name][sub] = relative_path(written[name][sub], out_dir)
    flat = flatten(written)
    changed = ", ".join(f"{k}={_show(flat[k])}" for k in changed_keys(before, after)) or "nothing"
    header = (
        f"# Overlay of {_show(str(base))} written by 'harness config overlay'; changed: {changed}\n"
    )
    text = header + dump_yaml(written)
    # Prove the round trip before writing, so that a surprise leaves nothing behind. Plain data
    # suffices: a path written relative resolves against out's folder to the same absolute path.
    reread = parse_yaml(text, str(out))
    if reread != written:
        # Text that YAML reads back as a number (env.id=1e-3) fails as loading out would fail.
        config_from_document(reread, out_dir, out)
        raise HarnessError(f"{out}: the overlay would not read back as built; nothing written")
    return text
