#!/usr/bin/env python3
"""Draw PPO learning curves as one SVG: ``python scripts/plot_ppo_logs.py LOG[=LABEL] ... -o OUT.svg``.

Each log (``--ppo-log``, JSON Lines, one line per PPO update) becomes one line: the mean return
of the training episodes that ended in each update, against the environment steps so far.
Drawn with matplotlib (the ``report`` extra) through ``harness.svgfigure``: the same inputs give
the same bytes. ``--help`` lists the options.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

try:
    from harness.errors import HarnessError
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from harness.errors import HarnessError
from harness.svgfigure import pyplot, save_svg
from harness.training.runlog import read_ppo_log

# Okabe-Ito, distinguishable with the common colour-vision deficiencies (yellow, faint, last).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
WIDTH_INCHES, HEIGHT_INCHES = 7.2, 3.6  # the plot area; the legend is added below it
MARGIN = 0.015  # of each axis's span, beyond the data's last step and the top of the axis

Curve = tuple[str, list[tuple[int, float]]]  # label, (env_steps, mean_episode_return) points


def text(value: str) -> str:
    """``value`` as a figure can show it: control characters as spaces, no lone surrogates."""
    return "".join(" " if c < " " else c for c in value if not "\ud800" <= c <= "\udfff")


def nice_step(span: float) -> float:
    """A tick step of 1, 2 or 5 times a power of ten that cuts ``span`` into about 5 parts."""
    power = 10.0 ** math.floor(math.log10(span / 5))
    return min((m * power for m in (1, 2, 5, 10)), key=lambda step: abs(span / step - 5))


def figure(curves: list[Curve], title: str, ymax: float) -> Any:
    """The matplotlib figure: one line with markers per curve, the legend below the plot.

    The return axis starts at 0, or lower when a return is negative (Pendulum's are).
    """
    try:
        plt = pyplot()
    except ModuleNotFoundError as exc:
        raise HarnessError(
            f"drawing needs matplotlib ({exc}): pip install -e '.[report]'"
        ) from None
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    xmax = max(x for _, points in curves for x, _ in points)
    low = min(y for _, points in curves for _, y in points)
    ymin = 0.0 if low >= 0 else math.floor(low / nice_step(ymax - low)) * nice_step(ymax - low)
    # Labels are text as typed: "$" is a dollar sign, not mathematics.
    with plt.rc_context({"text.parse_math": False, "font.size": 9}):
        fig, ax = plt.subplots(figsize=(WIDTH_INCHES, HEIGHT_INCHES))
        for i, (label, points) in enumerate(curves):
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, color=PALETTE[i % len(PALETTE)], linewidth=1.8, marker="o",
                    markersize=3, label=text(label), gid=f"curve-{i}")  # fmt: skip
        ax.set_title(text(title), fontsize=11, fontweight="bold")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("mean episode return")
        # A sliver beyond the last step and --ymax, so that points there show whole; points
        # above --ymax are cut off at the frame.
        ax.set_xlim(0, xmax * (1 + MARGIN))
        ax.set_ylim(ymin - (ymax - ymin) * MARGIN, ymax + (ymax - ymin) * MARGIN)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.10g}"))
        ax.grid(color="#e4e4e4", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.16), frameon=False, borderaxespad=0)
    return fig


def load(spec: str) -> Curve:
    """The label and the points of ``LOG[=LABEL]`` (split at the first ``=``)."""
    path, _, label = spec.partition("=")
    points = [(line["env_steps"], line["mean_episode_return"]) for line in read_ppo_log(path)]
    points = [(x, y) for x, y in points if y is not None]
    if not points:
        raise HarnessError(f"{path}: nothing to plot: no update has a mean_episode_return")
    return label or Path(path).stem, points


def parse_ymax(value: str | None, curves: list[Curve]) -> float:
    if value is None:  # the data's maximum, rounded up to a tick
        top = max(y for _, points in curves for _, y in points)
        if top <= 0 and min(y for _, points in curves for _, y in points) < 0:
            return 0.0  # every return negative (Pendulum): the axis ends at 0
        step = nice_step(top) if top > 0 else 1.0
        return max(1, math.ceil(top / step - 1e-9)) * step
    try:
        ymax = float(value)
    except ValueError:
        ymax = math.nan
    if not (math.isfinite(ymax) and ymax > 0):
        raise HarnessError(f"--ymax {value}: expected a number above 0")
    return ymax


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="plot_ppo_logs.py",
        description="Plot PPO learning curves into one SVG file: for each log, the mean return of "
        "the training episodes that ended in each update, against environment steps. Updates in "
        "which no episode ended are skipped; the line joins the points around them.",
        epilog="Exit codes: 0 written; 2 bad input (or no matplotlib), and nothing is written.",
    )
    parser.add_argument("logs", nargs="+", metavar="LOG[=LABEL]",
                        help="a PPO log (JSON Lines); the label defaults to the file's stem")  # fmt: skip
    parser.add_argument("-o", "--output", required=True, metavar="OUT.svg", help="the SVG to write")
    parser.add_argument("--title", default="PPO learning curves", help="the figure's title")
    parser.add_argument("--ymax", metavar="N", help="top of the return axis (default: the "
                        "data's maximum, rounded up; pass 500 for CartPole)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        curves = [load(spec) for spec in args.logs]
        ymax = parse_ymax(args.ymax, curves)
        fig = figure(curves, args.title, ymax)
        try:
            save_svg(fig, Path(args.output))
        except OSError as exc:
            raise HarnessError(
                f"{args.output}: cannot write the SVG: {exc.strerror or exc}"
            ) from None
    except HarnessError as exc:
        print(f"plot_ppo_logs: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
