"""Progress bars on a terminal, silence elsewhere (CI, pytest, pipes)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _Silent:
    def update(self, n: int = 1) -> None:
        pass


@contextmanager
def bytes_bar(total: int, desc: str, enabled: bool = True) -> Iterator[Any]:
    """A byte-counting bar on stderr when it is a terminal; a no-op object otherwise."""
    if not (enabled and sys.stderr.isatty()):
        yield _Silent()
        return
    from tqdm import tqdm

    with tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        leave=False,
        file=sys.stderr,
    ) as bar:
        yield bar
