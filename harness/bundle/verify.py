"""Checking a bundle later (``harness bundle verify``): every artefact its summaries list,
recomputed, and every difference reported as one typed problem, bagit style.

Verification runs in phases, cheap ones first: the folder is a bundle (``_validate_structure``);
each summary and report match the tag manifest written after them (``_validate_tag_manifest``),
so an edited summary is caught even where it is consistent with itself; each summary is readable,
valid, named for its dataset and its verdict agrees with its steps (``_validate_summaries``);
each of a summary's entries matches the file or records it pins
(``_SummaryCheck.validate_entries``); the summary lists everything its dataset owns
(``_SummaryCheck.validate_completeness``); the session files agree with the summaries they
were drawn from (``verify_session.validate_session``); and nothing in the bundle is left that no summary
accounts for (``_validate_strays``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.bundle.layout import (
    MAX_TAG_MANIFEST_BYTES,
    RUN_LOG,
    RUN_LOG_LOCK,
    RUNS_DIR,
    SESSION_FILES,
    TAG_LINE,
    DatasetFiles,
    records_digest,
    run_log,
    summary_dataset,
    summary_paths,
)
from harness.bundle.verify_session import sha256_or_report, validate_session
from harness.errors import HarnessError
from harness.hashing import sha256_file
from harness.validation import check, load_json


@dataclass(frozen=True)
class BundleProblem:
    """One difference between a bundle and its summaries (bagit style: typed, one line each)."""

    kind: str
    """missing | size | digest | unexpected | unreadable | summary | tagmanifest | session"""
    path: str
    """relative to the bundle (posix)"""
    message: str
    """``<kind>: <path>: <what>``, then ``(summary_<d>.json)`` when a summary's entry is at fault"""


@dataclass
class BundleReport:
    """What ``verify_bundle`` found: the summaries it could read, and every problem in order."""

    root: Path
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    """the valid summaries, by dataset"""
    checked: int = 0
    """artefact entries checked, over all valid summaries"""
    problems: list[BundleProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.summaries)

    def to_json(self) -> dict[str, Any]:
        """The ``harness bundle verify --json`` report."""
        return {
            "bundle": str(self.root),
            "ok": self.ok,
            "datasets": {
                name: {"passed": summary["passed"], "artefacts": len(summary["artefacts"])}
                for name, summary in sorted(self.summaries.items())
            },
            "checked": self.checked,
            "problems": [asdict(p) for p in self.problems],
        }

    def add(self, kind: str, rel: str, what: str, *, summary: Path | None = None) -> None:
        """Record a problem; ``summary``: the summary whose entry is at fault, if any."""
        blame = f" ({summary.name})" if summary is not None else ""
        self.problems.append(BundleProblem(kind, rel, f"{kind}: {rel}: {what}{blame}"))


@dataclass
class _RunLog:
    """The bundle's run log as verification reads it: parsed once, not schema-checked, so
    that one dataset's damaged record does not stop the others' records being checked."""

    records: list[Any] | None = None
    """``None`` when the file is absent"""
    error: str | None = None
    """why the file cannot be read as a JSON array"""

    @classmethod
    def read(cls, root: Path) -> _RunLog:
        path = run_log(root)
        if not path.exists():
            return cls()
        try:
            records = load_json(path, "run log")
        except HarnessError as exc:
            return cls(error=_without_prefix(str(exc), path))
        if not isinstance(records, list):
            return cls(error="not a JSON array of records")
        return cls(records=records)

    def of(self, dataset: str) -> list[dict[str, Any]]:
        return [r for r in self.records or [] if _record_dataset(r) == dataset]


def _record_dataset(record: Any) -> str | None:
    dataset = record.get("dataset") if isinstance(record, dict) else None
    return dataset if isinstance(dataset, str) else None


def _without_prefix(message: str, path: Path) -> str:
    """A HarnessError's message without its leading ``<path>: ``, which the caller names."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def verify_bundle(root: str | os.PathLike[str]) -> BundleReport:
    """Recompute every artefact listed by the bundle's summaries; report each difference.

    Cheap checks first (each summary readable and valid, each file present, its size), then
    the digests. A file a dataset owns that its summary does not list is reported, and so is
    anything else in the bundle that no summary accounts for (a dataset's files or run log
    records without a summary, files outside the layout).
    """
    report = BundleReport(Path(root))
    paths = _validate_structure(report.root)
    log = _RunLog.read(report.root)
    for summary in _validate_summaries(report, paths, log):
        summary.validate_entries()
        summary.validate_completeness()
    validate_session(report, {summary_dataset(p) for p in paths})
    _validate_strays(report, {summary_dataset(p) for p in paths}, log)
    return report


def _validate_structure(root: Path) -> list[Path]:
    """The bundle's summary files; a folder that is not a bundle is bad input."""
    if not root.is_dir():
        what = (
            "is not a folder, expected a bundle folder"
            if root.exists()
            else "no such bundle folder"
        )
        raise HarnessError(f"{root}: {what}")
    return summary_paths(root)


