"""The bundle's layout: the names every reader and writer of an acceptance bundle agrees on.

Layout (``artifacts/m5/acceptance/`` by default). Every name except the shared run log is keyed
by dataset, so datasets rehearsed in separate sessions share one bundle without touching each
other's files, and a rerun replaces exactly one dataset's files::

    config_<d>.yaml              overlay of configs/examples/poc_hybrid.yaml for dataset <d>
    rollback_config_<d>.yaml     the same with bc.accuracy_threshold 0.95 (the rollback drill)
    manifest_<d>.json            byte copies of the dataset's manifest and checksum sheet
    checksums_<d>.json
    ppo_<d>.jsonl                the anneal smoke's PPO log
    runs/<d>/<run>/              each training run's own logs/ and store/ (and CLI output)
    figures/<d>/*.svg            the report's figures
    logs/anneal_results.json     every run's records, each tagged with dataset and run, sorted
    pytest_report_<d>.json       the pytest JSON report of <d>'s tests
    junit_<d>.xml                JUnit XML of <d>'s five tests, each step's metrics as properties
    acceptance_report_<d>.md     the human-readable report
    summary_<d>.json             outcomes, metrics, artefacts (sha256, size), environment
    tagmanifest_<d>.txt          sha256 of the summary and the report, written last
    acceptance.json              the last session: its verdict, its datasets, stale ones apart
    acceptance_report.md         the same for people
    tagmanifest.txt              sha256 of those two, written last of all

The run log is the one shared file, so a summary pins only its own dataset's records in it: the
sha256 and size of their canonical JSON (``records_digest``), not of the whole file.

The summary pins every other file of its dataset; the tag manifest pins the summary itself and
the report, as a BagIt bag's ``tagmanifest-sha256.txt`` pins its manifests. It has the format of
``sha256sum`` (``<sha256>  <file name>`` lines), so ``sha256sum -c tagmanifest_<d>.txt`` in the
bundle checks it too.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.atomic import dumps_json
from harness.errors import HarnessError
from harness.training.runlog import LOCK_NAME, LOG_NAME, read_log

DEFAULT_BUNDLE = Path("artifacts/m5/acceptance")
LOGS_DIR = "logs"
RUN_LOG = f"{LOGS_DIR}/{LOG_NAME}"
RUN_LOG_LOCK = f"{LOGS_DIR}/{LOCK_NAME}"  # beside the run log while it is updated
RUNS_DIR = "runs"
FIGURES_DIR = "figures"
STORE_DIR = "store"  # a run's checkpoint store: store/checkpoints/<id>/, store/promoted.json
SESSION_JSON = "acceptance.json"
SESSION_REPORT = "acceptance_report.md"
SESSION_TAG_MANIFEST = "tagmanifest.txt"
SESSION_FILES = (SESSION_JSON, SESSION_REPORT, SESSION_TAG_MANIFEST)
SUMMARY_GLOB = "summary_*.json"
TAG_LINE = re.compile(r"([0-9a-f]{64})  ([^\n]+)")
MAX_TAG_MANIFEST_BYTES = 64 << 10  # two lines; anything larger is not a tag manifest


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
    def junit(self) -> Path:
        return self._file(f"junit_{self.dataset}.xml")

    @property
    def report(self) -> Path:
        return self._file(f"acceptance_report_{self.dataset}.md")

    @property
    def summary(self) -> Path:
        return self._file(f"summary_{self.dataset}.json")

    @property
    def tag_manifest(self) -> Path:
        return self._file(f"tagmanifest_{self.dataset}.txt")

    @property
    def tag_files(self) -> list[Path]:
        """What the tag manifest pins: the summary and the report (the summary pins the rest)."""
        return [self.summary, self.report]

    @property
    def runs(self) -> Path:
        return self.root / RUNS_DIR / self.dataset

    def run(self, name: str) -> Path:
        return self.runs / name

    @property
    def figures(self) -> Path:
        return self.root / FIGURES_DIR / self.dataset

    def figure(self, name: str) -> Path:
        return self.figures / f"{name}.svg"

    @property
    def files(self) -> list[Path]:
        """The dataset's top-level files (its ``runs/<d>/`` folder aside), the tag manifest
        first: it is written last and removed first."""
        return [
            self.tag_manifest,
            self.config,
            self.rollback_config,
            self.manifest,
            self.checksums,
            self.ppo_log,
            self.pytest_report,
            self.junit,
            self.report,
            self.summary,
        ]

    def existing(self) -> list[Path]:
        """Every file the dataset owns that is on disk, its run folders included, sorted; lock
        files (``.<name>.lock``, which coordinate writers and name the last holder) are no
        artefacts."""
        found = [p for p in self.files if p.is_file()]
        for folder in (self.runs, self.figures):
            for dirpath, _dirs, names in os.walk(folder):
                found.extend(Path(dirpath, n) for n in names if not _is_lock(n))
        return sorted(found)

    def owns(self, rel: str) -> bool:
        """``rel`` (posix, relative to the bundle) is a name the layout gives this dataset."""
        if rel in {p.name for p in self.files}:
            return True
        parts = rel.split("/")
        return (
            len(parts) >= 3
            and parts[0] in (RUNS_DIR, FIGURES_DIR)
            and parts[1] == self.dataset
            and all(part not in ("", ".", "..") for part in parts)
        )


def _is_lock(name: str) -> bool:
    return name.startswith(".") and name.endswith(".lock")


def bundle_lock(bundle: Path, dataset: str) -> Path:
    """The lock a session (or ``harness bundle clear``) holds while it changes ``dataset``'s
    files in ``bundle``: beside the bundle folder, not in it, so ``bundle verify`` never meets
    it."""
    return bundle.parent / f".{bundle.name}.{dataset}.lock"


def session_lock(bundle: Path) -> Path:
    """The lock around the read-modify-write of the session files (``acceptance.json``, its
    report and tag manifest), which sessions of different datasets share."""
    return bundle.parent / f".{bundle.name}.lock"


def datasets_in(root: Path) -> set[str]:
    """Every dataset with something in the bundle: a summary, a run or figure folder, records
    in the run log."""
    names = {summary_dataset(p) for p in root.glob(SUMMARY_GLOB)}
    for folder in (RUNS_DIR, FIGURES_DIR):
        if (root / folder).is_dir():
            names |= {p.name for p in (root / folder).iterdir() if p.is_dir()}
    if run_log(root).is_file():
        names |= {
            r["dataset"] for r in read_log(run_log(root)) if isinstance(r.get("dataset"), str)
        }
    return names


def run_log(root: Path) -> Path:
    return root / RUN_LOG


def summary_dataset(path: Path) -> str:
    """The dataset a ``summary_<d>.json`` file is named for."""
    return path.name[len("summary_") : -len(".json")]


def summary_paths(root: Path) -> list[Path]:
    """The bundle's summary files, sorted; a folder without any is not a bundle."""
    paths = sorted(root.glob(SUMMARY_GLOB))
    if not paths:
        raise HarnessError(f"{root}: no summary_<dataset>.json in this folder; is it a bundle?")
    return paths


def records_digest(records: list[dict[str, Any]]) -> tuple[str, int]:
    """sha256 and size of the canonical JSON of some run log records."""
    data = dumps_json(records).encode("utf-8")
    return hashlib.sha256(data).hexdigest(), len(data)


def dataset_records(root: Path, dataset: str) -> list[dict[str, Any]]:
    """One dataset's records in the bundle's run log (schema-checked by ``read_log``)."""
    return [r for r in read_log(run_log(root)) if r.get("dataset") == dataset]
