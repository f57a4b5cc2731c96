"""``scripts/docs_figures.py``: its pure parts (summaries of PPO logs and seed sweeps, the
markdown, the comparison of two runs). The sections that train are run by hand, not here: they
take minutes, and what they print is what the docs quote."""

from __future__ import annotations

import contextlib
import importlib.util
import io

import pytest

from .conftest import REPO

_spec = importlib.util.spec_from_file_location("docs_figures", REPO / "scripts" / "docs_figures.py")
assert _spec is not None and _spec.loader is not None
docs_figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_figures)
training = docs_figures.training


def log(returns: list[float | None]) -> list[dict[str, object]]:
    """PPO log lines with these mean episode returns, 2,048 environment steps per update."""
    return [
        {"update": u, "mean_episode_return": r, "env_steps": 2048 * u}
        for u, r in enumerate(returns, start=1)
    ]


def test_spread_gives_the_range_and_the_mean_of_a_sweep() -> None:
    assert training.spread([0.91, 0.9, 0.92]) == "0.900-0.920 (mean 0.910)"
    assert training.spread([0.5], digits=1) == "0.5-0.5 (mean 0.5)"


def test_a_run_holding_500_every_second_update_is_summarised_as_such() -> None:
    summary = training.curve_summary(log([None, 500.0] * 15))
    assert summary == {
        "updates in which an episode ended": "15 of 30",
        "training returns (all updates)": "500",
        "first return": "500.0 (update 2)",
        "return at update 20": "500.0",
        "returns over the last 5 updates": "500.0-500.0 (mean 500.0, 3 with an episode)",
        "environment steps": "61,440",
    }


def test_a_learning_run_gives_its_first_its_20th_and_its_last_returns() -> None:
    returns = [20.0 + 10 * u for u in range(30)]
    summary = training.curve_summary(log(returns))
    assert summary["training returns (all updates)"] == "20.0-310.0"
    assert summary["first return"] == "20.0 (update 1)"
    assert summary["return at update 20"] == "210.0"
    assert (
        summary["returns over the last 5 updates"] == "270.0-310.0 (mean 290.0, 5 with an episode)"
    )


def test_an_update_without_a_finished_episode_is_said_so() -> None:
    summary = training.curve_summary(log([100.0] * 19 + [None] * 11))
    assert summary["return at update 20"] == "no episode ended"
    assert "returns over the last 5 updates" not in summary
    assert training.curve_summary(log([None, None])) == {"training returns": "no episode ended"}


def test_dips_name_every_update_below_the_maximum() -> None:
    assert training.dips(log([None, 500.0, None, 500.0])) == "none"
    assert training.dips(log([500.0, 488.6, None, 499.0])) == "488.6 at update 2, 499.0 at update 4"


def test_markdown_has_the_machine_then_one_heading_per_section() -> None:
    text = docs_figures.markdown(
        {"CPU": "x86_64"}, {"bc": {"accuracy": "0.904"}, "timings": {"import torch": "1.5 s"}}
    )
    assert text.splitlines() == [
        "## machine",
        "",
        "- CPU: x86_64",
        "",
        "## bc",
        "",
        "- accuracy: 0.904",
        "",
        "## timings (wall clock: varies between runs)",
        "",
        "- import torch: 1.5 s",
    ]


def test_differences_skip_the_timed_sections_and_the_sections_one_run_lacks() -> None:
    before = {"bc": {"a": "1", "b": "2"}, "timings": {"t": "1 s"}, "ablation": {"x": "1"}}
    after = {"bc": {"a": "1", "b": "3", "c": "4"}, "timings": {"t": "2 s"}}
    assert docs_figures.differences(before, after) == ["bc: b: 2 -> 3", "bc: c: None -> 4"]
    assert docs_figures.differences(before, before) == []


def test_the_two_routes_to_the_seed_0_bc_policy_must_agree() -> None:
    api = {"idle_v1 BC checkpoint, seed 0": "bc-4a693fb8a044"}
    same = {"mixed BC stage": "accuracy 0.9040, bc-4a693fb8a044"}
    other = {"mixed BC stage": "accuracy 0.9040, bc-db4e09209464"}
    assert docs_figures.cross_check({"bc": api, "curves": same}) == []
    assert docs_figures.cross_check({"bc": api}) == []
    [problem] = docs_figures.cross_check({"bc": api, "curves": other})
    assert "bc-4a693fb8a044" in problem and "bc-db4e09209464" in problem


def test_help_lists_the_sections_and_a_bad_repeat_count_is_refused() -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as help_exit:
        docs_figures.main(["--help"])
    assert help_exit.value.code == 0
    assert all(name in out.getvalue() for name in docs_figures.SECTIONS)
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as bad_exit:
        docs_figures.main(["--repeats", "0"])
    assert bad_exit.value.code == 2
    assert "--repeats must be at least 1" in err.getvalue()
