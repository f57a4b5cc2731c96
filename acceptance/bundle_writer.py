"""Writing the rehearsal's bundle: merging each run's records into the shared run log, the
summary's artefact entries, and the tag manifest that pins the summary and the report (written
last). Clearing a dataset lives in ``harness.bundle.clear`` (``harness bundle clear`` needs it).

Only the rehearsal writes bundles; readers (``harness bundle verify|compare``) need just the
layout, which both sides take from ``harness.bundle``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.atomic import write_text_atomic
from harness.bundle import LOGS_DIR, RUN_LOG, DatasetFiles, dataset_records, records_digest
from harness.bundle.clear import clear_dataset
from harness.errors import HarnessError
from harness.hashing import sha256_file
from harness.training.runlog import update_log

__all__ = ["artefact_entries", "clear_dataset", "merge_run", "write_tag_manifest"]

# The training runs of a rehearsal, in the order their records are kept in the shared run log.
RUN_ORDER = ("bc_trainer", "anneal_smoke", "rollback_drill")


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


def artefact_entries(
    root: Path, dataset: str, exclude: tuple[Path, ...] = ()
) -> list[dict[str, Any]]:
    """The summary's ``artefacts``: every file the dataset owns but the summary and the tag
    manifest (which pin the summary), and its run log records."""
    files = DatasetFiles(root, dataset)
    entries = []
    for path in files.existing():
        if path in (*exclude, files.summary, files.tag_manifest):
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


def write_tag_manifest(files: DatasetFiles) -> Path:
    """Pin the summary and the report with their sha256 in ``tagmanifest_<d>.txt``, in
    ``sha256sum`` format; written after them, as the last file of the dataset's bundle."""
    lines = [f"{sha256_file(p).sha256}  {p.name}\n" for p in files.tag_files if p.is_file()]
    write_text_atomic(files.tag_manifest, "".join(lines))
    return files.tag_manifest
