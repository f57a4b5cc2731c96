"""How the harness words what it shows and records: UTC timestamps as every record writes them,
paths as a user is shown them, and ``(and N more)`` after the first of several problems, so
that an error stays one line."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def utc_now() -> str:
    """UTC now as ISO 8601 to the second (``2026-11-28T02:10:00Z``), as every record writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def display(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the working folder when it lies below it, else absolute."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def and_more(problems: list[Any]) -> str:
    """`` (and N more)`` after the first of several problems, so an error stays one line."""
    return f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
