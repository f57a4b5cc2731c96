"""Comparing two rehearsals (``harness bundle compare``): the same code and data must give the
same outcomes and metrics, whether the steps ran serially or on several workers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.bundle.layout import DatasetFiles, summary_dataset, summary_paths
from harness.errors import HarnessError
from harness.validation import check, load_json

# Figures that differ between two sessions of the same rehearsal by nature: wall-clock, and the
# drill store's digests (its promoted.json records when the checkpoint was promoted).
TIMING_METRICS = ("cli_seconds", "store_digest_before", "store_digest_after")
ABSENT = "(absent)"


def comparable(root: Path, dataset: str) -> dict[str, Any]:
    """What must be equal between two rehearsals of one dataset with the same code and data:
    the steps' outcomes, messages and remedial actions, the metrics (``TIMING_METRICS`` aside) and the
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


def compare_bundles(
    a: str | os.PathLike[str], b: str | os.PathLike[str]
) -> tuple[list[str], list[str]]:
    """The datasets both bundles hold, and one line per difference between their rehearsals."""
    roots = [Path(a), Path(b)]
    names = [_datasets(root) for root in roots]
    differences = [
        f"{name}: rehearsed only in {root}"
        for root, mine, other in ((roots[0], names[0], names[1]), (roots[1], names[1], names[0]))
        for name in sorted(mine - other)
    ]
    both = sorted(names[0] & names[1])
    for name in both:
        left, right = (_flat(comparable(root, name), "") for root in roots)
        for key in sorted(set(left) | set(right)):
            if left.get(key, ABSENT) != right.get(key, ABSENT):
                differences.append(
                    f"{name}: {key}: {_show(left.get(key, ABSENT))} in {roots[0]}, "
                    f"{_show(right.get(key, ABSENT))} in {roots[1]}"
                )
    return both, differences


def _datasets(root: Path) -> set[str]:
    """The datasets a bundle holds a summary of."""
    if not root.is_dir():
        raise HarnessError(f"{root}: no such bundle folder")
    return {summary_dataset(p) for p in summary_paths(root)}


def _relabel(value: Any, root: str) -> Any:
    if isinstance(value, str):
        return value.replace(root, "<bundle>")
    if isinstance(value, list):
        return [_relabel(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _relabel(v, root) for k, v in value.items()}
    return value


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    """Nested dicts as one level of dotted keys (an empty dict stays a value)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flat(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 120 else text[:117] + "..."