def _validate_summaries(
    report: BundleReport, paths: list[Path], log: _RunLog
) -> Iterator[_SummaryCheck]:
    """Each summary that is valid and named for its dataset, in order; the others are problems.

    A generator, so that each summary's own problems follow those of the summary before it."""
    for path in paths:
        _validate_tag_manifest(report, DatasetFiles(report.root, summary_dataset(path)))
        try:
            summary = load_json(path, "summary")
            check(summary, "summary", path)
        except HarnessError as exc:
            report.add("summary", path.name, _without_prefix(str(exc), path))
            continue
        dataset = summary["dataset"]
        if summary_dataset(path) != dataset:
            what = f"is the summary of dataset '{dataset}', not of '{summary_dataset(path)}'"
            report.add("summary", path.name, what)
            continue
        report.summaries[dataset] = summary
        _validate_verdict(report, path, summary)
        yield _SummaryCheck(report, path, summary, log)


def _validate_verdict(report: BundleReport, path: Path, summary: dict[str, Any]) -> None:
    """A summary's ``passed`` is what its steps say: every one of them passed."""
    failed = [f"{s['step']} {s['outcome']}" for s in summary["steps"] if s["outcome"] != "passed"]
    if summary["passed"] and failed:
        report.add(
            "summary", path.name, f"says passed, but not every step did ({', '.join(failed)})"
        )
    elif not summary["passed"] and not failed:
        report.add("summary", path.name, "says not passed, but every step passed")


def _validate_tag_manifest(report: BundleReport, files: DatasetFiles) -> None:
    """The summary and the report against ``tagmanifest_<d>.txt`` (BagIt's tag manifest): a
    changed summary or report is a digest problem naming it."""
    tag, root = files.tag_manifest.name, report.root
    text = _tag_text(report, files)
    if text is None:
        return
    allowed = {path.name for path in files.tag_files}
    listed: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = TAG_LINE.fullmatch(line)
        if match is None or match[2] not in allowed or match[2] in listed:
            what = (
                "not '<sha256>  <file name>'"
                if match is None
                else f"{match[2]} is listed twice"
                if match[2] in listed
                else f"{match[2]} is not the summary or the report of dataset '{files.dataset}'"
            )
            report.add("tagmanifest", tag, f"line {number}: {what}")
            continue
        listed[match[2]] = match[1]
    for name in sorted(allowed - set(listed)):
        if name == files.summary.name or (root / name).exists():
            report.add("tagmanifest", tag, f"does not pin {name}")
    for name, expected in sorted(listed.items()):
        target = root / name
        if not target.is_file():
            report.add("missing", name, f"pinned by {tag} but not in the bundle")
        elif not _inside(target, root) or target.is_symlink():
            report.add("unreadable", name, "is a link; not read")
        elif (found := sha256_or_report(report, name, target)) is not None and found != expected:
            report.add("digest", name, f"sha256 {found}, {tag} says {expected}")


def _tag_text(report: BundleReport, files: DatasetFiles) -> str | None:
    """The tag manifest's text; ``None`` after reporting why there is none to check."""
    path, tag = files.tag_manifest, files.tag_manifest.name
    if path.is_symlink() or (path.exists() and not path.is_file()):
        report.add("unreadable", tag, "is not a regular file; not read")
        return None
    if not path.exists():
        report.add("missing", tag, f"not in the bundle: nothing pins {files.summary.name}")
        return None
    try:
        if path.stat().st_size > MAX_TAG_MANIFEST_BYTES:
            report.add("tagmanifest", tag, f"larger than {MAX_TAG_MANIFEST_BYTES} bytes; not read")
            return None
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        report.add("unreadable", tag, getattr(exc, "strerror", None) or str(exc))
        return None


