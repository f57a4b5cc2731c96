"""``scripts/plot_ppo_logs.py``: PPO learning curves as one SVG drawn by matplotlib, called in
process (fast)."""

from __future__ import annotations

import contextlib
import html
import importlib.util
import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, assert_one_line_error

SVG = "{http://www.w3.org/2000/svg}"

_spec = importlib.util.spec_from_file_location(
    "plot_ppo_logs", REPO / "scripts" / "plot_ppo_logs.py"
)
assert _spec is not None and _spec.loader is not None
plot_ppo_logs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plot_ppo_logs)


def plot(*args: str | Path) -> subprocess.CompletedProcess[str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = plot_ppo_logs.main([str(a) for a in args])
        except SystemExit as exc:  # argparse: --help and usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(list(map(str, args)), code, out.getvalue(), err.getvalue())


def write_log(path: Path, returns: list[float | None], mode: str = "ppo") -> Path:
    """A schema-valid PPO log: one line per return, 2048 env steps per update."""
    lines = [
        {
            "mode": mode,
            "dataset": "idle_v1",
            "run": path.stem,
            "update": update,
            "bc_coef": 0.5 if mode == "mixed" else 0.0,
            "loss_total": 1.0,
            "loss_policy": -0.01,
            "loss_value": 2.0,
            "entropy": 0.6,
            "loss_bc": 0.3 if mode == "mixed" else None,
            "approx_kl": 0.002,
            "clip_fraction": 0.05,
            "mean_episode_return": value,
            "episodes": 0 if value is None else 3,
            "env_steps": 2048 * update,
            "steps_per_second": 9000.0,
        }
        for update, value in enumerate(returns, 1)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def svg_root(svg: Path) -> ET.Element:
    """The SVG's XML, with its comments: matplotlib draws text as paths and names it in one."""
    return ET.parse(svg, ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))).getroot()


def curves(svg: Path) -> list[list[tuple[float, float]]]:
    """The points of each data line (``<g id="curve-N">``): its markers' positions, in order."""
    groups = {g.get("id"): g for g in svg_root(svg).iter(f"{SVG}g")}
    return [
        [
            (float(u.get("x", "nan")), float(u.get("y", "nan")))
            for u in groups[f"curve-{i}"].iter(f"{SVG}use")
        ]
        for i in range(sum(1 for k in groups if k and k.startswith("curve-")))
    ]


def texts(svg: Path) -> list[str]:
    return [str(c.text).strip() for c in svg_root(svg).iter(ET.Comment)]


def axes(*specs: str | Path, ymax: str | None = None) -> Any:
    """The matplotlib axes the script draws for these logs (closed after reading)."""
    loaded = [plot_ppo_logs.load(str(spec)) for spec in specs]
    fig = plot_ppo_logs.figure(loaded, "t", plot_ppo_logs.parse_ymax(ymax, loaded))
    plot_ppo_logs.pyplot().close(fig)
    return fig.axes[0]


