"""The acceptance bundle: where the rehearsal leaves each dataset's artefacts, the digests its
summary pins them with, and checking a bundle later (``harness bundle verify``).

Layout (``artifacts/m5/acceptance/`` by default). Every name except the shared run log is keyed
by dataset, so datasets rehearsed in separate sessions share one bundle without touching each
other's files, and a rerun replaces exactly one dataset's files::

    config_<d>.yaml              overlay of configs/examples/poc_hybrid.yaml for dataset <d>
    rollback_config_<d>.yaml     the same with bc.accuracy_threshold 0.95 (the rollback drill)
    manifest_<d>.json            byte copies of the dataset's manifest and checksum sheet
    checksums_<d>.json
    ppo_<d>.jsonl                the anneal smoke's PPO log
    runs/<d>/<run>/              each training run's own logs/ and checkpoints/ (and CLI output)
    logs/anneal_results.json     every run's records, each tagged with dataset and run, sorted
    pytest_report_<d>.json       the pytest JSON report of <d>'s tests
    acceptance_report_<d>.md     the human-readable report
    summary_<d>.json             outcomes, metrics, artefacts (sha256, size), environment

The run log is the one shared file, so a summary pins only its own dataset's records in it: the
sha256 and size of their canonical JSON (``records_digest``), not of the whole file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.atomic import dumps_json
from harness.errors import HarnessError
from harness.hashing import sha256_file
from harness.training.runlog import LOG_NAME, read_log, update_log
from harness.validation import check, load_json

DEFAULT_BUNDLE = Path("artifacts/m5/acceptance")
LOGS_DIR = "logs"
RUN_LOG = f"{LOGS_DIR}/{LOG_NAME}"
RUNS_DIR = "runs"
# The training runs of a rehearsal, in the order their records are kept in the shared run log.
RUN_ORDER = ("bc_trainer", "anneal_smoke", "rollback_drill")


@dataclass(frozen=True)
class DatasetFiles:
    """The paths one dataset owns in a bundle."""

    root: Path
    dataset: str

    def _file(self, name: str) -> Path:
        return self.root / name

    @property
    def config(self) -> Path:
        return self._file(f"config_{self.dataset}.yaml")

    @property
    def rollback_config(self) -> Path:
        return self._file(f"rollback_config_{self.dataset}.yaml")

    @property
    def manifest(self) -> Path:
        return self._file(f"manifest_{self.dataset}.json")

    @property
    def checksums(self) -> Path:
        return self._file(f"checksums_{self.dataset}.json")

    @property
    def ppo_log(self) -> Path:
        return self._file(f"ppo_{self.dataset}.jsonl")

    @property
    def pytest_report(self) -> Path:
        return self._file(f"pytest_report_{self.dataset}.json")

    @property
    def report(self) -> Path:
        return self._file(f"acceptance_report_{self.dataset}.md")

    @property
    def summary(self) -> Path:
        return self._file(f"summary_{self.dataset}.json")

    @property
    def runs(self) -> Path:
        return self.root / RUNS_DIR / self.dataset

    def run(self, name: str) -> Path:
        return self.runs / name

    @property
    def files(self) -> list[Path]:
        """The dataset's top-level files (its ``runs/<d>/`` folder aside)."""
        return [
            self.config,
            self.rollback_config,
            self.manifest,
            self.checksums,
            self.ppo_log,
            self.pytest_report,
            self.report,
            self.summary,
        ]

    def existing(self) -> list[Path]:
        """Every file the dataset owns that is on disk, its run folders included, sorted."""
        found = [p for p in self.files if p.is_file()]
        if self.runs.is_dir():
            for dirpath, _dirs, names in os.walk(self.runs):
                found.extend(Path(dirpath, n) for n in names)
        return sorted(found)


def run_log(root: Path) -> Path:
    return root / RUN_LOG


def _sort_key(record: dict[str, Any]) -> tuple[str, int]:
    run = record.get("run", "")
    return (record.get("dataset", ""), RUN_ORDER.index(run) if run in RUN_ORDER else len(RUN_ORDER))


