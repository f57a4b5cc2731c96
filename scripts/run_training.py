#!/usr/bin/env python3
"""Run a training config: ``python scripts/run_training.py CONFIG --mode {bc,ppo,mixed} ...``.

The same command as ``harness train``; ``--help`` lists the options and the exit codes.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

try:
    from harness.cli import train_main
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from harness.cli import train_main

if __name__ == "__main__":
    code = train_main(sys.argv[1:], prog="run_training.py")
    # The process ends here, its files written and closed. Freezing the objects spares the
    # interpreter's exit its garbage collections over torch's ~165,000 objects, about a tenth
    # of a rehearsal CLI run (docs/acceptance.md, Speed; scripts/docs_figures.py --section startup).
    gc.freeze()
    sys.exit(code)
