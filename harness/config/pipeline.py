"""From a config document to a ``Config``: its problems, its defaults, its paths.

Every path into a ``Config`` (a file, ``config_from_document``, ``Config.override``, an overlay)
goes through ``problems``, once per document: the top level must be a mapping, then the JSON
Schema (``harness/schemas/config.schema.json``) is checked, filling in its defaults as it goes
(jsonschema's documented default-filling validator), then the rules the schema cannot say. A
missing ``dataset.checksums`` is the sheet beside the manifest
(``harness.datasets.registry.sheet_beside``). Relative paths resolve against the config file's
own folder, lexically (``os.path.abspath`` semantics: a symbolic link in the path is kept, not
resolved), so a built ``Config`` holds absolute paths only.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, get_args, get_origin

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.protocols import Validator

from harness.config.keys import KEY_TYPES, SECTION_TYPES, SECTIONS, takes_number
from harness.config.model import Config
from harness.config.yaml_text import read_yaml
from harness.datasets.registry import sheet_beside
from harness.envs import EnvSpec
from harness.errors import HarnessError, SchemaError
from harness.formatting import and_more
from harness.validation import schema_problems, validator

SCHEMA = "config"
MAX_ROLLOUT_FRAMES = 1 << 20  # frames of one PPO rollout, held in memory with their values
_NUMBER_KEYS = [key for key in KEY_TYPES if takes_number(key)]


def _fill_defaults(
    checker: Validator, properties: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    """The ``properties`` keyword, first setting each absent property to its ``default``."""
    if checker.is_type(instance, "object"):
        for name, subschema in properties.items():
            if "default" in subschema:
                # A copy: ppo's default {} is then filled in, and must not fill the schema's.
                instance.setdefault(name, copy.deepcopy(subschema["default"]))
    yield from Draft202012Validator.VALIDATORS["properties"](checker, properties, instance, schema)


@cache
def _filling_validator() -> Validator:
    """The config schema's validator, extended to fill in defaults (jsonschema's FAQ recipe)."""
    filling = validators.extend(Draft202012Validator, {"properties": _fill_defaults})
    return filling(validator(SCHEMA).schema)


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


def problems(document: Any) -> list[str]:
    """Every problem of a config document, as ``key: message`` lines; none if it is valid.

    In order: a top level that is not a mapping (alone), else the schema's problems (an unknown
    key first in its mapping), else the rules the schema cannot say (finite numbers, a rollout of
    at most ``MAX_ROLLOUT_FRAMES``, a minibatch no larger than a rollout). The schema's defaults
    are filled into ``document`` as it is checked, so a valid document comes out complete but
    for ``dataset.checksums``; give a copy to keep the original.
    """
    if not isinstance(document, dict):
        sections = ", ".join(SECTIONS)
        return [
            f"(top level): expected a mapping with the sections {sections}; got {_kind(document)}"
        ]
    # harness.validation words the schema's problems, as for every JSON file.
    return schema_problems(document, SCHEMA, _filling_validator()) or _value_problems(document)


def _value_problems(document: dict[str, Any]) -> list[str]:
    """What the schema cannot say about a complete, schema-valid document."""
    found = []
    for key in _NUMBER_KEYS:
        name, _, sub = key.partition(".")
        value = document[name].get(sub) if sub else document[name]
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                finite = math.isfinite(float(value))
            except OverflowError:
                finite = False
            if not finite:
                # NaN slips through every range check, and inf is no training setting.
                found.append(f"{key}: {value!r} is not a finite number")
    if found:
        return found
    env = document["env"]
    try:
        EnvSpec.of(env["id"], env["kwargs"])  # JSON through and through: no NaN, no odd keys
    except HarnessError as exc:
        return [f"env.kwargs: {str(exc).partition(': ')[2] or exc}"]
    ppo = document["ppo"]
    rollout = ppo["num_envs"] * ppo["num_steps"]
    if rollout > MAX_ROLLOUT_FRAMES:  # each bound alone allows 1024 * 65536
        found.append(
            f"ppo.num_steps: a rollout of ppo.num_envs * ppo.num_steps = {rollout:,} frames is "
            f"more than the maximum of {MAX_ROLLOUT_FRAMES:,}"
        )
    elif ppo["minibatch_size"] > rollout:
        found.append(
            f"ppo.minibatch_size: {ppo['minibatch_size']} is larger than a rollout "
            f"(ppo.num_envs * ppo.num_steps = {rollout} frames)"
        )
    return found


def validated(document: Any, label: str) -> dict[str, Any]:
    """A complete copy of ``document``; its first problem is a ``SchemaError`` after ``label``."""
    complete = copy.deepcopy(document)
    found = problems(complete)
    if found:
        raise SchemaError(f"{label}: {found[0]}{and_more(found)}")
    return complete


def _value(kind: Any, value: Any, base: str) -> Any:
    """A document's value as the field of type ``kind`` holds it; a path made absolute."""
    if kind is Path:
        return Path(os.path.normpath(os.path.join(base, value)))
    if get_origin(kind) is tuple:
        return tuple(int(x) for x in value)
    if float in get_args(kind):  # float | None
        return None if value is None else float(value)
    if get_origin(kind) is dict:
        return dict(value)
    if kind in (int, float, str, bool):
        return kind(value)
    return str(value)  # a Literal: one of a few words


def build(
    document: dict[str, Any],
    base_dir: str | os.PathLike[str],
    source: str | os.PathLike[str] | None = None,
) -> Config:
    """The ``Config`` of a complete document (``validated``'s), paths resolved against
    ``base_dir``; a missing ``dataset.checksums`` is the sheet beside the manifest."""
    base = os.path.abspath(base_dir)
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTION_TYPES}
    for key, kind in KEY_TYPES.items():
        name, _, sub = key.partition(".")
        if not sub:
            top[name] = _value(kind, document[name], base)
        elif sub in document[name]:
            sections[name][sub] = _value(kind, document[name][sub], base)
    dataset = sections["dataset"]
    dataset.setdefault("checksums", sheet_beside(dataset["manifest"]))
    top.update({name: cls(**sections[name]) for name, cls in SECTION_TYPES.items()})
    return Config(**top, source=None if source is None else Path(os.path.abspath(source)))


def config_from_document(
    doc: Any, base_dir: str | os.PathLike[str], source: str | os.PathLike[str] | None = None
) -> Config:
    """Validate a parsed config, fill in the defaults and resolve its paths against ``base_dir``.

    Errors are one ``SchemaError`` line starting with ``source`` (or "config") and the key path.
    """
    label = str(source) if source is not None else "config"
    return build(validated(doc, label), base_dir, source)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, validate and complete a config file; its relative paths resolve against its folder.

    Every problem (missing or unreadable file, YAML syntax, repeated key, a top level that is
    not a mapping, a schema violation) is one ``HarnessError`` line starting with ``path``.
    """
    path = Path(path)
    return config_from_document(read_yaml(path), os.path.dirname(os.path.abspath(path)), path)
