"""Progress bars on a terminal, silence elsewhere (CI, pytest, pipes)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass


@contextmanager
def progress_bar(
    total: int, desc: str, *, unit: str = "it", enabled: bool = True, **options: Any
) -> Iterator[Any]:
    """A tqdm bar on stderr when stdout is a terminal (someone is watching); a no-op otherwise."""
    if not (enabled and sys.stdout.isatty() and sys.stderr.isatty()):
        yield _Silent()
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr, **options) as bar:
        yield bar


def bytes_bar(total: int, desc: str, enabled: bool = True) -> Any:
    """A byte-counting ``progress_bar`` (KiB, MiB, ...)."""
    return progress_bar(total, desc, unit="B", enabled=enabled, unit_scale=True, unit_divisor=1024)
