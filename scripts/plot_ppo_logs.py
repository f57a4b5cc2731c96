#!/usr/bin/env python3
"""Draw PPO learning curves as one SVG: ``python scripts/plot_ppo_logs.py LOG[=LABEL] ... -o OUT.svg``.

Each log (``--ppo-log``, JSON Lines, one line per PPO update) becomes one line: the mean return
of the training episodes that ended in each update, against the environment steps so far.
Standard library only; the same inputs give the same bytes. ``--help`` lists the options.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from xml.sax.saxutils import escape

try:
    from harness.atomic import write_text_atomic
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from harness.atomic import write_text_atomic
from harness.errors import HarnessError
from harness.training.runlog import read_ppo_log

# The plot area spans x in LEFT..WIDTH-RIGHT and y in TOP..BOTTOM; the legend goes below it.
WIDTH, LEFT, RIGHT, TOP, BOTTOM, LEGEND_ROW = 720, 70, 20, 44, 300, 18
# Okabe-Ito, distinguishable with the common colour-vision deficiencies (yellow, faint, last).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
FONT = {"font_family": "sans-serif", "font_size": 11, "fill": "#333"}

Curve = tuple[str, list[tuple[int, float]]]  # label, (env_steps, mean_episode_return) points


def tag(name: str, content: str | None = None, **attrs: object) -> str:
    """An SVG element; ``font_size=11`` becomes ``font-size="11"``, floats get one decimal."""
    fmt = [
        (k.replace("_", "-"), f"{v:.1f}" if isinstance(v, float) else v) for k, v in attrs.items()
    ]
    head = name + "".join(f' {k}="{v}"' for k, v in fmt)
    return f"<{head}/>" if content is None else f"<{head}>{content}</{name}>"


def text(value: str) -> str:
    """``value`` safe as XML character data: escaped, without control characters or surrogates."""
    return escape("".join(" " if c < " " else c for c in value if not "\ud800" <= c <= "\udfff"))


def nice_step(span: float) -> float:
    """A tick step of 1, 2 or 5 times a power of ten that cuts ``span`` into about 5 parts."""
    power = 10.0 ** math.floor(math.log10(span / 5))
    return min((m * power for m in (1, 2, 5, 10)), key=lambda step: abs(span / step - 5))


def ticks(top: float) -> list[tuple[float, str]]:
    """Tick values from 0 to ``top``, with their labels."""
    step = nice_step(top)
    decimals = max(0, -math.floor(math.log10(step)))
    return [(k * step, f"{k * step:,.{decimals}f}") for k in range(int(top / step + 1e-9) + 1)]


def render(curves: list[Curve], title: str, ymax: float) -> str:
    xmax = max(x for _, points in curves for x, _ in points)
    height = BOTTOM + 64 + LEGEND_ROW * len(curves)
    mid_x, mid_y = (LEFT + WIDTH - RIGHT) / 2, (TOP + BOTTOM) / 2

    def px(x: float) -> float:
        return LEFT + x / xmax * (WIDTH - RIGHT - LEFT)

    def py(y: float) -> float:
        return BOTTOM - y / ymax * (BOTTOM - TOP)

    clip = tag("rect", x=LEFT, y=TOP - 4, width=WIDTH - RIGHT - LEFT + 4, height=BOTTOM - TOP + 8)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}">',
        tag("title", text(title)),
        tag("rect", width=WIDTH, height=height, fill="white"),
        tag("clipPath", clip, id="plot"),  # --ymax below the data: cut the lines at the frame
        tag("text", text(title), x=WIDTH / 2, y=24, text_anchor="middle", font_family="sans-serif",
            font_size=15, font_weight="bold", fill="#222"),
    ]  # fmt: skip
    for x, label in ticks(xmax):
        out.append(tag("line", x1=px(x), y1=TOP, x2=px(x), y2=BOTTOM, stroke="#e4e4e4"))
        out.append(tag("text", label, x=px(x), y=BOTTOM + 16, text_anchor="middle", **FONT))
    for y, label in ticks(ymax):
        out.append(tag("line", x1=LEFT, y1=py(y), x2=WIDTH - RIGHT, y2=py(y), stroke="#e4e4e4"))
        out.append(tag("text", label, x=LEFT - 6, y=py(y) + 4, text_anchor="end", **FONT))
    out += [
        tag("path", d=f"M{LEFT} {TOP}V{BOTTOM}H{WIDTH - RIGHT}", fill="none", stroke="#333"),
        tag("text", "environment steps", x=mid_x, y=BOTTOM + 38, text_anchor="middle", **FONT),
        tag("text", "mean episode return", x=18, y=mid_y, text_anchor="middle",
            transform=f"rotate(-90 18 {mid_y:.1f})", **FONT),
    ]  # fmt: skip
    for i, (label, points) in enumerate(curves):
        colour, row = PALETTE[i % len(PALETTE)], BOTTOM + 56 + LEGEND_ROW * i
        xy = [(px(x), py(y)) for x, y in points]
        pen = f'stroke="{colour}" fill="{colour}" stroke-width="2" stroke-linejoin="round"'
        out.append(f'<g {pen} clip-path="url(#plot)">')
        out.append(tag("polyline", points=" ".join(f"{x:.1f},{y:.1f}" for x, y in xy), fill="none"))
        out += [tag("circle", cx=x, cy=y, r=2) for x, y in xy]
        out.append("</g>")
        sample = (
            tag("line", x1=LEFT, y1=row, x2=LEFT + 24, y2=row),
            tag("circle", cx=LEFT + 12, cy=row, r=2),
        )
        out.append(f"<g {pen}>{''.join(sample)}</g>")
        out.append(tag("text", text(label), x=LEFT + 32, y=row + 4, **FONT))
    return "\n".join([*out, "</svg>", ""])


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
        epilog="Exit codes: 0 written; 2 bad input, and nothing is written.",
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
        svg = render(curves, args.title, ymax)
        try:
            write_text_atomic(args.output, svg)
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
