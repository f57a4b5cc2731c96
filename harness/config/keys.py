"""The config's dotted keys (``seed``, ``bc.epochs``, ``output.log_dir``), derived from model.py.

The dataclasses are the one declaration of which keys exist, in which order, with which Python
type; every table here is read off them, so a key added there is known everywhere (``--set``,
``override``, path rebasing, the unknown-key messages). ``tests/test_config.py`` holds the JSON
Schema's sections, keys, types, path keys and required keys equal to these tables.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_type_hints

from harness.config.model import Config


def _declared() -> tuple[dict[str, Any], dict[str, type[Any]]]:
    """Dotted key -> its field's type, and section name -> its dataclass, in Config's order."""
    key_types: dict[str, Any] = {}
    section_types: dict[str, type[Any]] = {}
    hints = get_type_hints(Config)
    for f in fields(Config):
        if f.name == "source":
            continue  # where a Config came from, not a key of its file
        hint = hints[f.name]
        if is_dataclass(hint):
            section_types[f.name] = hint
            key_types.update({f"{f.name}.{k}": t for k, t in get_type_hints(hint).items()})
        else:
            key_types[f.name] = hint
    return key_types, section_types


KEY_TYPES, SECTION_TYPES = _declared()
"""Dotted key -> its Python type; section -> its dataclass (``seed`` is a value, not a section)."""

SECTIONS: dict[str, list[str]] = {
    name: [key.partition(".")[2] for key in KEY_TYPES if key.startswith(f"{name}.")]
    for name in dict.fromkeys(key.partition(".")[0] for key in KEY_TYPES)
}
"""Top-level key -> the keys of its section (an empty list for a value such as ``seed``)."""


def known_keys() -> list[str]:
    """Every dotted key a config can hold, in the base file's order."""
    return list(KEY_TYPES)


def path_keys() -> list[str]:
    """The keys that hold a path (``dataset.manifest``, ``output.log_dir``, ...)."""
    return [key for key, kind in KEY_TYPES.items() if kind is Path]


def takes_text(key: str) -> bool:
    """Whether any text is a value of ``key`` (a path, ``env.id``), not only a few words."""
    return KEY_TYPES[key] in (str, Path)


def takes_number(key: str) -> bool:
    """Whether ``key`` holds a real number (``float``, or ``float | None``)."""
    kind = KEY_TYPES[key]
    return kind is float or float in get_args(kind)
