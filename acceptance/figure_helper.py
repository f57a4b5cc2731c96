"""The figure helper: ``python -m acceptance.figure_helper``, started by a rehearsal session
without ``-n`` (``acceptance/figure_jobs.py``).

It imports matplotlib at once, while pytest starts and a core is idle, then draws what it is
sent on stdin, one JSON job per line (``{"draw": "training" | "wall_clock", "args": [...]}``),
and answers each with one JSON line on stdout: ``{"ok": true}`` or ``{"error": "..."}``. It
imports nothing else of the harness (no torch, no jsonschema), so it starts in about the time
matplotlib takes. It exits when stdin closes; a session ends it once every answer is in.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from acceptance import figures
from harness.svgfigure import pyplot


def _draw(job: dict[str, Any]) -> None:
    folder, *rest = job["args"]
    if job["draw"] == "training":
        figures.draw_training(Path(folder), *rest)
    elif job["draw"] == "wall_clock":
        figures.draw_wall_clock(Path(folder), *rest)
    else:
        raise ValueError(f"no such figure job: {job['draw']!r}")


def serve() -> None:
    pyplot()  # the import this helper exists to do early
    for line in sys.stdin:
        try:
            _draw(json.loads(line))
            answer: dict[str, Any] = {"ok": True}
        except Exception as exc:  # answered, not raised: the session decides what it means
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    # Every figure is written and answered: skip the interpreter's teardown of matplotlib's
    # objects (0.16-0.21 s) for whoever waits for this exit (a session does not: it kills).
    os._exit(0)


if __name__ == "__main__":
    serve()
