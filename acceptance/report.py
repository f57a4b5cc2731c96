"""A dataset's end-of-session bundle files: the filtered pytest JSON report, the human-readable
``acceptance_report_<dataset>.md`` and ``summary_<dataset>.json`` (schema
``harness/schemas/summary.schema.json``). Written by the controller only, each atomically.

Wall-clock figures are shown against the outline's runtime baseline as information: the
rehearsal never gates on time (the machines are shared and noisy).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import socket
import subprocess
from collections import Counter
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from acceptance.base_config import BaseConfig
from acceptance.bundle_writer import artefact_entries, write_tag_manifest
from acceptance.remedies import cause_title, remedial_action
from acceptance.steps import STEP, Collected, Step
from harness.atomic import dumps_json, write_json_atomic, write_text_atomic
from harness.bundle import RUN_LOG, DatasetFiles
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
    base_text = str(base.path) if base else "(none: the manifest could not be read)"
    figures = {"name": name, "arg": arg, "base": base_text, "options": _rerun_options(pytest_info)}
    step_rows = _steps(steps, figures)
    summary: dict[str, Any] = {
        "schema_version": 1,
        "dataset": name,
        "manifest": str(ref.manifest.resolve()),
        "checksums": str(ref.checksums.resolve()),
        "base_config": base.to_json() if base else None,
        "passed": all(row["outcome"] == "passed" for row in step_rows),
        "started_at": started_at,
        "finished_at": utc_now(),
        "durations": {
            "session_s": round(session_s, 3),
            "steps_s": round(sum(row["duration_s"] or 0.0 for row in step_rows), 3),
            "baseline_s": BASELINE_S,
        },
        "steps": step_rows,
        "metrics": {step.key: seen.metrics for step, seen in steps if seen.metrics},
        "artefacts": [],
        "missing": [],
        "environment": environment(project),
        "pytest": pytest_info,
    }
    summary["missing"] = _missing(files, step_rows, json_report)
    write_text_atomic(files.report, render(summary, artefact_entries(files.root, name), files))
    summary["artefacts"] = artefact_entries(files.root, name)
    check(summary, "summary", files.summary)
    write_json_atomic(files.summary, summary)
    write_tag_manifest(files)  # last: it pins the summary and the report
    return summary


RERUN_OPTIONS = ("--base-config", "--drill-threshold", "--bundle")


def _rerun_options(pytest_info: dict[str, Any]) -> str:
    """The session's options a rerun must repeat to rehearse the same thing, as typed."""
    args, kept = list(pytest_info.get("args", [])), []
    for i, arg in enumerate(args):
        if arg in RERUN_OPTIONS and i + 1 < len(args):
            kept.append(f"{arg}={args[i + 1]}")
        elif arg.startswith(tuple(f"{o}=" for o in RERUN_OPTIONS)):
            kept.append(arg)
    return "".join(f" {shlex.quote(k)}" for k in kept)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def render(summary: dict[str, Any], artefacts: list[dict[str, Any]], files: DatasetFiles) -> str:
    """The human-readable report: verdict, steps against the baseline, failures and what to
    do, metrics, artefact paths. Every section but the last ends with a blank line."""
    lines = [
        *_header_section(summary, files),
        *_steps_section(summary),
        *_failures_section(summary),
        *_missing_section(summary),
        *_metrics_section(summary),
        *_artefacts_section(artefacts, files),
    ]
    return "\n".join(lines) + "\n"


def _header_section(summary: dict[str, Any], files: DatasetFiles) -> list[str]:
    """The verdict, where and with what the rehearsal ran, and what it read."""
    env = summary["environment"]
    verdict = "PASSED" if summary["passed"] else "FAILED"
    commit = (env["git_commit"] or "not a git checkout")[:12]
    if env["git_dirty"]:
        commit += " (with uncommitted changes)"
    return [
        f"# Acceptance report: {summary['dataset']}: {verdict}",
        "",
        f"Phase 5.4 ops rehearsal, {summary['finished_at']}; commit {commit}; host "
        f"{env['host']}; Python {env['python']}, PyTorch {env['torch']}, Gymnasium "
        f"{env['gymnasium']}.",
        "",
        f"- Manifest: `{summary['manifest']}`",
        f"- Checksum sheet: `{summary['checksums']}`",
        f"- Base config: {_base_line(summary.get('base_config'))}",
        *_drill_lines(summary["metrics"].get("rollback_drill", {})),
        f"- Bundle: `{files.root}`",
        "",
    ]


