"""The report's figures, ``figures/<dataset>/*.svg`` in the bundle, drawn with matplotlib through
``harness/svgfigure.py`` (fixed ``svg.hashsalt``, no date: the same figures give the same bytes).

- ``bc_training``: step 2's BC training loss and hold-out accuracy per epoch, with the gate's
  threshold and the baseline;
- ``bc_per_action``: step 2's hold-out recall per action (discrete) or mean absolute error per
  action dimension, as a fraction of its range (continuous);
- ``smoke_returns``: the anneal smoke's evaluation returns, the BC checkpoint against the
  fine-tuned one, on the same seeded episodes;
- ``wall_clock``: each step's wall-clock and the CLI runs' own (the one figure that differs from
  run to run: it is byte-identical only when redrawn from the same summary).

The figures of training are drawn from the run log's records, so they depend on the seeded runs
only. A figure whose data are missing is left out, not drawn empty. Where and when they are
drawn, off the rehearsal's critical path, is ``acceptance/figure_jobs.py``'s business.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.svgfigure import pyplot, save_svg

WIDTH, HEIGHT = 6.4, 3.2  # inches: readable inline in a Markdown report
# Each function takes the dataset's figures folder (``DatasetFiles.figures``) and plain data, and
# this module imports nothing of the harness but ``svgfigure``: the figure helper
# (``acceptance/figure_helper.py``) starts fast and is given its work as JSON.


TRAINING = ("bc_training", "bc_per_action", "smoke_returns")  # drawn by draw_training


def _plt() -> Any:
    return pyplot()


def draw_training(folder: Path, records: list[dict[str, Any]]) -> list[Path]:
    """The figures of step 2's BC run and of the smoke, from the dataset's run log records;
    those on disk already (drawn while the worker waited) are left as they are."""
    bc = _last(records, "bc_trainer", "bc")
    ppo = _last(records, "anneal_smoke", "ppo")
    wanted = {
        "bc_training": (_bc_training, bc if bc and bc.get("epoch_history") else None),
        "bc_per_action": (
            _bc_per_action,
            bc if bc and (bc.get("per_action_recall") or bc.get("mae_per_dimension")) else None,
        ),
        "smoke_returns": (_smoke_returns, ppo if ppo and ppo.get("baseline_returns") else None),
    }
    drawn = []
    for name, (draw, record) in wanted.items():
        path = folder / f"{name}.svg"
        if record is not None and not path.is_file():
            draw(path, record)
        if path.is_file():
            drawn.append(path)
    return drawn


def _last(records: list[dict[str, Any]], run: str, mode: str) -> dict[str, Any] | None:
    mine = [r for r in records if r.get("run") == run and r.get("mode") == mode]
    return mine[-1] if mine else None


def _bc_training(path: Path, bc: dict[str, Any]) -> Path:
    plt = _plt()
    history = bc["epoch_history"]
    epochs = [e["epoch"] for e in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(WIDTH, HEIGHT))
    loss_ax.plot(epochs, [e["train_loss"] for e in history], color="tab:blue")
    loss_ax.set(title="BC training loss", xlabel="epoch", ylabel="mean loss")
    acc_ax.plot(
        epochs, [e["holdout_accuracy"] for e in history], color="tab:green", label="hold-out"
    )
    acc_ax.axhline(bc["threshold"], color="tab:red", linestyle="--", label="gate threshold")
    baseline = bc.get("majority_baseline", bc.get("mean_action_baseline"))
    if baseline is not None:
        acc_ax.axhline(baseline, color="grey", linestyle=":", label="baseline")
    acc_ax.set(title="BC hold-out accuracy", xlabel="epoch", ylim=(0, 1.02))
    acc_ax.legend(loc="lower right", fontsize="small")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_svg(fig, path, tight=False)
    return path


def _bc_per_action(path: Path, bc: dict[str, Any]) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    if bc.get("per_action_recall"):
        recall = bc["per_action_recall"]
        labels = sorted(recall, key=int)
        values = [recall[a] if recall[a] is not None else 0.0 for a in labels]
        bars = ax.bar([f"action {a}" for a in labels], values, color="tab:green")
        ax.axhline(bc["accuracy"], color="tab:green", linestyle=":", label="overall accuracy")
        ax.axhline(
            bc["threshold"], color="tab:red", linestyle="--", label="gate threshold (on overall)"
        )
        ax.set(title="BC hold-out recall per action", ylabel="recall", ylim=(0, 1.05))
        texts = ["n/a" if recall[a] is None else f"{recall[a]:.3f}" for a in labels]
    else:
        errors = bc["mae_per_dimension"]
        bars = ax.bar([f"dim {i}" for i in range(len(errors))], errors, color="tab:orange")
        ax.axhline(
            bc["action_tolerance"], color="tab:red", linestyle="--", label="action tolerance"
        )
        ax.set(title="BC hold-out mean absolute error per dimension", ylabel="fraction of range")
        texts = [f"{e:.3f}" for e in errors]
    ax.bar_label(bars, texts, fontsize="small")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_svg(fig, path, tight=False)
    return path


def _smoke_returns(path: Path, ppo: dict[str, Any]) -> Path:
    plt = _plt()
    bc, tuned = ppo["baseline_returns"], ppo["eval_returns"]
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    width = 0.4
    xs = range(1, len(tuned) + 1)
    before = f"BC checkpoint (mean {ppo['baseline_mean_return']:.1f})"
    after = f"after PPO (mean {ppo['mean_return']:.1f})"
    ax.bar([x - width / 2 for x in xs], bc, width, label=before, color="tab:blue")
    ax.bar([x + width / 2 for x in xs], tuned, width, label=after, color="tab:purple")
    updates = f"{ppo['updates']} PPO update{'s' if ppo['updates'] != 1 else ''}"
    ax.set(
        title=f"Anneal smoke: evaluation returns ({updates})",
        xlabel="evaluation episode (same seeds for both)",
        ylabel="return",
        xticks=list(xs),
    )
    # Beside the axes, not over bars that may reach the top.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_svg(fig, path, tight=False)
    return path


def draw_wall_clock(folder: Path, rows: list[dict[str, Any]], metrics: dict) -> Path:
    """Each step's wall-clock (the summary's rows), and the CLI runs' own, which overlap them."""
    plt = _plt()
    labels, seconds, colours = [], [], []
    for row in rows:
        labels.append(row["title"])
        seconds.append(row["duration_s"] or 0.0)
        colours.append("tab:blue" if row["outcome"] == "passed" else "tab:red")
        cli = metrics.get(row["step"], {}).get("cli_seconds")
        if cli is not None:
            labels.append("  its CLI run (from start, overlapping)")
            seconds.append(cli)
            colours.append("tab:grey")
    fig, ax = plt.subplots(figsize=(WIDTH, 0.45 * len(labels) + 0.9))
    ys = list(range(len(labels)))[::-1]
    bars = ax.barh(ys, seconds, color=colours)
    ax.bar_label(bars, [f"{s:.2f} s" for s in seconds], fontsize="small", padding=2)
    ax.set_yticks(ys, labels)
    ax.set(title="Wall-clock per step", xlabel="seconds")
    ax.set_xlim(0, max([*seconds, 0.1]) * 1.2)
    ax.grid(axis="x", alpha=0.3)
    # No tight_layout: one axes, and save_svg's tight bounding box already fits the labels;
    # drawn at the session's end, its text layouts are most of what this figure costs.
    save_svg(fig, folder / "wall_clock.svg")
    return folder / "wall_clock.svg"
