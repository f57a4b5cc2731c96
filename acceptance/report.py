"""A dataset's end-of-session bundle files: the filtered pytest JSON report, the figures,
``summary_<dataset>.json`` (schema ``harness/schemas/summary.schema.json``) and the
human-readable ``acceptance_report_<dataset>.md`` (``acceptance/report_render.py``). Written by
the controller only, each atomically.

Paths in the summary and the report are relative to the project folder (or to the bundle) when
they are inside it, so a bundle reads the same on every machine.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import socket
import subprocess
import time
from collections import Counter
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from acceptance import figure_jobs
from acceptance import figures as drawing
from acceptance.base_config import BaseConfig
from acceptance.bundle_writer import artefact_entries, write_tag_manifest
from acceptance.remedies import remedial_action
from acceptance.report_render import render
from acceptance.steps import STEP, Collected, Step
from harness.atomic import write_json_atomic, write_text_atomic
from harness.bundle import DatasetFiles, dataset_records
from harness.datasets.registry import DatasetRef
from harness.formatting import utc_now
from harness.validation import check

BASELINE_S = 1.8  # the outline's runtime baseline for the BC and anneal suites, in seconds


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(project: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(project), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@cache
def environment(project: Path) -> dict[str, Any]:
    """Versions (read from package metadata: the controller never imports torch), git, host."""
    commit = _git(project, "rev-parse", "HEAD")
    status = _git(project, "status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "python": platform.python_version(),
        "torch": _version("torch"),
        "gymnasium": _version("gymnasium"),
        "numpy": _version("numpy"),
        "h5py": _version("h5py"),
        "pytest": _version("pytest") or "unknown",
        "pytest_xdist": _version("pytest-xdist"),
        "pytest_json_report": _version("pytest-json-report"),
        "harness": _version("harness"),
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def _steps(steps: list[tuple[Step, Collected]], figures: dict[str, str]) -> list[dict[str, Any]]:
    """The summary's step rows; ``figures`` are what every remedial action may quote."""
    outcome = {step.key: seen.outcome for step, seen in steps}
    rows = []
    for step, seen in steps:
        # An aborted step names the earlier steps it needed that did not pass.
        aborted_by = ", ".join(
            STEP[need].title for need in step.needs if outcome.get(need) in ("failed", "error")
        )
        cause = seen.cause if seen.outcome == "failed" else None
        rows.append(
            {
                "step": step.key,
                "title": step.title,
                "test": seen.nodeid,
                "outcome": seen.outcome,
                "duration_s": round(seen.duration, 3) if seen.nodeid else None,
                "message": seen.message,
                "cause": cause["key"] if cause else None,
                "remedial_action": remedial_action(
                    step.key, seen.outcome, cause, {**figures, "run": step.key}, aborted_by
                ),
            }
        )
    return rows


def _pytest_report(json_report: dict[str, Any], nodeids: set[str]) -> dict[str, Any]:
    """The session's JSON report cut down to one dataset's tests (summary recounted)."""
    tests = [t for t in json_report.get("tests", []) if t.get("nodeid") in nodeids]
    counts = Counter(t.get("outcome", "unknown") for t in tests)
    return {
        **json_report,
        "summary": {**dict(sorted(counts.items())), "total": len(tests), "collected": len(tests)},
        "tests": tests,
    }


def _missing(files: DatasetFiles, steps: list[dict[str, Any]], json_report: Any) -> list[dict]:
    outcome = {s["step"]: (s["title"], s["outcome"]) for s in steps}

    def because(step: str) -> str:
        title, result = outcome[step]
        return f"not written: the {title} step {'was ' if result != 'failed' else ''}{result}"

    expected: list[tuple[Path, str]] = [
        (files.config, "not written: the dataset's set-up failed"),
        (files.rollback_config, "not written: the dataset's set-up failed"),
        (files.manifest, "not copied: the dataset's set-up failed"),
        (files.checksums, "not copied: the dataset's set-up failed"),
        (files.ppo_log, because("anneal_smoke")),
        (files.run("bc_trainer") / "logs/anneal_results.json", because("bc_trainer")),
        (files.run("anneal_smoke") / "logs/anneal_results.json", because("anneal_smoke")),
        (files.run("rollback_drill") / "logs/anneal_results.json", because("rollback_drill")),
    ]
    if json_report is None:
        expected.append((files.pytest_report, "pytest-json-report is not installed"))
    return [
        {"path": path.relative_to(files.root).as_posix(), "why": why}
        for path, why in expected
        if not path.is_file()
    ]


