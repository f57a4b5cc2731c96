"""Load JSON documents and validate them against the project's JSON Schemas.

Messages name the file and the key path of the first offending value, so that a user can fix a
hand-edited manifest without reading a traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from harness.errors import HarnessError, SchemaError
from harness.formatting import and_more


@cache
def validator(name: str) -> Draft202012Validator:
    """The validator of ``harness/schemas/<name>.schema.json``."""
    text = resources.files("harness.schemas").joinpath(f"{name}.schema.json").read_text("utf-8")
    # The schemas are checked against the metaschema by the tests (tests/test_schemas.py), not
    # here: that check costs tenths of a second in every process, CLI runs included
    # (scripts/docs_figures.py --section startup).
    return Draft202012Validator(json.loads(text))


def key_path(error: ValidationError) -> str:
    """``entries[2].status`` style path of a validation error ("(top level)" for the root)."""
    return _format_path(error.absolute_path)


def _format_path(path: Iterable[Any]) -> str:
    parts: list[str] = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(top level)"


def _unknown_keys(error: ValidationError) -> list[Any]:
    """The keys an ``additionalProperties: false`` error is about (none for other errors)."""
    if error.validator != "additionalProperties" or error.validator_value is not False:
        return []
    if not isinstance(error.instance, dict) or not isinstance(error.schema, dict):
        return []
    known = error.schema.get("properties", {})
    patterns = error.schema.get("patternProperties", {})
    return [
        key
        for key in error.instance
        if key not in known
        and not (isinstance(key, str) and any(re.search(p, key) for p in patterns))
    ]


def schema_problems(document: Any, schema: str, checker: Validator | None = None) -> list[str]:
    """Every violation of ``schema`` in ``document``, as ``key: message`` strings, in key order.

    An unexpected key gets a line of its own naming it and the keys allowed there. It comes
    before the other problems of its mapping, because a misspelt key is usually why a required
    one is reported missing. ``checker`` replaces the schema's plain validator (the config's
    fills in defaults as it checks).
    """
    problems: list[tuple[list[str], int, str]] = []
    for error in (checker or validator(schema)).iter_errors(document):
        where = list(error.absolute_path)
        extras = _unknown_keys(error)
        if not extras:
            problems.append((list(map(str, where)), 1, f"{key_path(error)}: {error.message}"))
            continue
        allowed = ", ".join(error.schema.get("properties", {})) or "none"
        for key in extras:
            # Always a mapping key, so joined with '.' even when it is an int.
            path = f"{_format_path(where)}.{key}" if where else str(key)
            problems.append((list(map(str, where)), 0, f"{path}: unknown key (allowed: {allowed})"))
    problems.sort(key=lambda p: (p[0], p[1]))
    return [line for _, _, line in problems]


def check(document: Any, schema: str, source: str | Path) -> None:
    """Raise ``SchemaError`` naming ``source`` and the first offending key if ``document`` is invalid."""
    problems = schema_problems(document, schema)
    if problems:
        raise SchemaError(f"{source}: {problems[0]}{and_more(problems)}")


def read_text(path: str | Path, what: str, kind: str) -> str:
    """A text file's content; a missing, folder, unreadable or non-UTF-8 file is one line
    naming it (``what``: "manifest", "config"...; ``kind``: "JSON file", "YAML file")."""
    path = Path(path)
    try:
        return path.read_text("utf-8-sig")  # a BOM from a Windows editor is not an error
    except FileNotFoundError:
        raise HarnessError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise HarnessError(f"{path}: is a folder, expected a {what} ({kind})") from None
    except UnicodeDecodeError as exc:
        raise HarnessError(
            f"{path}: cannot read {what}: not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None
    except OSError as exc:
        raise HarnessError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None


def load_json(path: str | Path, what: str = "file") -> Any:
    """Parse a JSON file, turning missing files and syntax errors into one-line errors."""
    text = read_text(path, what, "JSON file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise HarnessError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def load_validated(path: str | Path, schema: str, what: str) -> Any:
    document = load_json(path, what)
    check(document, schema, path)
    return document