def test_one_line_per_log_with_its_points(tmp_path: Path) -> None:
    mixed = write_log(tmp_path / "mixed.jsonl", [None, 10.0, None, None, 10.0], mode="mixed")
    ppo = write_log(tmp_path / "ppo.jsonl", [0.0, 2.5, None, 5.0, 7.5])
    out = tmp_path / "figs" / "curves.svg"

    result = plot(f"{mixed}=BC start", ppo, "-o", out, "--ymax", "10", "--title", "Demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == ""

    lines = curves(out)
    assert [len(points) for points in lines] == [2, 4]  # null returns are skipped
    (a, b), (c, *_, d) = lines
    # SVG y grows downwards: the mixed line's 10s sit at the top, the ppo line rises from 0.
    assert d[0] == b[0] > a[0] > c[0] > 0
    assert a[1] == b[1] < d[1] < c[1]
    labels = texts(out)
    assert {"Demo", "BC start", "ppo", "environment steps", "mean episode return"} <= set(labels)
    assert {"0", "10", "10,000"} <= set(labels)

    ax = axes(f"{mixed}=BC start", ppo, ymax="10")
    assert [line.get_label() for line in ax.get_lines()] == ["BC start", "ppo"]
    assert ax.get_lines()[1].get_xydata().tolist() == [
        [2048, 0],
        [4096, 2.5],
        [8192, 5],
        [10240, 7.5],
    ]
    low, high = ax.get_ylim()
    assert low < 0 < 10 < high < 10.5  # a sliver around 0..--ymax: points there show whole
    assert max(ax.get_yticks()[ax.get_yticks() <= high]) == 10


def test_ymax_defaults_to_the_data_maximum_rounded_up(tmp_path: Path) -> None:
    log = write_log(tmp_path / "ppo.jsonl", [21.3, 104.0, 287.9])
    out = tmp_path / "out.svg"
    assert plot(log, "-o", out).returncode == 0
    assert "300" in texts(out) and "350" not in texts(out)
    assert 300 < axes(log).get_ylim()[1] < 310


def test_negative_returns_extend_the_axis_below_0(tmp_path: Path) -> None:
    log = write_log(tmp_path / "pendulum.jsonl", [-1400.0, -900.0, -250.0])
    ax = axes(log)
    low, high = ax.get_ylim()
    assert low < -1400 and 0 <= high < 100
    out = tmp_path / "out.svg"
    assert plot(log, "-o", out).returncode == 0
    assert "\N{MINUS SIGN}1,400" in texts(out)


def test_labels_and_title_are_text_as_typed(tmp_path: Path) -> None:
    log = write_log(tmp_path / "ppo.jsonl", [1.0, 2.0])
    out = tmp_path / "out.svg"
    result = plot(f'{log}=a <&> "b" = $c$', "-o", out, "--title", "x < y & z\x07")
    assert result.returncode == 0, result.stderr
    assert "&lt;&amp;&gt;" in out.read_text()  # escaped in the XML
    assert {'a <&> "b" = $c$', "x < y & z"} <= {html.unescape(t) for t in texts(out)}
    # "$c$" is drawn as typed: DejaVu Sans's dollar sign (glyph 7), no mathtext italics.
    assert 'id="DejaVuSans-7"' in out.read_text() and "Oblique" not in out.read_text()


def test_the_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    logs = [write_log(tmp_path / f"{n}.jsonl", [n, None, 3.0 * n, 4.5]) for n in (1.0, 2.0, 3.0)]
    first, second = tmp_path / "first.svg", tmp_path / "second.svg"
    assert plot(*logs, "-o", first, "--ymax", "500").returncode == 0
    assert plot(*logs, "-o", second, "--ymax", "500").returncode == 0
    assert first.read_bytes() == second.read_bytes()
    assert len(curves(first)) == 3
    # In another process too: matplotlib's ids and metadata do not depend on the session.
    third = tmp_path / "third.svg"
    script = REPO / "scripts" / "plot_ppo_logs.py"
    subprocess.run(
        [sys.executable, script, *logs, "-o", third, "--ymax", "500"], check=True, timeout=120
    )
    assert third.read_bytes() == first.read_bytes()


@pytest.mark.parametrize(
    ("returns", "extra", "fragment"),
    [
        (None, [], "not found"),
        ([None, None, None], [], "nothing to plot"),
        ([], [], "nothing to plot"),
        ([1.0], ["--ymax", "0"], "--ymax 0: expected a number above 0"),
        ([1.0], ["--ymax", "nan"], "--ymax nan"),
        ([1.0], ["--ymax", "lots"], "--ymax lots"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, returns: list[float | None] | None, extra: list[str], fragment: str
) -> None:
    log = tmp_path / "ppo.jsonl"
    if returns is not None:
        write_log(log, returns)
    good = write_log(tmp_path / "good.jsonl", [1.0, 2.0])
    out = tmp_path / "out.svg"
    line = assert_one_line_error(plot(good, log, "-o", out, *extra), fragment)
    assert line.startswith("plot_ppo_logs: error: ")
    assert {p.name for p in tmp_path.iterdir()} <= {"good.jsonl", "ppo.jsonl"}  # no output, no temp


def test_a_bad_line_is_named_and_an_old_output_is_kept(tmp_path: Path) -> None:
    log = write_log(tmp_path / "ppo.jsonl", [1.0, 2.0])
    log.write_text(log.read_text() + '{"update": 3}\n')
    out = tmp_path / "out.svg"
    out.write_text("old")
    assert_one_line_error(plot(log, "-o", out), str(log), "line 3")
    assert out.read_text() == "old"


def test_help_explains_what_is_plotted() -> None:
    result = plot("--help")
    assert result.returncode == 0
    assert "environment steps" in result.stdout and "skipped" in result.stdout


def test_an_unwritable_output_is_one_line(tmp_path: Path) -> None:
    log = write_log(tmp_path / "ppo.jsonl", [1.0])
    assert_one_line_error(plot(log, "-o", tmp_path), str(tmp_path), "cannot write the SVG")
    assert [p.name for p in tmp_path.iterdir()] == ["ppo.jsonl"]