def write_bundle(
    files: DatasetFiles,
    ref: DatasetRef,
    arg: str,
    *,
    project: Path,
    base: BaseConfig | None,
    steps: list[tuple[Step, Collected]],
    json_report: dict[str, Any] | None,
    session_s: float,
    started_at: str,
    pytest_info: dict[str, Any],
) -> dict[str, Any]:
    """Write the dataset's pytest JSON report, report and summary; return the summary."""
    name = files.dataset
    files.root.mkdir(parents=True, exist_ok=True)
    if json_report is not None:
        nodeids = {seen.nodeid for _, seen in steps if seen.nodeid}
        # default=str, as pytest-json-report itself saves values JSON has no type for.
        text = json.dumps(_pytest_report(json_report, nodeids), indent=2, default=str)
        write_text_atomic(files.pytest_report, text + "\n")
    base_text = shown_path(base.path, project) if base else "(none: the manifest could not be read)"
    figures = {"name": name, "arg": arg, "base": base_text, "options": _rerun_options(pytest_info)}
    step_rows = _steps(steps, figures)
    summary: dict[str, Any] = {
        "schema_version": 1,
        "dataset": name,
        "manifest": shown_path(ref.manifest, project),
        "checksums": shown_path(ref.checksums, project),
        "base_config": {**base.to_json(), "path": shown_path(base.path, project)} if base else None,
        "passed": all(row["outcome"] == "passed" for row in step_rows),
        "started_at": started_at,
        "finished_at": utc_now(),
        "durations": {
            "session_s": round(session_s, 3),
            "steps_s": round(sum(row["duration_s"] or 0.0 for row in step_rows), 3),
            "baseline_s": BASELINE_S,
            "figures_s": 0.0,
        },
        "steps": step_rows,
        "metrics": {step.key: seen.metrics for step, seen in steps if seen.metrics},
        "artefacts": [],
        "missing": [],
        "environment": environment(project),
        "pytest": pytest_info,
    }
    summary["missing"] = _missing(files, step_rows, json_report)
    summary["durations"]["figures_s"], trouble = _draw_figures(files, step_rows, summary["metrics"])
    shown = {"project": project, "bundle": files.root}
    report = render(summary, artefact_entries(files.root, name), shown, trouble)
    write_text_atomic(files.report, report)
    summary["artefacts"] = artefact_entries(files.root, name)
    check(summary, "summary", files.summary)
    write_json_atomic(files.summary, summary)
    write_tag_manifest(files)  # last: it pins the summary and the report
    return summary


def _draw_figures(
    files: DatasetFiles, rows: list[dict[str, Any]], metrics: dict[str, Any]
) -> tuple[float, str | None]:
    """What the worker did not draw (all of it, with -n), then the wall-clock figure; the
    seconds it took here, and why a figure could not be drawn (None when all were)."""
    started, trouble = time.perf_counter(), None
    if not figure_jobs.enabled():
        return 0.0, None
    try:
        figure_jobs.wait()
        if not all(files.figure(name).is_file() for name in drawing.TRAINING):
            records = dataset_records(files.root, files.dataset)
            figure_jobs.now("training", files.figures, records)
        figure_jobs.now("wall_clock", files.figures, rows, metrics)
    except Exception as exc:  # a figure is no reason to lose the summary: the report says why
        trouble = f"{type(exc).__name__}: {exc}"
    return round(time.perf_counter() - started, 3), trouble


def shown_path(path: Path, project: Path) -> str:
    """``path`` relative to the project folder when inside it, else absolute (posix)."""
    real = path.resolve()
    return real.relative_to(project).as_posix() if real.is_relative_to(project) else str(real)


RERUN_OPTIONS = (
    "--base-config",
    "--drill-threshold",
    "--bundle",
    "--launcher",
    "--nproc-per-node",
)


def _rerun_options(pytest_info: dict[str, Any]) -> str:
    """The session's options a rerun must repeat to rehearse the same thing, as typed."""
    args, kept = list(pytest_info.get("args", [])), []
    for i, arg in enumerate(args):
        if arg in RERUN_OPTIONS and i + 1 < len(args):
            kept.append(f"{arg}={args[i + 1]}")
        elif arg.startswith(tuple(f"{o}=" for o in RERUN_OPTIONS)):
            kept.append(arg)
    return "".join(f" {shlex.quote(k)}" for k in kept)
