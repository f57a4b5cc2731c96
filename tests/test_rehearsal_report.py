"""The dataset report's parts without a session: the figures (byte-identical from the same
records) and the table of key numbers (rounded; saying what the smoke proves and no more)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from acceptance import figure_jobs, figures
from acceptance.junit import junit_properties
from acceptance.key_numbers import key_numbers
from harness.bundle import DatasetFiles

HISTORY = [
    {"epoch": e, "train_loss": 0.7 / e, "holdout_accuracy": min(0.5 + e / 20, 0.9)}
    for e in range(1, 11)
]


def bc_record(**changes: Any) -> dict[str, Any]:
    return {
        "mode": "bc",
        "run": "bc_trainer",
        "accuracy": 0.904,
        "threshold": 0.8,
        "majority_baseline": 0.5,
        "per_action_recall": {"0": 0.92, "1": 0.888, "2": None},
        "epoch_history": HISTORY,
        **changes,
    }


def ppo_record() -> dict[str, Any]:
    return {
        "mode": "ppo",
        "run": "anneal_smoke",
        "updates": 1,
        "eval_returns": [500.0, 480.0, 120.5],
        "baseline_returns": [500.0, 470.0, 130.0],
        "mean_return": 366.8,
        "baseline_mean_return": 366.7,
    }


def draw(root: Path, records: list[dict[str, Any]]) -> dict[str, bytes]:
    files = DatasetFiles(root, "d")
    drawn = figures.draw_training(files.figures, records)
    rows = [
        {"step": "bc_trainer", "title": "BC", "outcome": "passed", "duration_s": 2.5},
        {"step": "anneal_smoke", "title": "Smoke", "outcome": "failed", "duration_s": 0.5},
    ]
    wall_clock = figures.draw_wall_clock(
        files.figures, rows, {"anneal_smoke": {"cli_seconds": 3.0}}
    )
    return {p.name: p.read_bytes() for p in [*drawn, wall_clock]}


def test_the_same_records_give_byte_identical_figures(tmp_path: Path) -> None:
    records = [bc_record(), ppo_record()]
    first, second = draw(tmp_path / "a", records), draw(tmp_path / "b", records)
    assert sorted(first) == [
        "bc_per_action.svg",
        "bc_training.svg",
        "smoke_returns.svg",
        "wall_clock.svg",
    ]
    assert first == second
    assert b"<dc:date>" not in first["bc_training.svg"]
    # A different figure gives different bytes: the comparison above can fail.
    other = draw(tmp_path / "c", [bc_record(threshold=0.85), ppo_record()])
    assert other["bc_training.svg"] != first["bc_training.svg"]


def test_continuous_actions_get_their_error_per_dimension(tmp_path: Path) -> None:
    record = bc_record(mae_per_dimension=[0.031, 0.052], action_tolerance=0.05)
    del record["per_action_recall"]
    drawn = draw(tmp_path, [record])
    assert "smoke_returns.svg" not in drawn  # no smoke record: left out, not drawn empty
    assert b"dim 1" in drawn["bc_per_action.svg"]  # matplotlib keeps each text as a comment
    assert drawn["bc_per_action.svg"] != draw(tmp_path / "x", [bc_record()])["bc_per_action.svg"]


def summary(smoke: dict[str, Any]) -> dict[str, Any]:
    return {
        "metrics": {
            "bc_trainer": {
                "accuracy": 0.9040001,
                "threshold": 0.8,
                "baseline": 0.5,
                "baseline_rule": "majority_action",
                "per_action_recall": {"1": 0.888, "0": 0.92},
            },
            "anneal_smoke": smoke,
        },
        "durations": {"session_s": 7.53, "steps_s": 6.9, "baseline_s": 1.8},
    }


SMOKE = {
    "exit_code": 0,
    "loss_policy": -0.00115901,
    "loss_value": 383.33232,
    "entropy": 0.434826,
    "loss_bc": 0.52170747,
    "bc_coef_first": 1.0,
    "bc_coef_last": 1.0,
    "ppo_updates_logged": 1,
    "epoch_return": None,
    "epoch_episodes": 0,
    "mean_return": 229.8209759,
    "baseline_mean_return": 237.3206137,
}


def table(smoke: dict[str, Any]) -> str:
    return "\n".join(key_numbers(summary(smoke)))


def test_key_numbers_are_rounded_and_set_against_what_judges_them() -> None:
    text = table(SMOKE)
    assert "| BC hold-out accuracy (step 2) | **0.904** | threshold 0.800; baseline 0.500" in text
    assert "| 0: 0.920, 1: 0.888 |" in text
    assert "policy -0.001, value 383.3, entropy 0.435, BC term 0.522" in text
    assert "237.3 → 229.8" in text and "not that PPO improves on BC" in text
    assert "outline's 1.8 s baseline is the run time of the BC and anneal unit suites" in text
    assert "0.9040001" not in text and "383.33232" not in text


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({}, "1.000 → 1.000 | did not move: the smoke shows no anneal"),
        ({"bc_coef_last": 0.0}, "1.000 → 0.000 | moved within the smoke"),
        (
            {"bc_coef_last": 0.0, "ppo_updates_logged": 3, "critic_only_updates": 1},
            "(3 update(s) logged, 1 of them critic warm-up)",
        ),
        ({"epoch_return": 500.0, "epoch_episodes": 4}, "| 500.0 (4 episode(s)) |"),
        ({}, "| none: no training episode ended |"),
        ({"world_size": 2}, "| World size of the smoke | 2 |"),
    ],
)
def test_the_smoke_rows_say_what_the_ppo_log_shows(changes: dict[str, Any], said: str) -> None:
    assert said in table({**SMOKE, **changes})


def test_a_missing_figure_leaves_its_row_out() -> None:
    text = table({"exit_code": 3})
    assert "Anneal smoke exit code (step 3) | 3 |" in text
    assert "World size" not in text and "BC coefficient" not in text


def test_junit_properties_flatten_the_metrics_once() -> None:
    props = junit_properties(
        [
            ("rehearsal", {"dataset": "d", "step": "rollback_drill"}),
            ("metrics", {"threshold": 0.95}),
            ("metrics", {"threshold": 0.95, "exit_code": 3, "train": {"steps": 4}}),
            ("cause", {"key": "store_changed"}),
        ],
        "rehearsal",
    )
    assert props == [
        ("dataset", "d"),
        ("step", "rollback_drill"),
        ("cause", "store_changed"),
        ("metric.threshold", "0.95"),
        ("metric.exit_code", "3"),
        ("metric.train", '{"steps": 4}'),
    ]


def test_figures_drawn_in_threads_are_drawn_one_job_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With -n, a worker sends its figures of training as their records come in (step 2's, then
    the smoke's), each job to a thread: pyplot is not thread-safe, so the second waits for the
    first."""
    active, most, order = [0], [0], []
    guard = threading.Lock()

    def draw(job: str, *args: Any) -> None:
        with guard:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.05)  # long enough for a second thread to start meanwhile
        order.append(args[0])
        with guard:
            active[0] -= 1

    monkeypatch.setattr(figure_jobs, "_draw_here", draw)
    monkeypatch.setattr(figure_jobs, "_HELPER", [])
    monkeypatch.delenv(figure_jobs.FIGURES_ENV, raising=False)
    for k in range(3):
        figure_jobs.in_background("training", k)
    figure_jobs.wait()
    assert order == [0, 1, 2]
    assert most[0] == 1
