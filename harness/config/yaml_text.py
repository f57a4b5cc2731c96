"""Config YAML: reading it strictly and writing it deterministically.

YAML is read as ``yaml.safe_load`` does with two differences: a repeated key is an error (it would
silently replace the first), and ``1e-3`` is a number as in YAML 1.2 (YAML 1.1 reads it as text).
It is written with keys in the given order and lists in flow style (``[64, 64]``), as people
write configs, so that the same document always gives the same bytes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError
from harness.validation import read_text


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


def read_yaml(path: Path) -> Any:
    """Parse a config file; a missing, unreadable or malformed file is one line naming it."""
    return parse_yaml(read_text(path, "config", "YAML file"), str(path))