def merge_run(root: Path, dataset: str, run: str, records: list[dict[str, Any]]) -> Path:
    """Put one run's records into the bundle's run log, replacing that run's earlier records.

    The log stays sorted by dataset, then run (``RUN_ORDER``), then the order the run wrote
    them, so the file is the same whatever order parallel workers finish in.
    """
    mine = [r for r in records if r.get("dataset") == dataset and r.get("run") == run]
    if len(mine) != len(records):
        raise HarnessError(f"records given for {dataset}/{run} include another dataset or run")

    def change(current: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = [r for r in current if (r.get("dataset"), r.get("run")) != (dataset, run)]
        return sorted([*kept, *mine], key=_sort_key)  # sorted() is stable

    return update_log(root / LOGS_DIR, change, f"records of {dataset}/{run} being merged")


def clear_dataset(root: Path, dataset: str) -> None:
    """Remove everything a dataset owns in the bundle, its records in the run log included,
    so that a rerun cannot leave stale files of an earlier run beside its own."""
    files = DatasetFiles(root, dataset)
    for path in files.files:
        path.unlink(missing_ok=True)
    if files.runs.exists():
        shutil.rmtree(files.runs)
    if run_log(root).exists():
        update_log(
            root / LOGS_DIR,
            lambda records: [r for r in records if r.get("dataset") != dataset],
            f"records of {dataset} being removed",
        )


def records_digest(records: list[dict[str, Any]]) -> tuple[str, int]:
    """sha256 and size of the canonical JSON of some run log records."""
    data = dumps_json(records).encode("utf-8")
    return hashlib.sha256(data).hexdigest(), len(data)


def dataset_records(root: Path, dataset: str) -> list[dict[str, Any]]:
    return [r for r in read_log(run_log(root)) if r.get("dataset") == dataset]


def artefact_entries(root: Path, dataset: str, exclude: tuple[Path, ...] = ()) -> list[dict]:
    """The summary's ``artefacts``: every file the dataset owns, and its run log records."""
    entries = []
    for path in DatasetFiles(root, dataset).existing():
        if path in exclude:
            continue
        digest = sha256_file(path)
        entries.append(
            {
                "path": path.relative_to(root).as_posix(),
                "sha256": digest.sha256,
                "bytes": digest.bytes,
            }
        )
    records = dataset_records(root, dataset)
    if records:
        sha, size = records_digest(records)
        entries.append({"path": RUN_LOG, "sha256": sha, "bytes": size, "records_of": dataset})
    return sorted(entries, key=lambda e: e["path"])


# --- checking a bundle later -----------------------------------------------------------------

SUMMARY_GLOB = "summary_*.json"


@dataclass(frozen=True)
class BundleProblem:
    """One difference between a bundle and its summaries (bagit style: typed, one line each)."""

    kind: str
    """missing | size | digest | unexpected | unreadable | summary"""
    path: str
    """relative to the bundle (posix)"""
    message: str
    """``<kind>: <path>: <what>``, then ``(summary_<d>.json)`` when a summary's entry is at fault"""


@dataclass
class BundleReport:
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


def _summary_dataset(path: Path) -> str:
    """The dataset a ``summary_<d>.json`` file is named for."""
    return path.name[len("summary_") : -len(".json")]


def verify_bundle(root: str | os.PathLike[str]) -> BundleReport:
    """Recompute every artefact listed by the bundle's summaries; report each difference.

    Cheap checks first (each summary readable and valid, each file present, its size), then
    the digests. A file a dataset owns that its summary does not list is reported, and so is
    anything else in the bundle that no summary accounts for (a dataset's files or run log
    records without a summary, files outside the layout).
    """
    root = Path(root)
    if not root.is_dir():
        what = (
            "is not a folder, expected a bundle folder"
            if root.exists()
            else "no such bundle folder"
        )
        raise HarnessError(f"{root}: {what}")
    paths = sorted(root.glob(SUMMARY_GLOB))
    if not paths:
        raise HarnessError(f"{root}: no summary_<dataset>.json in this folder; is it a bundle?")
    report = BundleReport(root)
    log = _RunLog.read(root)
    for path in paths:
        try:
            summary = load_json(path, "summary")
            check(summary, "summary", path)
        except HarnessError as exc:
            what = _without_prefix(str(exc), path)
            report.problems.append(
                BundleProblem("summary", path.name, f"summary: {path.name}: {what}")
            )
            continue
        dataset = summary["dataset"]
        if _summary_dataset(path) != dataset:
            what = f"is the summary of dataset '{dataset}', not of '{_summary_dataset(path)}'"
            report.problems.append(
                BundleProblem("summary", path.name, f"summary: {path.name}: {what}")
            )
            continue
        report.summaries[dataset] = summary
        _check_summary(report, path, summary, log)
    _check_strays(report, {_summary_dataset(p) for p in paths}, log)
    return report


def _check_summary(report: BundleReport, path: Path, summary: dict[str, Any], log: _RunLog) -> None:
    root, dataset = report.root, summary["dataset"]

    def problem(kind: str, rel: str, what: str) -> None:
        report.problems.append(BundleProblem(kind, rel, f"{kind}: {rel}: {what} ({path.name})"))

    listed: set[str] = set()
    records_listed = False
    for entry in summary["artefacts"]:
        rel = entry["path"]
        report.checked += 1
        if rel in listed:
            problem("summary", rel, "listed twice")
            continue
        listed.add(rel)
        if "records_of" in entry:
            if rel != RUN_LOG or entry["records_of"] != dataset:
                problem(
                    "summary",
                    rel,
                    f"pins records of dataset '{entry['records_of']}'; a summary pins only its "
                    f"own dataset's records, in {RUN_LOG}",
                )
                continue
            records_listed = True
            if log.error is not None:
                problem("unreadable", rel, log.error)
                continue
            if log.records is None:
                problem("missing", rel, "listed in the summary but not in the bundle")
                continue
            records = log.of(dataset)
            if not records:
                problem("missing", rel, f"holds no records of dataset '{dataset}'")
                continue
            try:
                sha, size = records_digest(records)
            except ValueError:  # NaN or infinity: never in a log the project wrote
                problem("digest", rel, f"records of dataset '{dataset}' hold NaN or infinity")
                continue
            of = f" of the {len(records)} record(s) of dataset '{dataset}'"
        else:
            if not _owned(rel, dataset):
                problem(
                    "summary", rel, f"is not a file of dataset '{dataset}' in the bundle layout"
                )
                continue
            target = root / rel
            if not _inside(target, root):
                problem("unreadable", rel, "resolves through a link outside the bundle; not read")
                continue
            if not target.is_file():
                problem("missing", rel, "listed in the summary but not in the bundle")
                continue
            try:
                found = target.stat().st_size
                if found != entry["bytes"]:
                    problem("size", rel, f"{found} bytes, summary says {entry['bytes']}")
                    continue
                digest = sha256_file(target)
                sha, size = digest.sha256, digest.bytes
            except OSError as exc:
                problem("unreadable", rel, exc.strerror or str(exc))
                continue
            of = ""
        if size != entry["bytes"]:
            problem("size", rel, f"{size} bytes{of}, summary says {entry['bytes']}")
        elif sha != entry["sha256"]:
            problem("digest", rel, f"sha256 {sha}{of}, summary says {entry['sha256']}")
    for file in DatasetFiles(root, dataset).existing():
        rel = file.relative_to(root).as_posix()
        if file != path and rel not in listed:
            problem(
                "unexpected",
                rel,
                f"belongs to dataset '{dataset}' but its summary does not list it",
            )
    records = log.of(dataset)
    if records and not records_listed:
        problem(
            "unexpected",
            RUN_LOG,
            f"holds {len(records)} record(s) of dataset '{dataset}' but its summary does not list them",
        )


def _check_strays(report: BundleReport, claimed: set[str], log: _RunLog) -> None:
    """Report what no summary accounts for. ``claimed``: the datasets with a summary file,
    valid or not (an invalid summary is reported already; its files are not strays)."""
    root = report.root

    def stray(rel: str, what: str) -> None:
        report.problems.append(BundleProblem("unexpected", rel, f"unexpected: {rel}: {what}"))

    shared = {RUN_LOG, f"{LOGS_DIR}/.{LOG_NAME}.lock"}
    orphan_runs: dict[str, int] = {}
    files = sorted(
        Path(dirpath, name).relative_to(root).as_posix()
        for dirpath, _dirs, names in os.walk(root)
        for name in names
    )
    for rel in files:
        if rel in shared or any(_owned(rel, d) for d in claimed):
            continue
        parts = rel.split("/")
        if parts[0] == RUNS_DIR and len(parts) >= 3:
            orphan_runs[parts[1]] = orphan_runs.get(parts[1], 0) + 1
        else:
            stray(rel, "belongs to no dataset with a summary in the bundle")
    for dataset, count in sorted(orphan_runs.items()):
        stray(
            f"{RUNS_DIR}/{dataset}",
            f"{count} file(s) of dataset '{dataset}', which has no summary in the bundle",
        )
    counts: dict[str, int] = {}
    for record in log.records or []:
        dataset = _record_dataset(record)
        if dataset not in claimed:
            key = (
                "no dataset"
                if dataset is None
                else f"dataset '{dataset}', which has no summary in the bundle"
            )
            counts[key] = counts.get(key, 0) + 1
    for key, count in sorted(counts.items()):
        stray(RUN_LOG, f"holds {count} record(s) of {key}")


def _owned(rel: str, dataset: str) -> bool:
    """``rel`` (posix, relative to the bundle) is a name the layout gives ``dataset``."""
    if rel in {p.name for p in DatasetFiles(Path(), dataset).files}:
        return True
    parts = rel.split("/")
    return (
        len(parts) >= 3
        and parts[:2] == [RUNS_DIR, dataset]
        and all(part not in ("", ".", "..") for part in parts)
    )


def _inside(path: Path, folder: Path) -> bool:
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return real != base and real.is_relative_to(base)


# --- comparing two rehearsals ------------------------------------------------------------------

# Figures that differ between two sessions of the same rehearsal by nature: wall-clock.
TIMING_METRICS = ("cli_seconds",)


def comparable(root: Path, dataset: str) -> dict[str, Any]:
    """What must be equal between two rehearsals of one dataset with the same code and data:
    the steps' outcomes, messages and remedial actions, the metrics (wall-clock aside) and the
    missing artefacts, with the bundle's own path written ``<bundle>``."""
    path = DatasetFiles(root, dataset).summary
    summary = load_json(path, "summary")
    check(summary, "summary", path)
    summary = _relabel(summary, str(root.resolve()))
    return {
        "steps": {
            s["step"]: {k: s[k] for k in ("outcome", "message", "remedial_action")}
            for s in summary["steps"]
        },
        "metrics": {
            step: {k: v for k, v in values.items() if k not in TIMING_METRICS}
            for step, values in summary["metrics"].items()
        },
        "missing": summary["missing"],
    }


def _relabel(value: Any, root: str) -> Any:
    if isinstance(value, str):
        return value.replace(root, "<bundle>")
    if isinstance(value, list):
        return [_relabel(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _relabel(v, root) for k, v in value.items()}
    return value


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flat(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def compare_bundles(
    a: str | os.PathLike[str], b: str | os.PathLike[str]
) -> tuple[list[str], list[str]]:
    """The datasets both bundles hold, and one line per difference between their rehearsals."""
    roots = [Path(a), Path(b)]
    names = []
    for root in roots:
        if not root.is_dir():
            raise HarnessError(f"{root}: no such bundle folder")
        found = {_summary_dataset(p) for p in root.glob("summary_*.json")}
        if not found:
            raise HarnessError(f"{root}: no summary_<dataset>.json in this folder; is it a bundle?")
        names.append(found)
    differences = [
        f"{name}: rehearsed only in {root}"
        for root, mine, other in ((roots[0], names[0], names[1]), (roots[1], names[1], names[0]))
        for name in sorted(mine - other)
    ]
    both = sorted(names[0] & names[1])
    for name in both:
        left, right = (_flat(comparable(root, name), "") for root in roots)
        for key in sorted(set(left) | set(right)):
            if left.get(key, "(absent)") != right.get(key, "(absent)"):
                differences.append(
                    f"{name}: {key}: {_show(left.get(key, '(absent)'))} in {roots[0]}, "
                    f"{_show(right.get(key, '(absent)'))} in {roots[1]}"
                )
    return both, differences


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 120 else text[:117] + "..."
