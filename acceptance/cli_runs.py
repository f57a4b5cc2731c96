"""Training runs of ``scripts/run_training.py`` as real subprocesses, started in the background.

Each CLI run costs seconds, most of it importing torch, so the rehearsal starts a run as soon as
its inputs are ready and lets its step wait for it: the anneal smoke trains while the BC step
trains in-process. The run's stdout and stderr go to files in its run folder (never a pipe that
could fill up), so they stay in the bundle for whoever reads a failure.

A run dies with the process that started it, however that process ends (SIGKILL included): on
Linux the kernel sends it SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``), and a
pytest-xdist worker asks the same of itself (``acceptance/plugin.py``), so a killed session
never leaves a run writing into the bundle that the next session rewrites.

``--launcher=torchrun`` starts the runs through torchrun (``python -m torch.distributed.run
--standalone``), data-parallel over ``--nproc-per-node`` processes (docs/distributed.md).
torchrun itself exits 1 whenever a worker exits non-zero; the job's exit code is its ranks'
(they agree on it), which torchrun's failure summary reports as its root cause's exitcode.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 600.0  # far above any rehearsal run; a hung run fails its step instead of the session


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """Make this process die (SIGKILL) when its parent ``parent`` dies, however it dies.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere nothing. Called in a child between
    fork and exec (``preexec_fn``), and by a pytest-xdist worker on itself.
    """
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


LAUNCHERS = ("python", "torchrun")
# torchrun's failure summary (ChildFailedError): "Root Cause (first observed failure):" then
# the failed rank's "exitcode  : 3 (pid: ...)".
_ROOT_CAUSE = re.compile(r"Root Cause[^\n]*\n(?:.*\n)*?\s*exitcode\s*:\s*(-?\d+)")


def launch_argv(launcher: str, nproc_per_node: int) -> list[str]:
    """The start of a training command: this interpreter, or torchrun on one host."""
    if launcher == "python":
        return [sys.executable]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc_per_node}",
    ]


def job_exit_code(returncode: int, stderr: str) -> int:
    """A torchrun job's exit code: 0, or the exit code its failure summary gives its root
    cause (every rank exits with the same one); torchrun's own code if it reports none."""
    if returncode == 0:
        return 0
    found = _ROOT_CAUSE.search(stderr)
    return int(found.group(1)) if found else returncode


def _child_setup() -> Callable[[], None]:
    parent = os.getpid()
    return lambda: die_with_parent(parent)


@dataclass(frozen=True)
class CLIResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    """Wall-clock of the subprocess, from start to exit."""

    @property
    def command(self) -> str:
        return " ".join(self.argv)


class CLIRun:
    """One subprocess; ``wait()`` returns its ``CLIResult`` (the same one on every call)."""

    def __init__(self, argv: list[str], folder: Path, cwd: Path, torchrun: bool = False) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.argv = argv
        self.torchrun = torchrun
        self.stdout_path = folder / "cli_stdout.txt"
        self.stderr_path = folder / "cli_stderr.txt"
        self._started = time.perf_counter()
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self._process = subprocess.Popen(
                argv, stdout=out, stderr=err, cwd=cwd, preexec_fn=_child_setup()
            )
        self._result: CLIResult | None = None

    def wait(self, timeout: float = TIMEOUT_S) -> CLIResult:
        if self._result is None:
            try:
                code = self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"{self.argv[1]} did not finish within {timeout:.0f} s and was killed: "
                    + " ".join(self.argv)
                ) from None
            stderr = self.stderr_path.read_text("utf-8", errors="replace")
            self._result = CLIResult(
                self.argv,
                job_exit_code(code, stderr) if self.torchrun else code,
                self.stdout_path.read_text("utf-8", errors="replace"),
                stderr,
                time.perf_counter() - self._started,
            )
        return self._result

    def kill(self) -> None:
        """Stop the subprocess if it still runs (a step that never awaited it, an interrupt)."""
        if self._process.poll() is None:
            self._process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(10)
