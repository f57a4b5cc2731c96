"""``harness bundle``: check an acceptance bundle (what a rehearsal leaves) against its summaries,
and compare the rehearsals of two bundles."""

from __future__ import annotations

import argparse
from typing import Any

from harness.cli.common import Groups, emit, emit_json
from harness.errors import EXIT_OK, EXIT_PROBLEMS
from harness.formatting import display

# harness.bundle is imported inside each command: every run of ``harness``, ``--help``
# included, builds this parser and must not pay for jsonschema.

VERIFY_DESCRIPTION = (
    "Check that a bundle is still what its rehearsal left. For every "
    "summary_<dataset>.json in DIR, check it and the report against tagmanifest_<dataset>.txt "
    "(their sha256, written last, as a BagIt tag manifest), then recompute the size and "
    "sha256 of each artefact the summary lists and compare. The shared run log is checked "
    "per dataset, on the canonical JSON "
    "of that dataset's records only, so rerunning one dataset never invalidates "
    "another's summary. Reports every problem, one line each: missing (listed but "
    "absent), size, digest, unexpected (a file or run log records that no summary "
    "lists), unreadable, summary (a summary that is not valid JSON, does not match "
    "harness/schemas/summary.schema.json, lists a path its dataset does not own, or says "
    "passed when a step did not), tagmanifest (a tag manifest line that is not "
    "'<sha256>  <file>' or names another file, or a summary it does not pin). "
    "Also prints each dataset's rehearsal outcome as its summary records it. This checks "
    "integrity, not the outcome: the intact bundle of a failed rehearsal verifies "
    "(exit 0)."
)
VERIFY_EPILOG = (
    "exit codes: 0 every artefact matches its summary, whatever the rehearsals' "
    "outcomes; 1 problems found; 2 DIR is not a folder or holds no "
    "summary_<dataset>.json (one line on stderr)"
)
COMPARE_DESCRIPTION = (
    "Compare two bundles' rehearsals of the same datasets: every step's outcome, "
    "message and remedial action, every metric except wall-clock (cli_seconds) and the "
    "drill store's digests (which hold promotion times), and "
    "the missing artefacts, with each bundle's own path written <bundle>. The same "
    "code, data and seeds must give the same figures, serial or on xdist workers. "
    "Exit codes: 0 the same, 1 differences (one line each), 2 bad input."
)


def cmd_bundle_verify(args: argparse.Namespace) -> int:
    from harness.bundle import verify_bundle

    report = verify_bundle(args.dir)
    if args.json:
        emit_json(report.to_json())
        return EXIT_OK if report.ok else EXIT_PROBLEMS
    for name, summary in sorted(report.summaries.items()):
        emit(f"{name}: {_rehearsal_outcome(summary)}")
    for problem in report.problems:
        emit(problem.message)
    shown = display(args.dir)
    if report.ok:
        emit(
            f"bundle {shown}: {report.checked} artefact(s) of {len(report.summaries)} "
            "dataset(s) match their summaries"
        )
        return EXIT_OK
    emit(f"bundle {shown}: {len(report.problems)} problem(s) in {report.checked} artefact(s)")
    return EXIT_PROBLEMS


def cmd_bundle_compare(args: argparse.Namespace) -> int:
    from harness.bundle import compare_bundles

    both, differences = compare_bundles(args.first, args.second)
    for line in differences:
        emit(line)
    shown = f"{display(args.first)} and {display(args.second)}"
    if differences:
        emit(f"bundles {shown}: {len(differences)} difference(s)")
        return EXIT_PROBLEMS
    emit(f"bundles {shown}: same outcomes and metrics for {', '.join(both)}")
    return EXIT_OK


CLEAR_DESCRIPTION = (
    "Remove datasets from a bundle: their files, run and figure folders, and run log records, "
    "each under the dataset's bundle lock (a session rehearsing it makes this wait, then stop "
    "with exit 75). The session files (acceptance.json, acceptance_report.md) are rewritten "
    "without them: a stale dataset drops out; one the last session rehearsed is listed as "
    "cleared and still counts in that session's verdict."
)
CLEAR_EPILOG = (
    "exit codes: 0 cleared; 2 no such bundle folder, or nothing of a dataset in it (one line "
    "on stderr, nothing removed); 75 another process held a lock too long"
)


def cmd_bundle_clear(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.bundle.clear import clear_datasets
    from harness.bundle.layout import datasets_in
    from harness.errors import HarnessError

    root = Path(args.bundle)
    if not root.is_dir():
        raise HarnessError(f"{root}: no such bundle folder")
    present = datasets_in(root)
    absent = [name for name in args.datasets if name not in present]
    if absent:
        raise HarnessError(
            f"{root}: nothing of dataset {', '.join(absent)} in this bundle "
            f"(it holds {', '.join(sorted(present)) or 'no dataset'})"
        )
    clear_datasets(root, args.datasets)
    emit(f"bundle {display(root)}: cleared {', '.join(sorted(set(args.datasets)))}")
    return EXIT_OK


def _rehearsal_outcome(summary: dict[str, Any]) -> str:
    """``rehearsal passed``, or ``rehearsal FAILED (steps: ...)`` naming the steps that did not pass."""
    if summary["passed"]:
        return "rehearsal passed"
    steps = [f"{s['step']} {s['outcome']}" for s in summary["steps"] if s["outcome"] != "passed"]
    return f"rehearsal FAILED (steps: {', '.join(steps) or 'none recorded as failed'})"


def register(groups: Groups) -> None:
    """Add ``bundle verify`` and ``bundle compare``."""
    bundle = groups.add_parser(
        "bundle",
        help="verify an acceptance bundle against its summaries; compare two; clear datasets",
        description=(
            "The acceptance bundle a rehearsal leaves (artifacts/m5/acceptance/ by default): each "
            "dataset's files, keyed by dataset, the shared run log logs/anneal_results.json, and "
            "summary_<dataset>.json pinning them with their sha256 and size."
        ),
    )
    commands = bundle.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "verify",
        help="recompute the bundle's digests against its summaries",
        description=VERIFY_DESCRIPTION,
        epilog=VERIFY_EPILOG,
    )
    p.add_argument("dir", metavar="DIR", help="the bundle folder, e.g. artifacts/m5/acceptance")
    p.add_argument("--json", action="store_true", help="print a machine-readable report")
    p.set_defaults(func=cmd_bundle_verify)

    p = commands.add_parser(
        "compare",
        help="check that two rehearsals gave the same outcomes and metrics",
        description=COMPARE_DESCRIPTION,
    )
    p.add_argument("first", metavar="DIR", help="a bundle folder")
    p.add_argument("second", metavar="OTHER", help="another bundle folder")
    p.set_defaults(func=cmd_bundle_compare)

    p = commands.add_parser(
        "clear",
        help="remove datasets (files, runs, figures, run log records) from a bundle",
        description=CLEAR_DESCRIPTION,
        epilog=CLEAR_EPILOG,
    )
    p.add_argument("datasets", nargs="+", metavar="DATASET", help="a dataset name in the bundle")
    p.add_argument(
        "--bundle",
        default="artifacts/m5/acceptance",
        metavar="DIR",
        help="the bundle folder (default: artifacts/m5/acceptance)",
    )
    p.set_defaults(func=cmd_bundle_clear)
