"""The training config: a YAML file read into a validated, complete, frozen ``Config``; overlays.

A config file (``configs/examples/poc_hybrid.yaml``) is checked against
``harness/schemas/config.schema.json``; optional keys take the schema's ``default``. Relative
paths resolve against the config file's own folder, lexically (``os.path.abspath`` semantics: a
symbolic link in the path is kept, not resolved), so a loaded ``Config`` holds absolute paths only.

An overlay is a config derived from a base with a few keys changed, written as a complete,
standalone file. Its relative paths are rewritten relative to its own folder, so it points at the
same files wherever it is written (``overlay``, ``harness config overlay``).

YAML is read as ``yaml.safe_load`` does with two differences: a repeated key is an error (it would
silently replace the first), and ``1e-3`` is a number as in YAML 1.2 (YAML 1.1 reads it as text).

This module must not import torch: the CLI checks configs without paying for it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from harness.atomic import write_text_atomic
from harness.errors import HarnessError, SchemaError
from harness.formatting import and_more
from harness.validation import check, read_text, schema_problems, validator

SCHEMA = "config"

# --- the dataclasses -----------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetConfig:
    """Which dataset to train on."""

    manifest: Path
    """the dataset's manifest; only its accepted captures are used"""
    checksums: Path
    """the checksum sheet the accepted captures must match before training starts"""


@dataclass(frozen=True)
class EnvConfig:
    """The environment of the captures and of PPO's rollouts."""

    id: str
    """Gymnasium environment id, e.g. CartPole-v1"""


@dataclass(frozen=True)
class BCConfig:
    """Behaviour cloning and its accuracy gate."""

    epochs: int
    """passes over the training frames"""
    batch_size: int
    """frames per optimiser step"""
    lr: float
    """Adam learning rate"""
    holdout: float
    """fraction of episodes held out for the gate (split by episode, never by frame)"""
    hidden_sizes: tuple[int, ...]
    """widths of the policy network's hidden layers"""
    accuracy_threshold: float
    """the gate: holdout accuracy below this rolls the run back"""


@dataclass(frozen=True)
class PPOConfig:
    """PPO fine-tuning from the promoted BC weights."""

    epochs: int
    """PPO epochs; one epoch is one rollout collection and its update"""
    num_envs: int
    """environments stepped in parallel"""
    num_steps: int
    """steps per environment per rollout"""
    update_epochs: int
    """passes over each rollout"""
    minibatch_size: int
    """frames per optimiser step (at most num_envs * num_steps)"""
    lr: float
    """Adam learning rate"""
    gamma: float
    """discount factor"""
    gae_lambda: float
    """lambda of generalised advantage estimation"""
    clip_coef: float
    """surrogate clipping coefficient"""
    ent_coef: float
    """weight of the entropy bonus"""
    vf_coef: float
    """weight of the value loss"""
    max_grad_norm: float
    """gradient clipping norm"""
    target_kl: float | None
    """stop an update early above this approximate KL; None never stops"""
    hidden_sizes: tuple[int, ...]
    """widths of the hidden layers of the value network"""


@dataclass(frozen=True)
class AnnealConfig:
    """How the BC loss is annealed away during PPO, and the regression guard."""

    bc_coef_start: float
    """weight of the BC loss at the first PPO update; annealed to 0 by the last"""
    schedule: str
    """shape of the annealing: linear or exponential"""
    regression_tolerance: float
    """mean-return units the fine-tuned policy may lose against BC (negative forces a failure)"""
    eval_episodes: int
    """episodes per evaluation of a policy's mean return"""


@dataclass(frozen=True)
class OutputConfig:
    """Where a run writes."""

    log_dir: Path
    """run logs (anneal_results.json) and set-aside checkpoints"""
    checkpoint_dir: Path
    """the checkpoint store, with its promoted checkpoint"""


