"""The team of the slow pipeline tests: runs commands in its own folder as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


class Team:
    """Runs commands in the team's folder (``HARNESS_ROOT``), its own packages, if any, on the
    import path."""

    def __init__(self, folder: Path, package_path: Path | None = None) -> None:
        self.folder = folder
        self.env = {**os.environ, "HARNESS_ROOT": str(folder), "NO_COLOR": "1"}
        if package_path is not None:
            self.env["PYTHONPATH"] = str(package_path)

    def run(self, *args: str | Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(a) for a in args],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def harness(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        done = self.run(sys.executable, "-m", "harness", *args)
        assert done.returncode == 0, f"harness {' '.join(map(str, args))}: {done.stderr}"
        return done
