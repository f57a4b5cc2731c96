"""What every command group of the ``harness`` CLI shares: the parser whose errors are one line,
the argument types, how output is printed (lines, tables, quality reports) and how a command's
failure becomes one line on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from harness.cli.failures import internal_error_line, os_error_line, write_traceback
from harness.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, HarnessError
from harness.formatting import clip, display

if TYPE_CHECKING:
    from harness.datasets.quality import CaptureQuality

# The sub-parsers action a group registers its parser with (``register(groups)``).
Groups: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
# A command: runs on the parsed arguments, returns the exit code.
Command: TypeAlias = Callable[[argparse.Namespace], int]

EXIT_CODES = (
    "exit codes: 0 ok; 1 problems found (integrity, quality); 2 bad arguments or input (one "
    "line on stderr, nothing written); 3 (train) a gate failed and the run rolled back; 70 an "
    "unexpected error, a bug (one line naming the file its traceback was written to: the run's "
    "log folder for train, else the temporary folder); 75 another process held the dataset's "
    "lock for too long (one line naming it; nothing written, try again)"
)
ENV_KWARGS_HELP = (
    "keyword arguments of gymnasium.make as a JSON object, e.g. '{\"continuous\": true}'; "
    "recorded in the manifest and every capture"
)
DATASET_HELP = (
    "dataset name (idle_v1, lander_v1, preflight, or a name registered under data/bc_datasets/) "
    "or a path to a manifest file"
)


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) so that every failure is a single line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def probability(text: str) -> float:
    """An argument type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 1]")
    return value


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argument type: an integer no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value

    return parse


positive = int_at_least(1)
non_negative = int_at_least(0)


def run(args: argparse.Namespace) -> int:
    """Run a command; every failure is one line on stderr and an exit code, no traceback.

    A user's mistake is a ``HarnessError`` (its own exit code) or an ``OSError`` (exit 2). Any
    other exception is a bug: its traceback goes to a file (``failures.write_traceback``; a
    command that knows its run's folder sets ``args.traceback_dir``) and the exit code is 70.
    """
    try:
        return args.func(args)
    except HarnessError as exc:
        # One line whatever the message quotes (a path holding a line break, a long value).
        print(f"harness: error: {clip(str(exc), 2000)}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"harness: error: {os_error_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        written = write_traceback(exc, getattr(args, "traceback_dir", None))
        print(internal_error_line(exc, written), file=sys.stderr)
        return EXIT_INTERNAL


def emit(text: str = "") -> None:
    """Print one line of a command's output at once (a rehearsal reads it as it comes)."""
    print(text, flush=True)


def emit_json(document: Any) -> None:
    """Print a command's ``--json`` report."""
    emit(json.dumps(document, indent=2))


def emit_table(rows: list[tuple[str, ...]]) -> None:
    """Print ``rows`` (the first is the header) in left-aligned columns two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        emit("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


QUALITY_HEADER = (
    "entry",
    "status",
    "demonstrator",
    "noise",
    "episodes",
    "steps",
    "return mean [min, max]",
    "actions (count, share)",
    "check",
)


def emit_quality(reports: list[CaptureQuality], as_json: bool, title: str | None) -> None:
    """Print capture quality reports (``capture inspect``, ``dataset inspect``): a table, then
    each error and warning on a line of its own."""
    if as_json:
        emit_json([r.to_json() for r in reports])
        return
    if title:
        emit(f"{title}: {len(reports)} capture(s)")
    emit_table([QUALITY_HEADER, *(_quality_row(r) for r in reports)])
    for r in reports:
        name = r.entry or display(r.path)
        for message in r.errors:
            emit(f"{name}: error: {message}")
        for message in r.warnings:
            emit(f"{name}: warning: {message}")


def _quality_row(r: CaptureQuality) -> tuple[str, ...]:
    data = r.to_json()
    returns = (
        f"{data['return_mean']:.1f} [{data['return_min']:.0f}, {data['return_max']:.0f}]"
        if data["return_mean"] is not None
        else "-"
    )
    shares = r.action_shares()
    actions = (
        "  ".join(f"{a}: {c} ({shares[a]:.0%})" for a, c in sorted(r.action_counts.items())) or "-"
    )
    verdict = "ERROR" if r.errors else "warn" if r.warnings else "ok"
    return (
        r.entry or display(r.path),
        r.status or "-",
        r.demonstrator or "-",
        "-" if r.noise is None else f"{r.noise:g}",
        str(r.episodes),
        str(r.steps),
        returns,
        actions,
        verdict,
    )
