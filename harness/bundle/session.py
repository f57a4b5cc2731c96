"""The session files at the bundle's root: one verdict for the last rehearsal session.

``acceptance.json`` (schema ``harness/schemas/session.schema.json``) says which datasets the last
session rehearsed, each one's verdict and files, and the session's own verdict: passed only when
every step of every one of them passed. Datasets that earlier sessions left in the bundle are
listed apart, as *stale*, with the date and commit of their own session: they are not part of
the verdict. ``acceptance_report.md`` says the same for people; ``tagmanifest.txt`` pins both
(``sha256sum`` format), and ``acceptance.json`` pins each listed summary by its sha256, so
``harness bundle verify`` ties the verdict to the summaries it was drawn from.

The rehearsal writes them last (``acceptance/session_files.py``); ``harness bundle clear``
rewrites them without the datasets it removed. Both hold ``session_lock`` around the change.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from harness.atomic import write_json_atomic, write_text_atomic
from harness.bundle.layout import (
    SESSION_JSON,
    SESSION_REPORT,
    SESSION_TAG_MANIFEST,
    DatasetFiles,
    summary_dataset,
)
from harness.errors import HarnessError
from harness.hashing import sha256_file
from harness.validation import check, load_json

SCHEMA = "session"


def verdict(passed: bool) -> str:
    return "PASSED" if passed else "FAILED"


def dataset_entry(root: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """A dataset of the session, as ``acceptance.json`` lists it (its summary written)."""
    files = DatasetFiles(root, summary["dataset"])
    return {
        "dataset": summary["dataset"],
        "passed": summary["passed"],
        "not_passed": [
            f"{s['title']} {s['outcome']}" for s in summary["steps"] if s["outcome"] != "passed"
        ],
        "report": files.report.name,
        "summary": files.summary.name,
        "summary_sha256": sha256_file(files.summary).sha256,
        "finished_at": summary["finished_at"],
        "git_commit": summary["environment"]["git_commit"],
    }


def stale_entries(root: Path, current: set[str]) -> list[dict[str, Any]]:
    """The summaries in the bundle of datasets the session did not rehearse: stale."""
    entries = []
    for path in sorted(root.glob("summary_*.json")):
        name = summary_dataset(path)
        if name in current:
            continue
        try:
            summary = load_json(path, "summary")
            check(summary, "summary", path)
        except HarnessError:  # unreadable: verify reports why; listed all the same
            entries.append({"dataset": name, "unreadable": True, "summary": path.name})
            continue
        entries.append(dataset_entry(root, summary))
    return entries


def write_session(root: Path, doc: dict[str, Any]) -> None:
    """Validate and write ``acceptance.json`` and its report, then the tag manifest that pins
    both (last)."""
    check(doc, SCHEMA, root / SESSION_JSON)
    write_json_atomic(root / SESSION_JSON, doc)
    write_text_atomic(root / SESSION_REPORT, render(doc))
    lines = [f"{sha256_file(root / n).sha256}  {n}\n" for n in (SESSION_JSON, SESSION_REPORT)]
    write_text_atomic(root / SESSION_TAG_MANIFEST, "".join(lines))


def load_session(root: Path) -> dict[str, Any] | None:
    """``acceptance.json``, checked against its schema; None when the bundle has none."""
    path = root / SESSION_JSON
    if not path.exists():
        return None
    doc = load_json(path, "session file")
    check(doc, SCHEMA, path)
    return doc


def remove_datasets(root: Path, names: set[str], when: str) -> dict[str, Any] | None:
    """Rewrite the session files without ``names`` (``harness bundle clear``): a stale one is
    dropped; one of the session's own moves to ``cleared``, and still counts in the verdict,
    which was drawn with it. Returns the new document (None when the bundle has none)."""
    doc = load_session(root)
    if doc is None:
        return None
    doc["stale"] = [e for e in doc["stale"] if e["dataset"] not in names]
    gone = [e for e in doc["datasets"] if e["dataset"] in names]
    doc["datasets"] = [e for e in doc["datasets"] if e["dataset"] not in names]
    doc["cleared"] = [
        *doc["cleared"],
        *({"dataset": e["dataset"], "passed": e["passed"], "cleared_at": when} for e in gone),
    ]
    write_session(root, doc)
    return doc


# --- the report ---------------------------------------------------------------------------------


def render(doc: dict[str, Any]) -> str:
    """``acceptance_report.md``: the verdict first, then each dataset, the session, stale ones."""
    lines = [
        f"# Phase 5.4 ops rehearsal: {verdict(doc['passed'])}",
        "",
        _verdict_line(doc),
        "",
        "| dataset | verdict | steps that did not pass | report |",
        "| --- | --- | --- | --- |",
    ]
    for entry in doc["datasets"]:
        lines.append(
            f"| {entry['dataset']} | {_bold_failed(entry['passed'])} | "
            f"{', '.join(entry['not_passed']) or '-'} | [{entry['report']}]({entry['report']}) |"
        )
    for entry in doc["cleared"]:
        lines.append(
            f"| {entry['dataset']} | {_bold_failed(entry['passed'])} | files cleared "
            f"{entry['cleared_at']} | - |"
        )
    lines += ["", *_session_lines(doc), *_stale_lines(doc["stale"])]
    return "\n".join(lines).rstrip("\n") + "\n"


def _bold_failed(passed: bool) -> str:
    return "PASSED" if passed else "**FAILED**"


def _verdict_line(doc: dict[str, Any]) -> str:
    names = [e["dataset"] for e in (*doc["datasets"], *doc["cleared"])]
    count = f"{len(names)} dataset{'s' if len(names) != 1 else ''}"
    if doc["passed"]:
        return f"**PASSED**: every step of the {count} of this session passed."
    failed = [e["dataset"] for e in (*doc["datasets"], *doc["cleared"]) if not e["passed"]]
    return (
        f"**FAILED**: {', '.join(failed)} did not pass ({count} in this session). Do not proceed "
        "with Phase 5.4: each failed dataset's report starts with what to do."
    )


def _session_lines(doc: dict[str, Any]) -> list[str]:
    commit = doc["git_commit"] or "not a git checkout"
    if doc["git_dirty"]:
        commit += " (with uncommitted changes)"
    workers = f"on {doc['workers']} pytest-xdist workers" if doc["workers"] else "in one process"
    return [
        "## The session",
        "",
        f"- Finished {doc['finished_at']} (started {doc['started_at']}), {workers}; pytest "
        f"exit status {doc['exit_status']}.",
        f"- Commit {commit}.",
        "- Command, from the project folder:",
        "",
        "```sh",
        doc["command"],
        "```",
        "",
    ]


def _stale_lines(stale: list[dict[str, Any]]) -> list[str]:
    if not stale:
        return []
    lines = [
        "## Stale datasets: from earlier sessions, not part of this verdict",
        "",
        "Rehearsed by an earlier session into the same bundle. Remove them with "
        "`harness bundle clear DATASET`, or rehearse with `--fresh`, which clears them first.",
        "",
        "| dataset | verdict then | rehearsed | commit | report |",
        "| --- | --- | --- | --- | --- |",
    ]
    for entry in stale:
        if entry.get("unreadable"):
            lines.append(f"| {entry['dataset']} | unreadable summary | - | - | - |")
            continue
        commit = (entry["git_commit"] or "-")[:12]
        lines.append(
            f"| {entry['dataset']} | {verdict(entry['passed'])} | {entry['finished_at']} | "
            f"{commit} | [{entry['report']}]({entry['report']}) |"
        )
    return [*lines, ""]


def command_line(args: list[str]) -> str:
    """The session's command as a shell would take it."""
    return shlex.join(["pytest", *args])
