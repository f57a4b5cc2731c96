"""``acceptance_report_<dataset>.md``: one dataset's report, for the person who decides.

The verdict comes first and, when the dataset failed, what to do; then one table of the numbers
that decide, rounded to what matters (``acceptance/key_numbers.py``); the figures; the steps;
the commands in full; where and with what it ran; the artefacts. Paths are relative to the
bundle, or to the project folder the commands run from. Every figure in the summary is in
``summary_<dataset>.json``; the report does not repeat them all.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from acceptance.base_config import BaseConfig
from acceptance.key_numbers import key_numbers
from acceptance.remedies import cause_title
from harness.bundle import RUN_LOG, DatasetFiles

FIGURES = (
    ("bc_training", "BC training loss and hold-out accuracy per epoch (step 2)"),
    ("bc_per_action", "BC hold-out recall per action, or error per action dimension (step 2)"),
    ("smoke_returns", "Evaluation returns of the BC checkpoint and after PPO (step 3)"),
    ("wall_clock", "Wall-clock of each step and of the CLI runs"),
)


def render(
    summary: dict[str, Any],
    artefacts: list[dict[str, Any]],
    where: dict[str, Path],
    figures_trouble: str | None = None,
) -> str:
    """The report; ``where``: ``project`` and ``bundle`` folders, for relative paths;
    ``figures_trouble``: why the figures could not all be drawn, if so."""
    files = DatasetFiles(where["bundle"], summary["dataset"])
    lines = [
        *_verdict_section(summary),
        *_remedies_section(summary),
        *key_numbers(summary),
        *_figures_section(files, figures_trouble),
        *_steps_section(summary),
        *_commands_section(summary, where),
        *_context_section(summary, files, where),
        *_missing_section(summary),
        *_artefacts_section(artefacts, files),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def _verdict_section(summary: dict[str, Any]) -> list[str]:
    name = summary["dataset"]
    if summary["passed"]:
        return [
            f"# {name}: PASSED",
            "",
            f"**PASSED**: all five steps of the Phase 5.4 ops rehearsal passed on {name}.",
            "",
        ]
    bad = [r for r in summary["steps"] if r["outcome"] not in ("passed", "aborted")]
    shown = ", ".join(f"{r['title']} {r['outcome']}" for r in bad) or "not every step passed"
    aborted = sum(r["outcome"] == "aborted" for r in summary["steps"])
    if aborted:
        shown += f" ({aborted} later step{'s' if aborted != 1 else ''} aborted)"
    return [
        f"# {name}: FAILED",
        "",
        f"**FAILED**: {shown}. Do not proceed with Phase 5.4 on {name}.",
        "",
    ]


def _remedies_section(summary: dict[str, Any]) -> list[str]:
    """Each step that did not pass: what happened and what to do (nothing when all passed)."""
    problems = [row for row in summary["steps"] if row["outcome"] != "passed"]
    if not problems:
        return []
    # Steps with the same message and action (those one failure aborted) share one entry.
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in problems:
        key = (row["outcome"], row["message"], row.get("cause"), row["remedial_action"])
        groups.setdefault(key, []).append(row)
    lines = ["## What to do", ""]
    for (outcome, message, cause, action), rows in groups.items():
        message = message or "-"
        if not message.startswith(outcome):
            message = f"{outcome}: {message}"
        lines.append(f"- **{', '.join(r['title'] for r in rows)}**: {message}")
        title = cause_title({"key": cause})
        if title:
            lines.append(f"  - Cause: {title}.")
        lines.append(f"  - Remedial action: {action}")
    return [*lines, ""]


def _figures_section(files: DatasetFiles, trouble: str | None) -> list[str]:
    shown = [(n, what) for n, what in FIGURES if files.figure(n).is_file()]
    if not shown and not trouble:
        return []
    lines = ["## Figures", ""]
    if trouble:
        lines += [f"Not every figure could be drawn: {trouble}", ""]
    for name, what in shown:
        rel = files.figure(name).relative_to(files.root).as_posix()
        lines += [f"{what}:", "", f"![{what}]({rel})", ""]
    return lines


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _steps_section(summary: dict[str, Any]) -> list[str]:
    lines = ["## Steps", "", "| # | step | outcome | wall-clock |", "| --- | --- | --- | --- |"]
    for number, row in enumerate(summary["steps"], 1):
        outcome = row["outcome"] if row["outcome"] == "passed" else f"**{row['outcome'].upper()}**"
        lines.append(f"| {number} | {row['title']} | {outcome} | {_seconds(row['duration_s'])} |")
    return [*lines, ""]


def _commands_section(summary: dict[str, Any], where: dict[str, Path]) -> list[str]:
    """The CLI runs' commands and the rerun, in full, as run from the project folder."""
    lines = ["## Commands", "", "From the project folder. The rehearsal of this dataset alone:", ""]
    lines += ["```sh", _rerun(summary, where), "```", ""]
    for step, title in (
        ("anneal_smoke", "Step 3, the anneal smoke"),
        ("rollback_drill", "Step 4, the rollback drill"),
    ):
        command = summary["metrics"].get(step, {}).get("command")
        if command:
            lines += [f"{title}:", "", "```sh", _relative_command(command, where), "```", ""]
    return lines


