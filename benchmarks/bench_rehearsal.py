"""Benchmark: the README's rehearsal command against a bare ``python -c "import torch"``.

What it measures
    Wall-clock of two commands, each a fresh process, run alternately so that a drift of the
    machine's speed affects both alike:

    * the rehearsal: ``python -m pytest acceptance/ -m rehearsal [--dataset=D]`` (no ``-n``), the
      README's command, with ``--bundle`` pointing into a temporary folder so that a benchmark
      never replaces the checkout's bundle (the work is the same);
    * the peer: ``python -c "import torch"``, the floor of any process that trains.

    The rehearsal imports torch in three processes (pytest's own, for the in-process BC step,
    and the anneal smoke's and rollback drill's CLI runs) and trains in all three, so a ratio
    near 3 means the steps overlap well on two cores. The figure
    is the median rehearsal time over the median import time; the goal is at most 3.0 on this
    2-core machine. A rehearsal that does not pass stops the benchmark: its time would mean
    nothing.

How to run
    . .venv/bin/activate
    python benchmarks/bench_rehearsal.py                 # idle_v1, 5 repeats
    python benchmarks/bench_rehearsal.py --dataset preflight --repeats 3
    python benchmarks/bench_rehearsal.py --json          # one JSON object on stdout
    python benchmarks/bench_rehearsal.py --figures-cost  # also without the report's figures

With ``--figures-cost`` a third command alternates with the two: the same rehearsal with
``HARNESS_REHEARSAL_FIGURES=0``, which draws no figure (matplotlib is never imported). The
difference of the medians is what the figures add to the wall-clock; the summary's
``durations.figures_s`` says how much of it the controller spent drawing at the end.

Progress goes to stderr; the results go to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOAL = 3.0


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        env={**os.environ, **(env or {})},
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        sys.exit(f"bench_rehearsal: {' '.join(cmd)} exited {proc.returncode}\n{tail}")
    return seconds


def figures_seconds(bundle: str, dataset: str) -> float | None:
    summary = json.loads((Path(bundle) / f"summary_{dataset}.json").read_text("utf-8"))
    return summary["durations"].get("figures_s")


def benchmark(dataset: str, repeats: int, figures_cost: bool = False) -> dict[str, Any]:
    torch_cmd = [sys.executable, "-c", "import torch"]
    times: dict[str, list[float]] = {"rehearsal": [], "import_torch": []}
    if figures_cost:
        times["rehearsal_no_figures"] = []
    controller_figures: list[float | None] = []
    with tempfile.TemporaryDirectory(prefix="bench-rehearsal-") as bundle:
        rehearsal_cmd = [
            sys.executable,
            "-m",
            "pytest",
            "acceptance/",
            "-m",
            "rehearsal",
            f"--dataset={dataset}",
            f"--bundle={bundle}",
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        timed(torch_cmd)  # warm the page cache for both sides before timing anything
        for i in range(repeats):
            times["rehearsal"].append(timed(rehearsal_cmd))
            controller_figures.append(figures_seconds(bundle, dataset))
            if figures_cost:
                no_figures = timed(rehearsal_cmd, {"HARNESS_REHEARSAL_FIGURES": "0"})
                times["rehearsal_no_figures"].append(no_figures)
            times["import_torch"].append(timed(torch_cmd))
            print(
                f"repeat {i + 1}/{repeats}: "
                + ", ".join(f"{side} {values[-1]:.2f} s" for side, values in times.items()),
                file=sys.stderr,
            )
    medians = {side: statistics.median(values) for side, values in times.items()}
    return {
        "dataset": dataset,
        "repeats": repeats,
        "seconds": times,
        "median_s": medians,
        "controller_figures_s": controller_figures,
        "ratio": medians["rehearsal"] / medians["import_torch"],
        "goal": GOAL,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="idle_v1", help="dataset to rehearse (idle_v1)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating repeats (5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--figures-cost",
        action="store_true",
        help="also time the rehearsal without figures (HARNESS_REHEARSAL_FIGURES=0)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    result = benchmark(args.dataset, args.repeats, args.figures_cost)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    med = result["median_s"]
    print(f"rehearsal on {args.dataset} ({args.repeats} repeats, {result['cpus']} cpus)")
    print(f"  pytest acceptance/ -m rehearsal  median {med['rehearsal']:.2f} s")
    print(f"  python -c 'import torch'         median {med['import_torch']:.2f} s")
    verdict = "within" if result["ratio"] <= GOAL else "above"
    print(f"  ratio {result['ratio']:.2f} ({verdict} the goal of {GOAL:g}x)")
    drawn = [s for s in result["controller_figures_s"] if s is not None]
    if drawn:
        print(
            f"  figures drawn by the controller at the end: median {statistics.median(drawn):.2f} s"
        )
    if args.figures_cost:
        plain = med["rehearsal_no_figures"]
        print(f"  without figures                  median {plain:.2f} s")
        print(
            f"  ratio without figures {plain / med['import_torch']:.2f}; figures add "
            f"{med['rehearsal'] - plain:+.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
