"""``harness bundle verify``'s phase for the session files (``acceptance.json``, its report and
``tagmanifest.txt``): they are what people decide from, so they are checked like a summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.bundle.layout import (
    MAX_TAG_MANIFEST_BYTES,
    SESSION_FILES,
    SESSION_JSON,
    SESSION_REPORT,
    SESSION_TAG_MANIFEST,
    TAG_LINE,
)
from harness.errors import HarnessError
from harness.hashing import sha256_file
from harness.validation import check, load_json

if TYPE_CHECKING:
    from harness.bundle.verify import BundleReport


def _without_prefix(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def sha256_or_report(report: BundleReport, rel: str, path: Path) -> str | None:
    """The file's sha256, or None with an ``unreadable`` problem for ``rel`` in ``report``."""
    try:
        return sha256_file(path).sha256
    except OSError as exc:
        report.add("unreadable", rel, exc.strerror or str(exc))
        return None


def validate_session(report: BundleReport, claimed: set[str]) -> None:
    """The session files, when the bundle has them (bundles of before they existed have none):
    pinned by their tag manifest, valid, pinning each summary they list by its sha256, listing
    every summary of the bundle, their verdict that of their datasets."""
    root = report.root
    if not any((root / name).exists() for name in SESSION_FILES):
        return
    _check_pins(report, root / SESSION_TAG_MANIFEST, {SESSION_JSON, SESSION_REPORT})
    try:
        doc = load_json(root / SESSION_JSON, "session file")
        check(doc, "session", root / SESSION_JSON)
    except HarnessError as exc:
        report.add("session", SESSION_JSON, _without_prefix(str(exc), root / SESSION_JSON))
        return
    listed = {e["dataset"] for e in (*doc["datasets"], *doc["stale"])}
    for entry in (*doc["datasets"], *doc["stale"]):
        summary = report.summaries.get(entry["dataset"])
        if entry.get("unreadable") or summary is None:
            if entry["dataset"] not in claimed:
                report.add("session", SESSION_JSON, f"lists {entry['dataset']}, not in the bundle")
            continue
        sha = sha256_or_report(report, entry["summary"], root / entry["summary"])
        if sha is not None and sha != entry["summary_sha256"]:
            what = f"pins {entry['summary']} at sha256 {entry['summary_sha256']}, found {sha}"
            report.add("session", SESSION_JSON, what)
        elif summary["passed"] != entry["passed"]:
            report.add(
                "session", SESSION_JSON, f"{entry['dataset']}'s verdict is not its summary's"
            )
    for name in sorted(claimed - listed):
        report.add("session", SESSION_JSON, f"does not list {name}, which has a summary")
    passed = all(e["passed"] for e in (*doc["datasets"], *doc["cleared"]))
    if doc["passed"] != passed:
        report.add("session", SESSION_JSON, f"says passed {doc['passed']}, its datasets {passed}")


def _check_pins(report: BundleReport, tag: Path, allowed: set[str]) -> None:
    """A tag manifest in ``sha256sum`` format pins exactly ``allowed``, each at its sha256."""
    if not tag.is_file() or tag.is_symlink():
        report.add("missing", tag.name, "not in the bundle: nothing pins the session files")
        return
    if tag.stat().st_size > MAX_TAG_MANIFEST_BYTES:
        report.add("tagmanifest", tag.name, f"larger than {MAX_TAG_MANIFEST_BYTES} bytes; not read")
        return
    listed: dict[str, str] = {}
    for number, line in enumerate(tag.read_text("utf-8", errors="replace").splitlines(), 1):
        match = TAG_LINE.fullmatch(line)
        if match is None or match[2] not in allowed or match[2] in listed:
            report.add("tagmanifest", tag.name, f"line {number}: not one pin of {sorted(allowed)}")
            continue
        listed[match[2]] = match[1]
    for name in sorted(allowed):
        target = report.root / name
        if name not in listed:
            report.add("tagmanifest", tag.name, f"does not pin {name}")
        elif not target.is_file() or target.is_symlink():
            report.add("missing", name, f"pinned by {tag.name} but not in the bundle")
        elif (found := sha256_or_report(report, name, target)) is not None and found != listed[
            name
        ]:
            report.add("digest", name, f"sha256 {found}, {tag.name} says {listed[name]}")