def _rerun(summary: dict[str, Any], where: dict[str, Path]) -> str:
    args = summary["pytest"]["args"]
    options = [a for a in args if a.startswith(("--base-config", "--drill-threshold", "--bundle"))]
    dataset = summary["manifest"] if "/" in _dataset_arg(args) else summary["dataset"]
    return shlex.join(
        ["pytest", "acceptance/", "-m", "rehearsal", f"--dataset={dataset}", *options]
    )


def _dataset_arg(args: list[str]) -> str:
    return next((a.split("=", 1)[1] for a in args if a.startswith("--dataset=")), "")


def _relative_command(command: str, where: dict[str, Path]) -> str:
    """A CLI run's command with the interpreter as ``python`` and paths as seen from the project."""
    words = []
    for word in shlex.split(command):
        if word == sys.executable or os.path.basename(word).startswith("python"):
            words.append("python")
        else:
            words.append(_relative(word, where["project"]))
    return shlex.join(words)


def _relative(text: str, project: Path) -> str:
    path = Path(text)
    if path.is_absolute() and path.resolve().is_relative_to(project):
        return path.resolve().relative_to(project).as_posix()
    return text


def _context_section(
    summary: dict[str, Any], files: DatasetFiles, where: dict[str, Path]
) -> list[str]:
    """When, where, with what, and what the rehearsal read."""
    env = summary["environment"]
    commit = (env["git_commit"] or "not a git checkout")[:12]
    if env["git_dirty"]:
        commit += " (with uncommitted changes)"
    base = summary.get("base_config")
    base_text = "none (the manifest could not be read)"
    if base:
        why = BaseConfig(Path(base["path"]), base["chosen_by"]).why
        base_text = f"`{base['path']}` ({why}); the environment is the manifest's"
    bundle = _relative(str(files.root), where["project"])
    return [
        "## Where and with what",
        "",
        f"- Finished {summary['finished_at']}; commit {commit}; host {env['host']}; Python "
        f"{env['python']}, PyTorch {env['torch']}, Gymnasium {env['gymnasium']}.",
        f"- Manifest `{summary['manifest']}`, checksum sheet `{summary['checksums']}`.",
        f"- Base config: {base_text}.",
        f"- Bundle `{bundle}`; check it later with `harness bundle verify {bundle}`.",
        "",
    ]


def _missing_section(summary: dict[str, Any]) -> list[str]:
    if not summary["missing"]:
        return []
    return [
        "## Missing artefacts",
        "",
        *(f"- `{m['path']}`: {m['why']}" for m in summary["missing"]),
        "",
    ]


RUN_TITLES = {
    "bc_trainer": "step 2, in-process",
    "anneal_smoke": "step 3, CLI",
    "rollback_drill": "step 4, CLI",
}


def _artefacts_section(artefacts: list[dict[str, Any]], files: DatasetFiles) -> list[str]:
    """The artefacts, by folder; their digests are in the summary."""
    lines = [
        "## Artefacts",
        "",
        f"Paths relative to the bundle. Their sha256 and sizes are in "
        f"[{files.summary.name}]({files.summary.name}), whose own sha256 and this report's are in "
        f"`{files.tag_manifest.name}`.",
        "",
    ]
    top = [e for e in artefacts if "/" not in e["path"]]
    top_names = [e["path"] for e in top] + [files.summary.name, files.tag_manifest.name]
    lines.append("- " + ", ".join(f"`{n}`" for n in sorted(top_names)))
    for entry in artefacts:
        if entry["path"] == RUN_LOG:
            lines.append(f"- `{RUN_LOG}`: this dataset's records ({entry['bytes']} bytes)")
    runs = files.runs.relative_to(files.root).as_posix()
    for run, title in RUN_TITLES.items():
        mine = [e["path"] for e in artefacts if e["path"].startswith(f"{runs}/{run}/")]
        if mine:
            inner = ", ".join(f"`{p.removeprefix(f'{runs}/{run}/')}`" for p in mine)
            lines.append(f"- `{runs}/{run}/` ({title}): {inner}")
    figs = files.figures.relative_to(files.root).as_posix()
    mine = [e["path"] for e in artefacts if e["path"].startswith(f"{figs}/")]
    if mine:
        lines.append(f"- `{figs}/`: " + ", ".join(f"`{p.removeprefix(figs + '/')}`" for p in mine))
    return lines
