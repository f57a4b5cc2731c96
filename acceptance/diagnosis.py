"""Why a step failed: the cause a step records before failing, from what it measured.

``fail`` records the cause (its key in ``acceptance.remedies.CAUSES`` and the figures its
remedial action quotes) as the test's ``cause`` property, then fails the test with one line and
no traceback. The controller collects the property; the report turns it into the remedial action.

The environment is looked at only once something has failed: making it costs an import of
Gymnasium and the environment's own start-up, which a passing rehearsal does not pay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import pytest

from harness.config import Config
from harness.config.dataset_match import env_mismatch
from harness.datasets.capture import open_capture, read_meta
from harness.datasets.manifest import Manifest
from harness.envs import check_spaces, make_env
from harness.errors import EXIT_BAD_INPUT, EXIT_PROBLEMS, HarnessError

Record = Callable[[str, Any], None]

# The BC gate's baseline: the majority action for discrete actions; a record of continuous
# actions may name its constant predictor otherwise.
BASELINE_KEYS = ("baseline", "majority_baseline", "mean_action_baseline")
BC_FIGURES = ("accuracy", "threshold", *BASELINE_KEYS, "mse", "r2")


def fail(record: Record, key: str, message: str, **figures: Any) -> NoReturn:
    """Record the cause ``key`` with ``figures`` and fail the step with ``message``."""
    record("cause", {"key": key, **figures})
    pytest.fail(one_line(message), pytrace=False)


def one_line(text: str, limit: int = 600) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def last_line(text: str) -> str:
    """The last non-empty line of a command's stderr: its one-line error, or a traceback's
    exception line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return one_line(lines[-1]) if lines else "(no stderr)"


def environment_problem(manifest: Manifest) -> tuple[str, str] | None:
    """``(cause, line)`` when the manifest's environment cannot be made or learned in, or an
    accepted capture was recorded in another one; None when all is well."""
    spec = manifest.env_spec()
    try:
        make_env(spec).close()
    except HarnessError as exc:
        return "env_unavailable", str(exc)
    try:
        check_spaces(spec)
    except HarnessError as exc:
        return "env_unsupported", str(exc)
    for entry in manifest.accepted():
        try:
            path = manifest.capture_path(entry)
            with open_capture(path) as f:
                recorded = read_meta(f, path).env_spec()
        except HarnessError:
            continue  # an unreadable capture is the integrity step's to report
        if recorded != spec:
            return "env_mismatch", (
                f"{manifest.path}: capture '{entry.id}' was recorded in {recorded}, "
                f"the manifest names {spec}"
            )
    return None


def input_cause(manifest: Manifest, config: Config, line: str) -> tuple[str, str]:
    """The cause of a refusal of bad input (a ``HarnessError``, a CLI's exit 2) saying ``line``."""
    found = environment_problem(manifest)
    if found is not None:
        return found
    mismatch = env_mismatch(config, manifest)
    if mismatch is not None:
        return "env_mismatch", mismatch
    return "input_error", line


def bc_figures(source: Any) -> dict[str, Any]:
    """The gate's figures of a BC result or record, whatever the action space named them."""
    get = source.get if isinstance(source, dict) else lambda k: getattr(source, k, None)
    return {k: v for k in BC_FIGURES if (v := get(k)) is not None}


def baseline_of(figures: dict[str, Any]) -> float | None:
    return next((figures[k] for k in BASELINE_KEYS if k in figures), None)


def acts_at_random(manifest: Manifest) -> bool:
    """Every accepted capture was recorded by the random demonstrator, or with noise 1: its
    actions do not depend on the observations at all."""
    accepted = manifest.accepted()
    return bool(accepted) and all(
        e.demonstrator.get("name") == "random" or e.demonstrator.get("noise") == 1.0
        for e in accepted
    )


def bc_gate_cause(figures: dict[str, Any], manifest: Manifest) -> str:
    """Why a BC gate failed: random demonstrations, no better than the baseline, below the
    threshold, or another reason."""
    accuracy, threshold, baseline = (
        figures.get("accuracy"),
        figures.get("threshold"),
        baseline_of(figures),
    )
    if acts_at_random(manifest):
        return "random_demonstrator"  # whatever the figures: chance can beat a baseline
    if accuracy is None:
        return "bc_gate_failed"
    if baseline is not None and accuracy <= baseline:
        return "bc_no_better_than_baseline"
    if threshold is not None and accuracy < threshold:
        return "bc_below_threshold"
    return "bc_gate_failed"


def gate_figures(figures: dict[str, Any]) -> dict[str, Any]:
    """What a BC cause's remedial action quotes."""
    return {
        "accuracy": figures.get("accuracy"),
        "threshold": figures.get("threshold"),
        "baseline": baseline_of(figures),
    }


def fail_cli(
    record: Record, returncode: int, stderr: str, manifest: Manifest, config: Config
) -> NoReturn:
    """A CLI run that ended neither 0 nor 3: bad input (2), integrity (1), or a crash."""
    line = last_line(stderr)
    message = f"exit {returncode}: {line}"
    if returncode == EXIT_BAD_INPUT:
        key, detail = input_cause(manifest, config, line)
        fail(record, key, message, detail=detail, exit_code=returncode)
    if returncode == EXIT_PROBLEMS:
        fail(record, "integrity_failed", message, detail=line, exit_code=returncode)
    fail(record, "cli_crashed", message, detail=line, exit_code=returncode)
