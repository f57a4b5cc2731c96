#!/usr/bin/env python3
"""Regenerate the figures that docs/training.md, docs/datasets.md and docs/acceptance.md quote.

``python scripts/docs_figures.py [--out DIR] [--section NAME ...] [--svg FILE]`` runs the
documented commands with the documented seeds, redraws ``docs/figures/learning_curves_cartpole.svg``
with ``scripts/plot_ppo_logs.py``, and prints every figure as a markdown list, labelled in the
docs' words, after the machine it ran on and the git commit. ``--help`` lists the sections.

- ``dataset``: what ``harness dataset inspect`` reports on idle_v1 and preflight;
- ``bc``: hold-out accuracy over seeds 0-9 on both datasets, and the label ceiling (agreement
  with the noise-free controller), through ``TrainingHarness`` in this process;
- ``curves``: mixed against PPO from scratch, 30 epochs, seed 0: the docs' shell commands run
  as they are written, then the plot;
- ``ablation``: what the annealed BC term adds (four more mixed runs);
- ``timings``, ``internals``, ``startup``: wall-clock figures (they vary from run to run);
- ``kernels`` (only when asked for): the curves' runs again with torch and MKL forced onto other
  CPU code paths, to show how much the figures owe to the machine.

Every section but the three timing ones is deterministic on one machine: a second run prints the
same figures and writes the same SVG bytes (its sha256 is one of the figures), which
``--compare OLD/figures.json`` checks. Another CPU may give other ones (see ``kernels``). Work
files (configs, logs, checkpoint stores) go to ``--out`` (default: a temporary folder);
``figures.md`` and ``figures.json`` are written there too. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

# The sections live beside this file; put its folder on the path when it is imported as a file
# (the tests) rather than run as a script.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import docs_figures_timing as timing
import docs_figures_training as training

Figures = dict[str, str]
SECTIONS: dict[str, Callable[[Path, argparse.Namespace], Figures]] = {
    "dataset": lambda out, args: training.dataset_section(),
    "bc": lambda out, args: training.bc_section(out / "bc"),
    "curves": lambda out, args: training.curves_section(out / "curves", args.svg),
    "ablation": lambda out, args: training.ablation_section(out / "ablation"),
    "timings": lambda out, args: timing.timings_section(out / "timings", args.repeats),
    "internals": lambda out, args: timing.internals_section(args.repeats),
    "startup": lambda out, args: timing.startup_section(args.repeats),
    "kernels": lambda out, args: training.kernels_section(out / "kernels"),
}
DEFAULT_SECTIONS = ("dataset", "bc", "curves", "ablation", "timings", "internals", "startup")
# Wall-clock sections: their figures differ between runs, the others must not.
TIMED = {"timings", "internals", "startup"}


def markdown(machine: Figures, sections: dict[str, Figures]) -> str:
    """The figures as markdown: one heading per section, one ``- label: value`` line per figure."""
    lines = ["## machine", "", *(f"- {label}: {value}" for label, value in machine.items())]
    for name, figures in sections.items():
        note = " (wall clock: varies between runs)" if name in TIMED else ""
        lines += ["", f"## {name}{note}", ""]
        lines += [f"- {label}: {value}" for label, value in figures.items()]
    return "\n".join(lines) + "\n"


def differences(before: dict[str, Figures], after: dict[str, Figures]) -> list[str]:
    """The deterministic figures that differ between two runs' sections (``figures.json``),
    one line each; sections that only one run has are skipped, timed ones always."""
    lines = []
    for name in sorted((before.keys() & after.keys()) - TIMED):
        old, new = before[name], after[name]
        for label in [*old, *(k for k in new if k not in old)]:
            if old.get(label) != new.get(label):
                lines.append(f"{name}: {label}: {old.get(label)} -> {new.get(label)}")
    return lines


def cross_check(sections: dict[str, Figures]) -> list[str]:
    """Disagreements between sections that measure the same thing by two routes: the bc
    section's in-process seed-0 run and the curves section's CLI run train the same BC policy."""
    if "bc" not in sections or "curves" not in sections:
        return []
    api = sections["bc"]["idle_v1 BC checkpoint, seed 0"]
    cli = sections["curves"]["mixed BC stage"]
    if cli.endswith(api):
        return []
    return [f"TrainingHarness gave {api} for idle_v1 seed 0, the CLI's mixed run gave {cli}"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="docs_figures.py",
        description="Regenerate the figures the docs quote, from the documented commands and "
        "seeds, and print them as markdown with the machine and commit that gave them.",
        epilog=f"Sections: {', '.join(SECTIONS)}; by default all but kernels. Exit codes: 0 done; "
        "1 a command failed (its stderr is shown), two routes to one figure disagree, or "
        "--compare found a difference.",
    )
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="keep the work files and figures.{md,json} here (default: a "
                        "temporary folder, removed at the end)")  # fmt: skip
    parser.add_argument("--section", action="append", choices=list(SECTIONS), metavar="NAME",
                        help="run only this section (repeatable)")  # fmt: skip
    parser.add_argument("--svg", type=Path, default=training.FIGURE, metavar="FILE",
                        help="where the curves section draws the learning curves (default: "
                        "docs/figures/learning_curves_cartpole.svg)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, metavar="N",
                        help="runs per wall-clock figure; the median is shown (default 3)")  # fmt: skip
    parser.add_argument("--compare", type=Path, metavar="FIGURES_JSON",
                        help="a previous run's figures.json: exit 1 if a figure of a section "
                        "both ran differs (the timed sections aside)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def run(args: argparse.Namespace, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    machine = training.machine()
    sections: dict[str, Figures] = {}
    for name in args.section or DEFAULT_SECTIONS:
        print(f"docs_figures: {name} ...", file=sys.stderr, flush=True)
        try:
            sections[name] = SECTIONS[name](out, args)
        except training.CommandFailed as exc:
            print(f"docs_figures: {name}: {exc}", file=sys.stderr)
            return 1
    text = markdown(machine, sections)
    (out / "figures.md").write_text(text, encoding="utf-8")
    document = {"machine": machine, "sections": sections, "timed": sorted(TIMED & set(sections))}
    (out / "figures.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(text, end="")
    problems = cross_check(sections)
    if args.compare is not None:
        before = json.loads(args.compare.read_text(encoding="utf-8"))["sections"]
        problems += [
            f"differs from {args.compare}: {line}" for line in differences(before, sections)
        ]
    for line in problems:
        print(f"docs_figures: {line}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out is not None:
        return run(args, args.out.absolute())
    with tempfile.TemporaryDirectory(prefix="docs-figures-") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