@dataclass(frozen=True)
class Config:
    """A complete, validated training config; every path in it is absolute."""

    seed: int
    """seeds the holdout split, network initialisation, shuffling and the environments"""
    dataset: DatasetConfig
    env: EnvConfig
    bc: BCConfig
    ppo: PPOConfig
    anneal: AnnealConfig
    output: OutputConfig
    source: Path | None = field(default=None, compare=False)
    """the file it was loaded from (absolute), if any; not part of equality or the hash"""

    def to_document(self, relative_to: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The complete config as plain data, in the base file's key order, defaults included.

        Paths are absolute, or relative to the folder ``relative_to`` if given.
        """
        start = None if relative_to is None else os.path.abspath(relative_to)
        document: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "source":
                continue
            value = getattr(self, f.name)
            if hasattr(value, "__dataclass_fields__"):
                document[f.name] = {
                    g.name: _plain(getattr(value, g.name), start) for g in fields(value)
                }
            else:
                document[f.name] = _plain(value, start)
        return document

    def to_yaml(self, relative_to: str | os.PathLike[str] | None = None) -> str:
        """``to_document`` as YAML text, as overlays and ``harness config check`` write it."""
        return dump_yaml(self.to_document(relative_to))

    def hash(self) -> str:
        """sha256 (hex) of the training recipe: the canonical JSON of ``to_document()`` (sorted
        keys, compact, absolute paths) without the ``output`` section.

        Where a run writes does not change what it trains, so two configs that differ only in
        their output folders have the same hash; any other change (seed, threshold, dataset
        path) gives another.
        """
        document = self.to_document()
        del document["output"]
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def override(self, changes: Mapping[str, Any]) -> Config:
        """A copy with dotted keys replaced, validated like a config file.

        ``config.override({"seed": 3, "bc.epochs": 5, "output.log_dir": Path("runs/x")})``.
        Paths may be ``str`` or ``Path``; a relative one resolves against the working folder,
        as a user typing ``--log-dir runs/x`` means. Replacing ``dataset.manifest`` without
        ``dataset.checksums`` points the checksums at that manifest's conventional sheet. An
        unknown key or a bad value is a ``SchemaError`` naming the key.
        """
        label = str(self.source) if self.source is not None else "config"
        document = self.to_document()
        given = [(key, value, _show(value)) for key, value in changes.items()]
        _apply(document, given, "override", os.getcwd(), prefix=f"{label}: ")
        return config_from_document(document, Path.cwd(), self.source)


def _plain(value: Any, start: str | None) -> Any:
    if isinstance(value, Path):
        return str(value) if start is None else _relative(str(value), start)
    if isinstance(value, tuple):
        return list(value)
    return value


def _relative(path: str, start: str) -> str:
    try:
        return os.path.relpath(path, start)
    except ValueError:  # another drive (Windows): no relative path exists
        return path


# --- the schema as data: keys, defaults, path keys ------------------------------------------


@cache
def _leaves() -> dict[str, dict[str, Any]]:
    """Dotted key -> its schema (``$ref`` merged in, kept for inspection), in schema order."""
    root = validator(SCHEMA).schema
    defs = root.get("$defs", {})

    def deref(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        return node if ref is None else {**defs[ref.rsplit("/", 1)[-1]], **node}

    leaves: dict[str, dict[str, Any]] = {}
    for name, node in root["properties"].items():
        node = deref(node)
        if node.get("type") == "object":
            for key, sub in node["properties"].items():
                leaves[f"{name}.{key}"] = deref(sub)
        else:
            leaves[name] = node
    return leaves


@cache
def _sections() -> dict[str, list[str]]:
    """Top-level key -> its keys (an empty list for a top-level value such as ``seed``)."""
    sections: dict[str, list[str]] = {}
    for key in _leaves():
        name, _, sub = key.partition(".")
        sections.setdefault(name, [])
        if sub:
            sections[name].append(sub)
    return sections


def path_keys() -> list[str]:
    """The keys that hold a path (``dataset.manifest``, ``output.log_dir``, ...)."""
    return [k for k, s in _leaves().items() if s.get("$ref") == "#/$defs/path"]


def known_keys() -> list[str]:
    """Every dotted key a config can hold, in the base file's order."""
    return list(_leaves())


def _takes_text(key: str) -> bool:
    return _leaves()[key].get("type") == "string"


def _complete(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (valid) with every optional key but ``dataset.checksums`` filled in."""
    full: dict[str, Any] = {}
    for name, keys in _sections().items():
        if not keys:
            full[name] = document[name]
            continue
        given = document.get(name, {})
        full[name] = {}
        for key in keys:
            leaf = _leaves()[f"{name}.{key}"]
            if key in given:
                full[name][key] = given[key]
            elif "default" in leaf:
                full[name][key] = copy.deepcopy(leaf["default"])
    return full


# --- YAML ----------------------------------------------------------------------------------


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first = key, line, first


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing repeated keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<: *base' merges are allowed to be overridden
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable; the base class reports it with its position
            line = key_node.start_mark.line + 1
            if first is not None:
                raise _DuplicateKey(key, line, first)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 needs a dot in a float ("1.0e-3"); people write 1e-3 and mean a number.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class _Dumper(yaml.SafeDumper):
    """``yaml.safe_dump``'s dumper writing lists in flow style (``[64, 64]``), as people do."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, True)
)


def dump_yaml(document: Any) -> str:
    """YAML text of plain data: keys in the given order, deterministic, UTF-8 friendly."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text; a syntax error or repeated key is one ``HarnessError`` line naming
    ``where`` and the line and column."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only
    except _DuplicateKey as exc:
        raise HarnessError(
            f"{where}: duplicate key {exc.key!r} at line {exc.line} (first at line {exc.first}); "
            "each key may appear once"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise HarnessError(
            f"{where}: not valid YAML: {_one_line(exc.problem or exc.context or 'syntax error')}{at}"
        ) from None
    except yaml.YAMLError as exc:
        raise HarnessError(f"{where}: not valid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise HarnessError(f"{where}: not valid YAML: nested too deeply") from None


def _read_yaml(path: Path) -> Any:
    text = read_text(path, "config", "YAML file")
    return parse_yaml(text, str(path))


# --- validation ----------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "an empty document"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def _top_level_problem(document: Any) -> str | None:
    if isinstance(document, dict):
        return None
    return (
        f"(top level): expected a mapping with the sections {', '.join(_sections())}; "
        f"got {_kind(document)}"
    )


def _value_problems(document: dict[str, Any]) -> list[str]:
    """What the schema cannot say about a schema-valid document, as ``key: message`` lines."""
    problems = []
    for key, leaf in _leaves().items():
        name, _, sub = key.partition(".")
        value = document.get(name, {}).get(sub) if sub else document.get(name)
        types = leaf.get("type", [])
        number = "number" in (types if isinstance(types, list) else [types])
        if number and isinstance(value, int | float) and not isinstance(value, bool):
            try:
                finite = math.isfinite(float(value))
            except OverflowError:
                finite = False
            if not finite:
                # NaN slips through every range check, and inf is no training setting.
                problems.append(f"{key}: {value!r} is not a finite number")
    if problems:
        return problems
    ppo = _complete(document)["ppo"]
    rollout = ppo["num_envs"] * ppo["num_steps"]
    if ppo["minibatch_size"] > rollout:
        problems.append(
            f"ppo.minibatch_size: {ppo['minibatch_size']} is larger than a rollout "
            f"(ppo.num_envs * ppo.num_steps = {rollout} frames)"
        )
    return problems


def _problems(document: Any) -> list[str]:
    """Every problem of ``document`` as ``key: message`` lines, schema problems first."""
    top = _top_level_problem(document)
    if top:
        return [top]
    return schema_problems(document, SCHEMA) or _value_problems(document)


def _validate(document: Any, label: str) -> None:
    top = _top_level_problem(document)
    if top:
        raise SchemaError(f"{label}: {top}")
    check(document, SCHEMA, label)
    problems = _value_problems(document)
    if problems:
        raise SchemaError(f"{label}: {problems[0]}{and_more(problems)}")


# --- loading -------------------------------------------------------------------------------

_COERCE: dict[str, Callable[[Any], Any]] = {
    "int": int,
    "float": float,
    "str": str,
    "tuple[int, ...]": lambda v: tuple(int(x) for x in v),
    "float | None": lambda v: None if v is None else float(v),
}


def _section(cls: type[Any], values: dict[str, Any], base_dir: str) -> Any:
    kwargs = {}
    for f in fields(cls):
        value = values[f.name]
        if f.type == "Path":
            kwargs[f.name] = Path(os.path.normpath(os.path.join(base_dir, value)))
        else:
            kwargs[f.name] = _COERCE[str(f.type)](value)
    return cls(**kwargs)


def config_from_document(
    doc: Any, base_dir: str | os.PathLike[str], source: str | os.PathLike[str] | None = None
) -> Config:
    """Validate a parsed config, fill in the defaults and resolve its paths against ``base_dir``.

    Errors are one ``SchemaError`` line starting with ``source`` (or "config") and the key path.
    """
    _validate(doc, str(source) if source is not None else "config")
    base = os.path.abspath(base_dir)
    full = _complete(doc)
    if "checksums" not in full["dataset"]:
        manifest = Path(os.path.normpath(os.path.join(base, full["dataset"]["manifest"])))
        full["dataset"]["checksums"] = str(_sheet_beside(manifest))
    return Config(
        seed=int(full["seed"]),
        dataset=_section(DatasetConfig, full["dataset"], base),
        env=_section(EnvConfig, full["env"], base),
        bc=_section(BCConfig, full["bc"], base),
        ppo=_section(PPOConfig, full["ppo"], base),
        anneal=_section(AnnealConfig, full["anneal"], base),
        output=_section(OutputConfig, full["output"], base),
        source=None if source is None else Path(os.path.abspath(source)),
    )


def _sheet_beside(manifest: Path) -> Path:
    from harness.datasets.registry import sheet_beside

    return sheet_beside(manifest)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, validate and complete a config file; its relative paths resolve against its folder.

    Every problem (missing or unreadable file, YAML syntax, repeated key, a top level that is
    not a mapping, a schema violation) is one ``HarnessError`` line starting with ``path``.
    """
    path = Path(path)
    document = _read_yaml(path)
    return config_from_document(document, os.path.dirname(os.path.abspath(path)), path)


# --- changes: override and overlay ---------------------------------------------------------


def _show(value: Any) -> str:
    """A value as a user would type it on one line."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    # A line break would end a YAML comment and corrupt an overlay's header.
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _check_key(key: str, origin: str, prefix: str = "") -> None:
    if key in _leaves():
        return
    name, _, sub = key.partition(".")
    sections = _sections()
    if name in sections and sections[name] and not sub:
        why = f"'{key}' in {origin} is a section; set one of its keys ({', '.join(sections[name])})"
    elif name in sections and not sections[name]:
        why = f"unknown key '{key}' in {origin} ('{name}' is a value, not a section)"
    elif name in sections:
        why = f"unknown key '{key}' in {origin} (known keys of {name}: {', '.join(sections[name])})"
    else:
        why = f"unknown key '{key}' in {origin} (known keys: {', '.join(sections)})"
    raise SchemaError(prefix + why)


def _apply(
    document: dict[str, Any],
    changes: Sequence[tuple[str, Any, str]],
    origin: str,
    cwd: str,
    prefix: str = "",
) -> dict[str, bool]:
    """Apply ``(key, value, shown)`` changes to a complete document with absolute paths.

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
        if key in path_keys() and isinstance(value, str) and value:
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
            document["dataset"]["checksums"] = str(_sheet_beside(Path(manifest)))
            relative["dataset.checksums"] = relative.get("dataset.manifest", False)

    problems = _problems(document)
    if problems:
        shown = {key: text for key, _, text in changes}
        first, more = problems[0], and_more(problems)
        key, _, message = first.partition(": ")
        if key in shown:
            raise SchemaError(f"{prefix}{origin} {key}={shown[key]}: {message}{more}")
        together = ", ".join(f"{k}={v}" for k, v in shown.items())
        raise SchemaError(f"{prefix}{origin} {together}: {first}{more}")
    return relative


def _parse_set(text: str) -> tuple[str, Any, str]:
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise HarnessError(
            f"--set '{text}': expected KEY=VALUE, e.g. --set bc.accuracy_threshold=0.95"
        )
    _check_key(key, "--set")
    value = parse_yaml(raw, f"--set {key}")
    if _takes_text(key) and not isinstance(value, str):
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


def overlay(
    base: str | os.PathLike[str],
    out: str | os.PathLike[str],
    sets: Sequence[str] = (),
    dataset: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Config:
    """Write to ``out`` a complete, standalone config derived from ``base``; return it loaded.

    ``sets`` are ``KEY=VALUE`` strings (``bc.accuracy_threshold=0.95``); VALUE is parsed as YAML,
    except that a key taking text (a path, ``env.id``) keeps the text as typed when YAML would
    make it something else. ``dataset`` is a dataset name or manifest path
    (``harness.datasets.registry.resolve``) and sets ``dataset.manifest`` and
    ``dataset.checksums``; it is applied before ``sets``.

    Paths: a relative path from ``base`` is relative to base's folder; a relative path given in
    ``sets`` is relative to ``cwd`` (default: the working folder), as the user typing it means;
    an absolute path stays absolute. In ``out``, every path that was relative (and those of
    ``dataset``) is written relative to out's folder, so ``out`` points at the same files
    wherever it is written. Everything is validated before anything is written; the write is
    atomic; the bytes are deterministic (no timestamps).
    """
    base, out = Path(base), Path(out)
    here = os.path.abspath(os.getcwd() if cwd is None else cwd)
    changes = [_parse_set(text) for text in sets]
    if dataset is not None and any(key == "dataset.manifest" for key, _, _ in changes):
        raise HarnessError("give either --dataset or --set dataset.manifest, not both")

    raw = _read_yaml(base)
    before = config_from_document(raw, os.path.dirname(os.path.abspath(base)), base)
    if out.is_dir():
        raise HarnessError(f"{out}: is a folder; give the overlay's file name")
    if os.path.abspath(out) == os.path.abspath(base) or (
        out.exists() and os.path.samefile(out, base)
    ):
        raise HarnessError(f"{out}: is the base config itself; write the overlay to another file")

    # Which paths of the result are to be written relative to out's folder.
    relative = {
        key: not os.path.isabs(value)
        for key, value in flatten(raw).items()
        if key in path_keys() and isinstance(value, str)
    }
    relative.setdefault("dataset.checksums", relative["dataset.manifest"])
    document = before.to_document()
    if dataset is not None:
        from harness.datasets.registry import resolve

        ref = resolve(dataset)
        document["dataset"] = {
            "manifest": os.path.abspath(ref.manifest),
            "checksums": os.path.abspath(ref.checksums),
        }
        relative.update({"dataset.manifest": True, "dataset.checksums": True})
    relative.update(_apply(document, changes, "--set", here))

    out_dir = os.path.dirname(os.path.abspath(out))
    after = config_from_document(document, out_dir, out)
    written = after.to_document()
    for key, is_relative in relative.items():
        if is_relative:
            name, _, sub = key.partition(".")
            written[name][sub] = _relative(written[name][sub], out_dir)
    flat = flatten(written)
    changed = ", ".join(f"{k}={_show(flat[k])}" for k in changed_keys(before, after)) or "nothing"
    header = (
        f"# Overlay of {_show(str(base))} written by 'harness config overlay'; changed: {changed}\n"
    )
    text = header + dump_yaml(written)
    # Prove the round trip before writing, so that a surprise leaves nothing behind.
    if config_from_document(parse_yaml(text, str(out)), out_dir, out) != after:
        raise HarnessError(f"{out}: the overlay would not read back as built; nothing written")
    write_text_atomic(out, text)
    return load_config(out)
