"""The acceptance bundle: where the rehearsal leaves each dataset's artefacts, the digests its
summary pins them with, and checking a bundle later (``harness bundle verify|compare``).

- ``layout.py``: the names every reader and writer agrees on (``DatasetFiles``, the run log's
  place, ``records_digest``);
- ``verify.py``: ``verify_bundle``, in named phases, and its ``BundleReport``;
- ``compare.py``: ``compare_bundles``, two rehearsals' outcomes and metrics side by side;
- ``session.py``: the session files at the root (one verdict, stale datasets apart), and
  ``verify_session.py``, their phase of ``verify``;
- ``clear.py``: removing a dataset (``harness bundle clear``, a session's start, ``--fresh``).

The rest of writing a bundle is the rehearsal's business: it lives with the suite, in
``acceptance/``.
"""

from __future__ import annotations

from harness.bundle.compare import TIMING_METRICS, comparable, compare_bundles
from harness.bundle.layout import (
    DEFAULT_BUNDLE,
    LOGS_DIR,
    RUN_LOG,
    RUNS_DIR,
    SUMMARY_GLOB,
    DatasetFiles,
    dataset_records,
    records_digest,
    run_log,
)
from harness.bundle.verify import BundleProblem, BundleReport, verify_bundle

__all__ = [
    "DEFAULT_BUNDLE",
    "LOGS_DIR",
    "RUNS_DIR",
    "RUN_LOG",
    "SUMMARY_GLOB",
    "TIMING_METRICS",
    "BundleProblem",
    "BundleReport",
    "DatasetFiles",
    "comparable",
    "compare_bundles",
    "dataset_records",
    "records_digest",
    "run_log",
    "verify_bundle",
]
