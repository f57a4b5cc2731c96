"""Where and when the report's figures are drawn: off the rehearsal's critical path.

Importing matplotlib and drawing the figures cost about 1.3 s of CPU (docs/acceptance.md, Speed),
on two cores that the rehearsal otherwise keeps busy from the moment its CLI runs start; a core
is idle while pytest starts, before they do, and at the end, while the session writes its files.
So:

- a session without ``-n`` starts the *figure helper* (``acceptance/figure_helper.py``) first
  thing in ``pytest_configure``: a process that imports matplotlib while pytest starts, then
  draws what it is sent. The worker sends it each figure of training as soon as its records are
  in (step 2's once it trained, the smoke's once it ended), not at the end, where it would be
  the last thing the session waits for; the controller sends the wall-clock figure at the end.
  It dies with the session, like the CLI runs;
- with ``-n``, a worker draws the figures of training in a thread, one job after the other (a
  helper per worker would compete with the workers themselves), and the controller imports
  matplotlib in a thread (``warm_up``) while it waits for its workers.

Jobs are ``("training", folder, records)`` and ``("wall_clock", folder, rows, metrics)``:
``acceptance/figures.py``'s functions and their arguments, as JSON.

``HARNESS_REHEARSAL_FIGURES=0`` draws nothing: ``benchmarks/bench_rehearsal.py --figures-cost``
measures what the figures add with it. The report then shows none.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from acceptance.cli_runs import die_with_parent

FIGURES_ENV = "HARNESS_REHEARSAL_FIGURES"
PROJECT = Path(__file__).resolve().parents[1]
_HELPER: list[subprocess.Popen[str]] = []
_ANSWERS_DUE: list[int] = [0]  # jobs sent to the helper whose answer is not read yet
_THREADS: list[threading.Thread] = []


def enabled() -> bool:
    return os.environ.get(FIGURES_ENV, "1") != "0"


def start_helper() -> None:
    """Start the figure helper now (a session without ``-n``); it imports matplotlib at once."""
    if not enabled() or _HELPER:
        return
    parent = os.getpid()
    _HELPER.append(
        subprocess.Popen(
            [sys.executable, "-m", "acceptance.figure_helper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=PROJECT,
            preexec_fn=lambda: die_with_parent(parent),
        )
    )


def warm_up() -> None:
    """Import matplotlib in a thread of this process (the controller of ``-n`` workers)."""
    if enabled() and not _HELPER:
        _start_thread(_import_pyplot)


def _import_pyplot() -> None:
    from harness.svgfigure import pyplot

    pyplot()


def _draw_here(job: str, *args: Any) -> None:
    from acceptance import figures

    draw = figures.draw_training if job == "training" else figures.draw_wall_clock
    draw(*args)


def _start_thread(target: Any, *args: Any) -> None:
    # One drawing at a time: pyplot is not thread-safe, and a job skips the figures an earlier
    # one drew.
    earlier = _THREADS[-1] if _THREADS else None

    def quietly() -> None:
        if earlier is not None:
            earlier.join()
        with contextlib.suppress(Exception):  # a failed drawing: the controller redraws
            target(*args)

    thread = threading.Thread(target=quietly, name="figures", daemon=True)
    thread.start()
    _THREADS.append(thread)


def _send(job: str, *args: Any) -> None:
    helper = _HELPER[0]
    assert helper.stdin is not None
    line = json.dumps({"draw": job, "args": [str(args[0]), *args[1:]]})
    helper.stdin.write(line + "\n")
    helper.stdin.flush()
    _ANSWERS_DUE[0] += 1


def _answer() -> str | None:
    """The next answer of the helper: None when the job was drawn, else why not."""
    helper = _HELPER[0]
    assert helper.stdout is not None
    _ANSWERS_DUE[0] -= 1
    line = helper.stdout.readline()
    if not line:
        return f"the figure helper exited with {helper.wait()}"
    return json.loads(line).get("error")


def in_background(job: str, *args: Any) -> None:
    """Draw in the helper, or in a thread; ``wait`` collects it. A failure is left to the
    controller, which draws every figure that is missing at the end."""
    if not enabled():
        return
    if _HELPER:
        with contextlib.suppress(OSError):  # a dead helper must not fail the step
            _send(job, *args)
        return
    _start_thread(_draw_here, job, *args)


def now(job: str, *args: Any) -> None:
    """Draw and wait for it (in the helper if there is one); a failure raises."""
    if not enabled():
        return
    wait()
    if not _HELPER:
        _draw_here(job, *args)
        return
    _send(job, *args)
    trouble = _answer()
    if trouble:
        raise RuntimeError(trouble)


def wait() -> None:
    """Collect what was drawn in the background, so that no figure is half drawn."""
    while _THREADS:
        _THREADS.pop().join()
    while _HELPER and _ANSWERS_DUE[0] > 0:
        _answer()  # a failed drawing: the controller draws what is missing


def stop() -> None:
    """Wait for the drawing, then end the helper: every figure it answered for is written (a
    session stopped early, by a usage error, need not wait for its import of matplotlib)."""
    wait()
    while _HELPER:
        helper = _HELPER.pop()
        helper.kill()
        helper.wait()
        for stream in (helper.stdin, helper.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
