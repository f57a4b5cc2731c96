"""The ``harness`` command line: thin wiring over the library, one command group per module
(capture, dataset, preflight, config, train, bundle), each registering its own parsers.

Exit codes (``common.EXIT_CODES``): 0 success; 1 the command ran and found problems (integrity or
quality); 2 bad arguments or bad input (one line on stderr, nothing written); 3 training rolled
back; 70 an unexpected error, a bug (one line naming the file its traceback was written to); 75
another process held the dataset's lock for too long (nothing written; try again).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# Before the command modules import numpy: its OpenBLAS starts a thread per core that spins for
# about 0.1 s of CPU, and the harness does no numpy linear algebra worth a thread (torch trains
# on one thread as well, training/seeding.py). A value set by the user is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from harness import __version__
from harness.cli import bundle, capture, config, dataset, preflight, train
from harness.cli.common import EXIT_CODES, OneLineParser, run
from harness.cli.train import train_main

__all__ = ["build_parser", "main", "train_main"]

GROUPS = (capture, dataset, preflight, config, train, bundle)


def build_parser() -> argparse.ArgumentParser:
    """The ``harness`` parser, each group's sub-parsers added by the group's module."""
    parser = OneLineParser(
        prog="harness",
        description="Dataset tooling and training harness for the Phase 5.4 ops rehearsal.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    groups = parser.add_subparsers(dest="group", required=True)
    for group in GROUPS:
        group.register(groups)
    # Named in usage and in errors ("argument {capture,...}: invalid choice").
    groups.metavar = "{" + ",".join(groups.choices) + "}"
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``harness`` with ``argv`` (default: the command line); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Arguments that parse one by one but not together (a command sets ``argument_problem``).
    check = getattr(args, "argument_problem", None)
    if check is not None and (problem := check(args)):
        parser.error(problem)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
