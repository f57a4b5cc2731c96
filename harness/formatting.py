"""How the harness words what it shows and records: UTC timestamps as every record writes them,
paths as a user is shown them, ``(and N more)`` after the first of several problems, so
that an error stays one line, and long values clipped in messages."""

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


# Problems a check lists at most: a hostile document can hold millions, each costing memory.
MAX_LISTED = 1000


def and_more(problems: list[Any]) -> str:
    """`` (and N more)`` after the first of several problems, so an error stays one line;
    ``at least`` when the list was cut at ``MAX_LISTED``."""
    if len(problems) <= 1:
        return ""
    return f" (and {'at least ' if len(problems) >= MAX_LISTED else ''}{len(problems) - 1} more)"


def clip(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters with the count of those left out, so that no error
    echoes a whole hostile value (a 1 MB string, a 10,000-item list), and with line breaks and
    other control characters escaped, so that it stays on one line."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"
