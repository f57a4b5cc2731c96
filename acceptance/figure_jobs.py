"""Where and when the report's figures are drawn: off the rehearsal's critical path.

Importing matplotlib costs about 1.1 s of CPU and drawing the figures of training about 1.2 s
more (docs/acceptance.md, Speed). The rehearsal's critical path is pytest's start, step 2, the
drill, the end; a core is idle while pytest starts (the CLI runs have not begun) and while the
drill runs (the smoke has ended). So:

- a session without ``-n`` starts a *figure helper* (``start_helper``) at once: a spawned
  process (no torch) that imports matplotlib while pytest starts, then draws what it is given;
  the worker gives it the figures of training while it waits for the drill, and the controller
  the wall-clock figure at the end;
- with ``-n``, a worker draws the figures of training in a thread while it waits for the drill
  (a helper per worker would compete with the workers themselves), and the controller imports
  matplotlib in a thread (``warm_up``) while it waits for its workers.

``HARNESS_REHEARSAL_FIGURES=0`` draws nothing: ``benchmarks/bench_rehearsal.py --figures-cost``
measures what the figures add with it. The report then shows none.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from harness.svgfigure import pyplot

FIGURES_ENV = "HARNESS_REHEARSAL_FIGURES"
T = TypeVar("T")
_HELPER: list[ProcessPoolExecutor] = []
_PENDING: list[Future[Any] | threading.Thread] = []


def enabled() -> bool:
    return os.environ.get(FIGURES_ENV, "1") != "0"


def _helper_start(parent: int) -> None:
    from acceptance.cli_runs import die_with_parent

    die_with_parent(parent)  # a killed session leaves no helper behind
    pyplot()


def start_helper() -> None:
    """Start the figure helper now (a session without ``-n``); it imports matplotlib at once."""
    if enabled() and not _HELPER:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch in it
        pool = ProcessPoolExecutor(
            1, mp_context=context, initializer=_helper_start, initargs=(os.getpid(),)
        )
        _PENDING.append(pool.submit(int))  # the pool starts its process on the first job
        _HELPER.append(pool)


def warm_up() -> None:
    """Import matplotlib in a thread of this process (the controller of ``-n`` workers)."""
    if enabled() and not _HELPER:
        thread = threading.Thread(target=pyplot, name="matplotlib-import", daemon=True)
        thread.start()
        _PENDING.append(thread)


def in_background(draw: Callable[..., Any], *args: Any) -> None:
    """Draw in the helper, or in a thread; ``wait`` collects it. A failure is left to the
    controller, which draws every figure that is missing at the end."""
    if not enabled():
        return
    if _HELPER:
        with contextlib.suppress(Exception):  # a broken helper must not fail the step
            _PENDING.append(_HELPER[0].submit(draw, *args))
        return
    thread = threading.Thread(target=_quietly, args=(draw, *args), name="figures", daemon=True)
    thread.start()
    _PENDING.append(thread)


def _quietly(draw: Callable[..., Any], *args: Any) -> None:
    with contextlib.suppress(Exception):
        draw(*args)


def now(draw: Callable[..., T], *args: Any) -> T | None:
    """Draw and wait for it (in the helper if there is one); None when figures are off."""
    if not enabled():
        return None
    wait()
    if _HELPER:
        return _HELPER[0].submit(draw, *args).result()
    return draw(*args)


def wait() -> None:
    """Collect what was drawn in the background, so that no figure is half drawn."""
    while _PENDING:
        job = _PENDING.pop(0)
        if isinstance(job, threading.Thread):
            job.join()
        else:
            with contextlib.suppress(Exception):  # a failed drawing: the controller redraws
                job.result()


def stop() -> None:
    """Wait for the drawing, then let the helper exit."""
    wait()
    while _HELPER:
        _HELPER.pop().shutdown(wait=True)