@dataclass
class _SummaryCheck:
    """One valid summary against the bundle: its entries, then what it leaves out."""

    report: BundleReport
    path: Path
    summary: dict[str, Any]
    log: _RunLog

    @property
    def dataset(self) -> str:
        return self.summary["dataset"]

    def problem(self, kind: str, rel: str, what: str) -> None:
        self.report.add(kind, rel, what, summary=self.path)

    def validate_entries(self) -> None:
        """Each entry once, of this dataset, and matching the file or records it pins."""
        listed: set[str] = set()
        for entry in self.summary["artefacts"]:
            rel = entry["path"]
            self.report.checked += 1
            if rel in listed:
                self.problem("summary", rel, "listed twice")
                continue
            listed.add(rel)
            found = self._records(entry) if "records_of" in entry else self._file(entry)
            if found is None:
                continue
            sha, size, of = found
            if size != entry["bytes"]:
                self.problem("size", rel, f"{size} bytes{of}, summary says {entry['bytes']}")
            elif sha != entry["sha256"]:
                self.problem("digest", rel, f"sha256 {sha}{of}, summary says {entry['sha256']}")

    def _records(self, entry: dict[str, Any]) -> tuple[str, int, str] | None:
        """sha256, size and a description of the records an entry pins; ``None`` after
        reporting why they cannot be compared."""
        rel, dataset = entry["path"], self.dataset
        if rel != RUN_LOG or entry["records_of"] != dataset:
            self.problem(
                "summary",
                rel,
                f"pins records of dataset '{entry['records_of']}'; a summary pins only its "
                f"own dataset's records, in {RUN_LOG}",
            )
            return None
        if self.log.error is not None:
            self.problem("unreadable", rel, self.log.error)
            return None
        if self.log.records is None:
            self.problem("missing", rel, "listed in the summary but not in the bundle")
            return None
        records = self.log.of(dataset)
        if not records:
            self.problem("missing", rel, f"holds no records of dataset '{dataset}'")
            return None
        try:
            sha, size = records_digest(records)
        except ValueError:  # NaN or infinity: never in a log the project wrote
            self.problem("digest", rel, f"records of dataset '{dataset}' hold NaN or infinity")
            return None
        return sha, size, f" of the {len(records)} record(s) of dataset '{dataset}'"

    def _file(self, entry: dict[str, Any]) -> tuple[str, int, str] | None:
        """sha256 and size of the file an entry pins; ``None`` after reporting why it cannot be
        compared (its size differs already, for one: no need to read it)."""
        rel, root = entry["path"], self.report.root
        if not DatasetFiles(root, self.dataset).owns(rel):
            what = f"is not a file of dataset '{self.dataset}' in the bundle layout"
            self.problem("summary", rel, what)
            return None
        target = root / rel
        if not _inside(target, root):
            self.problem("unreadable", rel, "resolves through a link outside the bundle; not read")
            return None
        if not target.is_file():
            self.problem("missing", rel, "listed in the summary but not in the bundle")
            return None
        try:
            found = target.stat().st_size
            if found != entry["bytes"]:
                self.problem("size", rel, f"{found} bytes, summary says {entry['bytes']}")
                return None
            digest = sha256_file(target)
        except OSError as exc:
            self.problem("unreadable", rel, exc.strerror or str(exc))
            return None
        return digest.sha256, digest.bytes, ""

    def validate_completeness(self) -> None:
        """Every file the dataset owns, and its run log records, are listed by the summary."""
        root, dataset = self.report.root, self.dataset
        listed = {entry["path"] for entry in self.summary["artefacts"]}
        for file in DatasetFiles(root, dataset).existing():
            rel = file.relative_to(root).as_posix()
            if (
                file not in (self.path, DatasetFiles(root, dataset).tag_manifest)
                and rel not in listed
            ):
                what = f"belongs to dataset '{dataset}' but its summary does not list it"
                self.problem("unexpected", rel, what)
        # Only the first entry of a path counts: a second one is "listed twice".
        first = next((e for e in self.summary["artefacts"] if e["path"] == RUN_LOG), None)
        records = self.log.of(dataset)
        if records and (first is None or first.get("records_of") != dataset):
            self.problem(
                "unexpected",
                RUN_LOG,
                f"holds {len(records)} record(s) of dataset '{dataset}' but its summary does "
                "not list them",
            )


def _validate_strays(report: BundleReport, claimed: set[str], log: _RunLog) -> None:
    """Report what no summary accounts for. ``claimed``: the datasets with a summary file,
    valid or not (an invalid summary is reported already; its files are not strays)."""
    _stray_files(report, claimed)
    _stray_records(report, claimed, log)


def _stray_files(report: BundleReport, claimed: set[str]) -> None:
    """Files outside every claimed dataset's layout; a whole unclaimed run folder is one line."""
    root = report.root
    orphan_runs: Counter[str] = Counter()
    files = sorted(
        Path(dirpath, name).relative_to(root).as_posix()
        for dirpath, _dirs, names in os.walk(root)
        for name in names
    )
    for rel in files:
        if rel in (RUN_LOG, RUN_LOG_LOCK, *SESSION_FILES) or any(
            DatasetFiles(root, d).owns(rel) for d in claimed
        ):
            continue
        parts = rel.split("/")
        if parts[0] == RUNS_DIR and len(parts) >= 3:
            orphan_runs[parts[1]] += 1
        else:
            report.add("unexpected", rel, "belongs to no dataset with a summary in the bundle")
    for dataset, count in sorted(orphan_runs.items()):
        what = f"{count} file(s) of dataset '{dataset}', which has no summary in the bundle"
        report.add("unexpected", f"{RUNS_DIR}/{dataset}", what)


def _stray_records(report: BundleReport, claimed: set[str], log: _RunLog) -> None:
    """Run log records of no dataset, or of a dataset without a summary, counted by dataset."""
    counts: Counter[str] = Counter()
    for record in log.records or []:
        dataset = _record_dataset(record)
        if dataset not in claimed:
            key = (
                "no dataset"
                if dataset is None
                else f"dataset '{dataset}', which has no summary in the bundle"
            )
            counts[key] += 1
    for key, count in sorted(counts.items()):
        report.add("unexpected", RUN_LOG, f"holds {count} record(s) of {key}")


def _inside(path: Path, folder: Path) -> bool:
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return real != base and real.is_relative_to(base)
