"""Load JSON documents and validate them against the project's JSON Schemas.

Messages name the file and the key path of the first offending value, so that a user can fix a
hand-edited manifest without reading a traceback.
"""

from __future__ import annotations

import itertools
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
from harness.files import MAX_CONFIG_BYTES, MAX_JSON_BYTES, MAX_JSONL_BYTES, read_regular
from harness.formatting import MAX_LISTED, and_more, clip

# Far deeper than any document of the project (a manifest nests 5 levels): deeper ones are
# refused before anything recursive (a schema check, a deep copy) walks them.
MAX_DEPTH = 64
MAX_JSON_ITEMS = 4_000_000  # a manifest of 50,000 captures holds about 900,000
MESSAGE_LIMIT = 300  # characters of a schema problem: values are clipped, never echoed whole
SIZE_LIMITS = {
    "JSON file": MAX_JSON_BYTES,
    "JSON Lines file": MAX_JSONL_BYTES,
    "YAML file": MAX_CONFIG_BYTES,
}


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
            parts.append(("." if parts else "") + clip(str(part), 100))
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


def _message(error: ValidationError) -> str:
    """jsonschema's message, with the offending value clipped: it quotes the whole value."""
    message = error.message
    if len(message) <= MESSAGE_LIMIT:
        return message
    whole = repr(error.instance)
    return clip(message.replace(whole, clip(whole, 100)), MESSAGE_LIMIT)


def schema_problems(document: Any, schema: str, checker: Validator | None = None) -> list[str]:
    """Every violation of ``schema`` in ``document``, as ``key: message`` strings, in key order.

    An unexpected key gets a line of its own naming it and the keys allowed there. It comes
    before the other problems of its mapping, because a misspelt key is usually why a required
    one is reported missing. ``checker`` replaces the schema's plain validator (the config's
    fills in defaults as it checks). At most ``MAX_LISTED`` problems are collected: a hostile
    document can hold millions.
    """
    problems: list[tuple[list[str], int, str]] = []
    errors = (checker or validator(schema)).iter_errors(document)
    for error in itertools.islice(errors, MAX_LISTED):
        where = list(error.absolute_path)
        extras = _unknown_keys(error)
        if not extras:
            problems.append((list(map(str, where)), 1, f"{key_path(error)}: {_message(error)}"))
            continue
        allowed = ", ".join(error.schema.get("properties", {})) or "none"
        for key in extras:
            # Always a mapping key, so joined with '.' even when it is an int.
            path = _format_path([*where, str(key)])
            problems.append((list(map(str, where)), 0, f"{path}: unknown key (allowed: {allowed})"))
    problems.sort(key=lambda p: (p[0], p[1]))
    return [line for _, _, line in problems][:MAX_LISTED]


def check(document: Any, schema: str, source: str | Path) -> None:
    """Raise ``SchemaError`` naming ``source`` and the first offending key if ``document`` is invalid."""
    problems = schema_problems(document, schema)
    if problems:
        raise SchemaError(f"{source}: {problems[0]}{and_more(problems)}")


def read_text(path: str | Path, what: str, kind: str, limit: int | None = None) -> str:
    """A text file's content; a missing, non-regular, oversized, unreadable or non-UTF-8 file is
    one line naming it (``what``: "manifest", "config"...; ``kind``: "JSON file", "YAML file",
    "JSON Lines file", whose size limit applies unless ``limit`` is given)."""
    data = read_regular(path, limit or SIZE_LIMITS.get(kind, MAX_JSON_BYTES), what)
    try:
        return data.decode("utf-8-sig")  # a BOM from a Windows editor is not an error
    except UnicodeDecodeError as exc:
        raise HarnessError(
            f"{path}: cannot read {what}: not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (only finite numbers are)")


def too_deep(document: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and mappings nest deeper than ``limit`` in ``document`` (walked level by
    level, without recursion, so a deep document cannot exhaust the stack)."""
    level = [document] if isinstance(document, dict | list) else []
    for _ in range(limit):
        deeper = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            deeper += [c for c in children if isinstance(c, dict | list)]
        if not deeper:
            return False
        level = deeper
    return True


def too_deep_message(where: str | Path, kind: str) -> str:
    return f"{where}: not valid {kind}: lists and mappings nested deeper than {MAX_DEPTH} levels"


def parse_json(text: str, where: str | Path) -> Any:
    """Parse JSON text strictly: a syntax error, a repeated key, NaN or Infinity, more than
    ``MAX_JSON_ITEMS`` commas and brackets or nesting deeper than ``MAX_DEPTH`` is one
    ``HarnessError`` line naming ``where``."""
    # A parsed value costs ~70 bytes, its text as little as 2 ("{},"): its commas and brackets
    # (one per value, give or take) are bounded before parsing.
    items = text.count(",") + text.count("[") + text.count("{")
    if items > MAX_JSON_ITEMS:
        raise HarnessError(
            f"{where}: refused: {items:,} commas and brackets, more than the "
            f"{MAX_JSON_ITEMS:,} a JSON file of the harness may hold"
        )
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise HarnessError(
            f"{where}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except _DuplicateKey as exc:
        raise HarnessError(
            f"{where}: not valid JSON: duplicate key {clip(repr(exc.args[0]))}; "
            "each key may appear once"
        ) from None
    except ValueError as exc:  # NaN, Infinity
        raise HarnessError(f"{where}: not valid JSON: {exc}") from None
    except RecursionError:  # deeper than the stack allows
        raise HarnessError(too_deep_message(where, "JSON")) from None
    if too_deep(document):
        raise HarnessError(too_deep_message(where, "JSON"))
    return document


def load_json(path: str | Path, what: str = "file") -> Any:
    """Parse a JSON file strictly (``parse_json``); a missing, non-regular, oversized or
    malformed file is one line naming it."""
    return parse_json(read_text(path, what, "JSON file"), path)


def load_validated(path: str | Path, schema: str, what: str) -> Any:
    document = load_json(path, what)
    check(document, schema, path)
    return document
