"""The session files at a bundle's root (``harness/bundle/session.py``): one verdict per session,
stale datasets apart, checked by ``harness bundle verify``; and ``harness bundle clear``.

Bundles are synthetic, built with the real layout and writing functions (no training).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.bundle import DatasetFiles, verify_bundle
from harness.bundle.layout import SESSION_JSON, SESSION_REPORT, datasets_in
from harness.bundle.session import dataset_entry, load_session, stale_entries, write_session

from .conftest import assert_one_line_error, call_cli
from .test_bundle import add_dataset, problems, write_summary

UTC = "2026-01-02T03:04:05Z"


def session_doc(root: Path, current: list[str]) -> dict[str, Any]:
    """The session document as the controller builds it, for ``current`` datasets."""
    entries = [
        dataset_entry(root, json.loads(DatasetFiles(root, d).summary.read_text())) for d in current
    ]
    return {
        "schema_version": 1,
        "passed": all(e["passed"] for e in entries),
        "started_at": UTC,
        "finished_at": UTC,
        "command": "pytest acceptance/ -m rehearsal --dataset=" + ",".join(current),
        "exit_status": 0 if all(e["passed"] for e in entries) else 1,
        "workers": 0,
        "git_commit": None,
        "git_dirty": None,
        "datasets": entries,
        "cleared": [],
        "stale": stale_entries(root, set(current)),
    }


def make_bundle(root: Path) -> Path:
    """idle_v1 rehearsed (failed) by the last session; preflight left by an earlier one."""
    add_dataset(root, "preflight")
    add_dataset(root, "idle_v1", {"bc_trainer": "failed"})
    write_session(root, session_doc(root, ["idle_v1"]))
    return root


def test_the_session_has_one_verdict_and_lists_earlier_datasets_apart(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    doc = load_session(root)
    assert doc is not None and doc["passed"] is False
    assert [e["dataset"] for e in doc["datasets"]] == ["idle_v1"]
    assert doc["datasets"][0]["not_passed"] == ["bc trainer failed"]
    assert [e["dataset"] for e in doc["stale"]] == ["preflight"]
    report = (root / SESSION_REPORT).read_text()
    assert report.startswith("# Phase 5.4 ops rehearsal: FAILED\n\n**FAILED**: idle_v1 did not")
    stale = report.index("## Stale datasets")
    assert "| preflight | PASSED |" in report[stale:] and "preflight" not in report[:stale]
    assert "harness bundle clear DATASET" in report[stale:]
    assert verify_bundle(root).ok, verify_bundle(root).problems


def test_an_edited_session_file_or_a_summary_it_pins_is_caught(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    path = root / SESSION_JSON
    path.write_text(path.read_text().replace('"passed": false', '"passed": true', 1))
    assert ("digest", SESSION_JSON) in problems(root)

    root = make_bundle(tmp_path / "c")
    write_summary(root, "idle_v1")  # the summary rewritten (as passed) after the session
    found = [p.message for p in verify_bundle(root).problems if p.kind == "session"]
    assert found and "pins summary_idle_v1.json at sha256" in found[0]


def test_a_summary_the_session_does_not_list_is_caught(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    add_dataset(root, "third")
    messages = [p.message for p in verify_bundle(root).problems]
    assert "session: acceptance.json: does not list third, which has a summary" in messages


def test_a_missing_session_tag_manifest_is_caught(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    (root / "tagmanifest.txt").unlink()
    assert ("missing", "tagmanifest.txt") in problems(root)


def test_bundle_clear_removes_a_stale_dataset_and_rewrites_the_session(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    result = call_cli("bundle", "clear", "preflight", "--bundle", root)
    assert result.returncode == 0, result.stderr
    assert datasets_in(root) == {"idle_v1"}
    assert not DatasetFiles(root, "preflight").runs.exists()
    doc = load_session(root)
    assert doc is not None and doc["stale"] == [] and doc["passed"] is False
    assert "Stale" not in (root / SESSION_REPORT).read_text()
    assert verify_bundle(root).ok, verify_bundle(root).problems


def test_bundle_clear_of_a_session_dataset_keeps_it_in_the_verdict(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    assert call_cli("bundle", "clear", "idle_v1", "--bundle", root).returncode == 0
    doc = load_session(root)
    assert doc is not None and doc["datasets"] == [] and doc["passed"] is False
    assert [(c["dataset"], c["passed"]) for c in doc["cleared"]] == [("idle_v1", False)]
    assert "| idle_v1 | **FAILED** | files cleared" in (root / SESSION_REPORT).read_text()
    assert verify_bundle(root).ok, verify_bundle(root).problems


def test_bundle_clear_of_an_unknown_dataset_is_one_line_and_removes_nothing(
    tmp_path: Path,
) -> None:
    root = make_bundle(tmp_path / "b")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    result = call_cli("bundle", "clear", "preflight", "nope", "--bundle", root)
    assert_one_line_error(result, "nothing of dataset nope in this bundle", "idle_v1, preflight")
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert_one_line_error(
        call_cli("bundle", "clear", "x", "--bundle", tmp_path / "none"), "no such bundle folder"
    )
