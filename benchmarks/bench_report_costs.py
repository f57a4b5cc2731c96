"""Benchmark: what the rehearsal's figures (matplotlib) and TensorBoard event files cost.

What it measures
    Wall-clock, each in fresh processes, run alternately so that a drift of the machine's speed
    affects all sides alike:

    * the peer: ``python -c "import torch"``, the floor of any process that trains;
    * figures: a process that imports matplotlib through ``harness.svgfigure.pyplot()`` and draws
      four small line figures (30 points each, as a bundle's) into SVG files with ``save_svg``;
      it reports its import and drawing times, and its whole wall-clock is timed from outside;
    * the smoke run, ``scripts/run_training.py configs/examples/poc_hybrid.yaml --mode mixed
      --epochs 1``, with and without ``--tensorboard`` (each run in its own fresh output folders).

    Figures are medians over the repeats; the ratios are against the peer's median, and the
    TensorBoard cost is the smoke's median with the flag minus its median without.

How to run
    . .venv/bin/activate
    python benchmarks/bench_report_costs.py                # 5 repeats
    python benchmarks/bench_report_costs.py --repeats 3 --json

Progress goes to stderr; the results go to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CPU: list[float] = []  # CPU seconds (user + system) of each command timed, in order
BASE = REPO / "configs" / "examples" / "poc_hybrid.yaml"
# Imports matplotlib and draws four small figures; prints its own import and draw seconds.
FIGURES_WORKER = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from harness.svgfigure import pyplot, save_svg
plt = pyplot()
t1 = time.perf_counter()
for k in range(4):
    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.plot(range(30), [(i * (k + 1)) % 17 for i in range(30)], marker="o")
    ax.set_title(f"figure {k}")
    save_svg(fig, Path(sys.argv[1]) / f"f{k}.svg")
print(json.dumps({"import_s": t1 - t0, "draw_s": time.perf_counter() - t1}))
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    """Wall-clock seconds of ``cmd`` and its stdout; its CPU seconds go to ``CPU[-1]``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        sys.exit(f"bench_report_costs: {' '.join(cmd)} exited {proc.returncode}\n{tail}")
    return seconds, proc.stdout


def smoke_cmd(work: Path, name: str, tensorboard: bool) -> list[str]:
    """The smoke command on an overlay of the base config with its own output folders."""
    from harness.cli import main

    config = work / f"{name}.yaml"
    args = ["config", "overlay", str(BASE), "-o", str(config)]
    for folder, key in (("logs", "output.log_dir"), ("c", "output.checkpoint_dir")):
        args += ["--set", f"{key}={work / name / folder}"]
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    if code != 0:
        sys.exit(f"bench_report_costs: could not write the overlay {config}")
    script = str(REPO / "scripts" / "run_training.py")
    flag = ["--tensorboard"] if tensorboard else []
    return [sys.executable, script, str(config), "--mode", "mixed", "--epochs", "1", *flag]


def benchmark(repeats: int) -> dict[str, Any]:
    torch_cmd = [sys.executable, "-c", "import torch"]
    times: dict[str, list[float]] = {k: [] for k in ("import_torch", "figures", "figures_import",
                                                     "figures_draw", "smoke", "smoke_tensorboard",
                                                     "smoke_cpu", "smoke_tensorboard_cpu")}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-report-costs-") as tmp:
        work = Path(tmp)
        timed(torch_cmd)  # warm the page cache before timing anything
        for i in range(repeats):
            times["import_torch"].append(timed(torch_cmd)[0])
            folder = work / f"figs{i}"
            folder.mkdir()
            seconds, out = timed([sys.executable, "-c", FIGURES_WORKER, str(folder)])
            inner = json.loads(out.splitlines()[-1])
            times["figures"].append(seconds)
            times["figures_import"].append(inner["import_s"])
            times["figures_draw"].append(inner["draw_s"])
            for tensorboard in (False, True) if i % 2 == 0 else (True, False):
                key = "smoke_tensorboard" if tensorboard else "smoke"
                cmd = smoke_cmd(work, f"{key}{i}", tensorboard)
                times[key].append(timed(cmd)[0])
                times[f"{key}_cpu"].append(CPU[-1])
            print(
                f"repeat {i + 1}/{repeats}: "
                + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                file=sys.stderr,
            )
    median = {k: statistics.median(v) for k, v in times.items()}
    peer = median["import_torch"]
    return {
        "repeats": repeats,
        "median_s": {k: round(v, 3) for k, v in median.items()},
        "figures_over_import_torch": round(median["figures"] / peer, 2),
        "smoke_over_import_torch": round(median["smoke"] / peer, 2),
        "smoke_tensorboard_over_import_torch": round(median["smoke_tensorboard"] / peer, 2),
        "tensorboard_extra_s": round(median["smoke_tensorboard"] - median["smoke"], 3),
        "tensorboard_extra_cpu_s": round(median["smoke_tensorboard_cpu"] - median["smoke_cpu"], 3),
        "times_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    result = benchmark(args.repeats)
    if args.json:
        print(json.dumps(result))
        return
    m = result["median_s"]
    print(f"medians of {args.repeats} repeats (s): " + ", ".join(f"{k} {v}" for k, v in m.items()))
    print(
        f"figures process {result['figures_over_import_torch']}x import torch "
        f"(matplotlib import {m['figures_import']} s, four figures {m['figures_draw']} s)"
    )
    print(
        f"smoke {result['smoke_over_import_torch']}x import torch, with --tensorboard "
        f"{result['smoke_tensorboard_over_import_torch']}x: "
        f"{result['tensorboard_extra_s']:+.3f} s wall, "
        f"{result['tensorboard_extra_cpu_s']:+.3f} s CPU (medians' difference)"
    )


if __name__ == "__main__":
    main()
