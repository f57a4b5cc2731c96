"""Config YAML: reading it strictly and writing it deterministically.

YAML is read as ``yaml.safe_load`` does with three differences: a repeated key is an error (it
would silently replace the first), ``1e-3`` is a number as in YAML 1.2 (YAML 1.1 reads it as
text), and the document is bounded as it is parsed and before it is built: at most ``MAX_NODES``
values, counting each alias as a full copy (a "billion laughs" of nine levels of nine aliases is
387 million), nested at most ``MAX_DEPTH`` levels (an alias of an enclosing node nests forever).
It is written with keys in the given order and lists in flow style (``[64, 64]``), as people
write configs, so that the same document always gives the same bytes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError
from harness.files import MAX_CONFIG_BYTES
from harness.formatting import clip
from harness.validation import MAX_DEPTH, read_text, too_deep_message

# Values a config may hold once its aliases are expanded: a config has about 40.
MAX_NODES = 10_000


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first = key, line, first


class _TooLarge(yaml.YAMLError):
    pass


def _check_expansion(root: yaml.Node) -> None:
    """Count the values the node graph expands to, each alias as a full copy, stopping at
    ``MAX_NODES``: the walk costs at most that many steps, however the aliases multiply."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise _TooLarge(
                f"its aliases expand it to more than {MAX_NODES:,} values "
                "(a config holds a few dozen)"
            )
        if depth > MAX_DEPTH and isinstance(node, yaml.CollectionNode):
            raise RecursionError
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack += [(key, depth + 1), (value, depth + 1)]


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing repeated keys and documents that aliases expand
    beyond ``MAX_NODES`` values or ``MAX_DEPTH`` levels."""

    composed = 0  # nodes parsed so far, and how deep the current one is
    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        # Bounded as they are parsed: a long flat list or a deep one is refused without
        # parsing all of it (PyYAML scans deep flow collections in quadratic time).
        self.composed += 1
        if self.composed > MAX_NODES:
            raise _TooLarge(f"more than {MAX_NODES:,} values (a config holds a few dozen)")
        if self.depth > MAX_DEPTH:  # a scalar may sit in the deepest collection allowed
            raise RecursionError
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expansion(node)
        return super().construct_document(node)

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
    """Parse YAML text; a syntax error, a repeated key, or a document too long, too large or
    too deep for a config is one ``HarnessError`` line naming ``where`` (and the line and
    column of a syntax error)."""
    if len(text) > MAX_CONFIG_BYTES:  # a file is checked as it is read; this is for --set
        raise HarnessError(
            f"{where}: refused: {len(text):,} characters, more than the {MAX_CONFIG_BYTES:,} "
            "of a config"
        )
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only
    except _DuplicateKey as exc:
        raise HarnessError(
            f"{where}: duplicate key {clip(repr(exc.key))} at line {exc.line} (first at line "
            f"{exc.first}); each key may appear once"
        ) from None
    except _TooLarge as exc:
        raise HarnessError(f"{where}: refused: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise HarnessError(
            f"{where}: not valid YAML: "
            f"{clip(_one_line(exc.problem or exc.context or 'syntax error'))}{at}"
        ) from None
    except yaml.YAMLError as exc:
        raise HarnessError(f"{where}: not valid YAML: {clip(_one_line(exc))}") from None
    except RecursionError:
        raise HarnessError(too_deep_message(where, "YAML")) from None


def read_yaml(path: Path) -> Any:
    """Parse a config file; a missing, unreadable or malformed file is one line naming it."""
    return parse_yaml(read_text(path, "config", "YAML file"), str(path))
