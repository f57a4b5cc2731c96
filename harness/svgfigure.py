"""Byte-identical SVG figures from matplotlib: the same data give the same file.

matplotlib writes a date and random element ids into an SVG unless told not to; both would make
two renders of one run differ, and the bundle's checksums and ``git diff`` would flag a figure
that did not change. matplotlib is imported here, lazily, only by code that draws.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from harness.atomic import write_bytes_atomic

# Fixed salt for the ids matplotlib gives clip paths and glyphs; any constant would do.
HASH_SALT = "harness"


def pyplot() -> Any:
    """matplotlib's pyplot on the non-interactive SVG backend, with deterministic ids."""
    import matplotlib

    matplotlib.use("svg", force=True)
    matplotlib.rcParams["svg.hashsalt"] = HASH_SALT
    matplotlib.rcParams["svg.fonttype"] = "path"  # no dependence on the viewer's fonts
    import matplotlib.pyplot as plt

    return plt


def save_svg(fig: Any, path: Path, tight: bool = True) -> None:
    """Write ``fig`` to ``path`` (atomically) as SVG without date metadata, then close it.

    ``tight`` crops the page to what is drawn, at the price of drawing the figure twice (once
    to measure it); a figure already laid out by ``tight_layout`` fits its page without it."""
    plt = pyplot()
    buffer = io.BytesIO()
    bbox = {"bbox_inches": "tight"} if tight else {}
    try:
        fig.savefig(buffer, format="svg", metadata={"Date": None}, **bbox)
    finally:
        plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())
