"""``harness preflight``: write the synthetic preflight dataset, the tiny stand-in for the
production data that a rehearsal can run on."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import Groups, emit
from harness.errors import EXIT_OK
from harness.formatting import display


def cmd_preflight_generate(args: argparse.Namespace) -> int:
    # Imported here: every run of ``harness`` builds this parser and must not pay for numpy.
    from harness.datasets.preflight import generate
    from harness.datasets.registry import PREFLIGHT_DIR, project_root

    out = Path(args.output) if args.output else project_root() / PREFLIGHT_DIR
    manifest = generate(out)
    emit(f"preflight dataset written under {display(out)} (manifest {display(manifest)})")
    return EXIT_OK


def register(groups: Groups) -> None:
    """Add ``preflight generate``."""
    preflight = groups.add_parser(
        "preflight",
        help="the synthetic preflight dataset",
        description="The synthetic preflight dataset.",
    )
    commands = preflight.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "generate",
        help="(re)generate the dataset byte-identically",
        description="Write the synthetic preflight dataset (manifest, "
        "checksum sheet, captures); deterministic.",
    )
    p.add_argument("-o", "--output", help="folder (default: artifacts/m5/preflight of the project)")
    p.set_defaults(func=cmd_preflight_generate)