def _base_line(base: dict[str, str] | None) -> str:
    if base is None:
        return "none (the manifest could not be read)"
    why = BaseConfig(Path(base["path"]), base["chosen_by"]).why
    return f"`{base['path']}` ({why}); the environment is the manifest's"


def _drill_lines(drill: dict[str, Any]) -> list[str]:
    """The rollback drill's threshold: asked, used, and why (once the drill set it)."""
    if "threshold_asked" not in drill:
        return []
    used = drill["threshold"]
    shown = "none" if used is None else f"{used:g}"
    raised = " (raised)" if drill["threshold_raised"] else ""
    return [
        f"- Rollback drill threshold: asked {drill['threshold_asked']:g}, used {shown}{raised}: "
        f"{drill['threshold_why']}."
    ]


def _steps_section(summary: dict[str, Any]) -> list[str]:
    """The steps' outcomes and wall-clock, and the session against the baseline."""
    durations = summary["durations"]
    lines = ["## Steps", "", "| # | step | outcome | wall-clock |", "| --- | --- | --- | --- |"]
    for number, row in enumerate(summary["steps"], 1):
        outcome = row["outcome"] if row["outcome"] == "passed" else f"**{row['outcome'].upper()}**"
        lines.append(f"| {number} | {row['title']} | {outcome} | {_seconds(row['duration_s'])} |")
    ratio = durations["session_s"] / durations["baseline_s"]
    return [
        *lines,
        "",
        f"Wall-clock: this dataset's steps {_seconds(durations['steps_s'])}, the whole session "
        f"{_seconds(durations['session_s'])} ({summary['pytest']['workers'] or 'no'} xdist "
        f"workers), against the outline's baseline of {durations['baseline_s']:g} s for the BC "
        f"and anneal suites: {ratio:.1f}x. Information only; the rehearsal never gates on time.",
        "",
    ]


def _failures_section(summary: dict[str, Any]) -> list[str]:
    """Each step that did not pass, its message and remedial action (nothing when all passed)."""
    problems = [row for row in summary["steps"] if row["outcome"] != "passed"]
    if not problems:
        return []
    lines = ["## What failed and what to do", ""]
    for row in problems:
        message = row["message"] or "-"
        if not message.startswith(row["outcome"]):
            message = f"{row['outcome']}: {message}"
        lines.append(f"- **{row['title']}**: {message}")
        title = cause_title({"key": row.get("cause")})
        if title:
            lines.append(f"  - Cause: {title}.")
        lines.append(f"  - Remedial action: {row['remedial_action']}")
    return [*lines, ""]


def _missing_section(summary: dict[str, Any]) -> list[str]:
    if not summary["missing"]:
        return []
    return [
        "## Missing artefacts",
        "",
        *(f"- `{m['path']}`: {m['why']}" for m in summary["missing"]),
        "",
    ]


def _metrics_section(summary: dict[str, Any]) -> list[str]:
    lines = ["## Metrics", ""]
    for step, metrics in summary["metrics"].items():
        shown = ", ".join(f"{k} `{_short(v)}`" for k, v in metrics.items())
        lines.append(f"- {step}: {shown}")
    return [*lines, ""]


def _artefacts_section(artefacts: list[dict[str, Any]], files: DatasetFiles) -> list[str]:
    """The artefacts' paths; their digests are in the summary, listed last."""
    lines = [
        "## Artefacts",
        "",
        f"Paths relative to the bundle; sha256 and sizes are in `{files.summary.name}`, whose "
        f"own sha256 and this report's are in `{files.tag_manifest.name}` (check them later "
        f"with `harness bundle verify {files.root}`).",
        "",
    ]
    for entry in artefacts:
        what = (
            f" (this dataset's records, {entry['bytes']} bytes)" if entry["path"] == RUN_LOG else ""
        )
        lines.append(f"- `{entry['path']}`{what}")
    return [*lines, f"- `{files.summary.name}`", f"- `{files.tag_manifest.name}`"]


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else dumps_json(value).replace("\n", " ")
    text = " ".join(text.split())
    return text if len(text) <= 160 else text[:157] + "..."
