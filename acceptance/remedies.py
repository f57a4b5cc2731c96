"""What to do about a step that did not pass: one remedial action per cause of failure.

A step that fails for a cause it recognises records it (``acceptance.diagnosis.fail``): the
cause's key and the figures its remedial action quotes. The report turns them into the action
below. A failure no cause matches gets its step's ``FALLBACK``, which claims no cause.
``docs/acceptance.md`` ("Causes and remedial actions") has this table as users read it.

Every action may quote ``{name}`` (the dataset), ``{arg}`` (the ``--dataset`` text), ``{base}``
(the base config) and ``{run}`` (the step's run folder); the rest are the cause's own figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cause:
    key: str
    title: str
    """What went wrong, in a few words: the report shows it beside the message."""
    action: str


_RERUN = "`pytest acceptance/ -m rehearsal --dataset={arg}{options}`"
_NO_THRESHOLD = "Do not lower bc.accuracy_threshold to make the gate pass."
_STOP = "Do not ship this phase"

CAUSES = {
    c.key: c
    for c in (
        Cause(
            "integrity_failed",
            "the captures do not match their checksum sheet",
            "Do not train on this dataset. Run `harness dataset verify {arg}` to list every "
            "problem. Restore each mismatched or missing capture from its archived original "
            "(re-recording with the same seed gives the same bytes), or reject it with `harness "
            "dataset review {name} <id> --reject --reason TEXT`, which rewrites the sheet; never "
            "rewrite the sheet over a change nobody can explain. Then rerun the rehearsal.",
        ),
        Cause(
            "no_accepted_capture",
            "the manifest accepts no capture",
            "There is nothing to verify or train on. Check the captures with `harness dataset "
            "inspect {arg}`, accept the good ones with `harness dataset review {arg} <id> "
            "--accept`, then rerun: " + _RERUN + ".",
        ),
        Cause(
            "env_unavailable",
            "the dataset's environment cannot be made on this machine",
            "{detail}. Install what that line names (the Box2D environments: `pip install "
            "'gymnasium[box2d]'`); for a module:EnvId id, put the module's package on the "
            "import path (PYTHONPATH, or pip install it); or correct env_id and env_kwargs in "
            "the manifest if they are wrong; then rerun. Neither the data nor the trainer is at "
            "fault.",
        ),
        Cause(
            "env_unsupported",
            "the trainer cannot learn in the dataset's environment",
            "{detail}. The trainer takes Box observation vectors and Discrete or bounded Box "
            "actions; rehearse a dataset of such an environment (for images, a wrapper that "
            "gives feature vectors).",
        ),
        Cause(
            "env_mismatch",
            "the captures and the manifest name different environments",
            "{detail}. The rehearsal trains in the manifest's environment (env_id, env_kwargs), "
            "so every accepted capture must have been recorded in it: `harness dataset inspect "
            "{arg}` shows each capture's environment. Correct the manifest or reject the "
            "captures of another environment, then rerun.",
        ),
        Cause(
            "input_error",
            "the trainer refused its input",
            "{detail}. Fix the file or value that line names (the base config {base}, the "
            "manifest or a capture), then rerun: " + _RERUN + ".",
        ),
        Cause(
            "bc_below_threshold",
            "BC learns, but not enough to meet the threshold",
            "Hold-out accuracy {accuracy} beats the baseline {baseline} but is below the base "
            "config's threshold {threshold} ({base}). Read the bc record in "
            "runs/{name}/bc_trainer/logs/anneal_results.json (per-action recall) and check the "
            "captures with `harness dataset inspect {arg}`; reject captures with many slips or "
            "record more demonstrations, then rerun. " + _NO_THRESHOLD,
        ),
        Cause(
            "random_demonstrator",
            "the demonstrations are random actions",
            "Every accepted capture was recorded by the random demonstrator (or with noise 1), "
            "so its actions do not depend on the observations and no policy can learn them: "
            "hold-out accuracy {accuracy} against the baseline {baseline} and the threshold "
            "{threshold}. More of them will not help. Record demonstrations with a demonstrator "
            "that acts on what it observes (`harness capture record --demonstrator heuristic` "
            "or a module:callable of your own), add and accept them, then rerun. " + _NO_THRESHOLD,
        ),
        Cause(
            "bc_no_better_than_baseline",
            "the demonstrated actions do not depend on the observations",
            "Hold-out accuracy {accuracy} does not beat the baseline {baseline} of always "
            "predicting the training set's most common (or mean) action, so BC learned nothing "
            "from the observations: the demonstrator does the same whatever it sees, or acts at "
            "random, or its slips outnumber its own actions. More of the same demonstrations will "
            "not help: look at them with `harness dataset inspect {arg}` and record with a "
            "demonstrator that acts on what it observes, then rerun. " + _NO_THRESHOLD,
        ),
        Cause(
            "bc_gate_failed",
            "the BC gate failed",
            "{detail}. Read the bc record in runs/{name}/{run}/logs/anneal_results.json and "
            "check the captures with `harness dataset inspect {arg}`, then rerun. " + _NO_THRESHOLD,
        ),
        Cause(
            "smoke_bc_gate",
            "the smoke's BC stage failed its gate, as step 2 did",
            "The smoke retrains BC first and its gate failed (accuracy {accuracy}, threshold "
            "{threshold}), so it rolled back before PPO, as it should: the cause is BC's. Follow "
            "the BC trainer verification's remedial action; this step passes once that one does.",
        ),
        Cause(
            "bc_not_reproduced",
            "the same config and seed gave another BC accuracy",
            "This run's BC reached {accuracy}, step 2's {step2_accuracy}, with the same config "
            "and seed: training is not deterministic across processes here, and the rehearsal's "
            "figures cannot be trusted. Run `pytest tests/test_bc.py tests/test_training.py` and "
            "check that nothing changed the captures or the installed packages between the runs.",
        ),
        Cause(
            "regression_gate",
            "the PPO fine-tune was worse than BC alone",
            "The regression gate rolled the fine-tune back: mean return {mean_return} against "
            "the BC policy's {baseline_return}. Compare the returns in the ppo record of "
            "runs/{name}/anneal_smoke/logs/anneal_results.json; an environment other than the "
            "base config's may need PPO settings of its own in a base config for the dataset "
            "(the manifest's base_config). Do not widen anneal.regression_tolerance to hide a "
            "real regression.",
        ),
        Cause(
            "cli_crashed",
            "the training command crashed",
            "`run_training.py` ended with exit {exit_code} and no one-line error: a fault in the "
            "harness, not in the data. Its last line on stderr: {detail}. The whole output is in "
            "runs/{name}/{run}/cli_stderr.txt; rerun the command in this step's metrics to "
            "reproduce it.",
        ),
        Cause(
            "records_wrong",
            "the run's records are not what the command should write",
            "{detail}. The command ran, but its run log is not what it should write: a fault in "
            "the harness. " + _STOP + "; run `pytest tests/test_mixed_training.py "
            "tests/test_run_training.py` and read runs/{name}/{run}/logs/anneal_results.json.",
        ),
        Cause(
            "drill_unfailable",
            "no threshold of at most 1 can fail the BC gate",
            "Step 2's BC predicts every hold-out action right, so the drill cannot force the "
            "failed gate it needs; promotion and rollback are not at fault. Hold out more "
            "episodes (bc.holdout in {base}) so the hold-out set holds actions the policy gets "
            "wrong, or rehearse on a dataset whose demonstrations have slips (idle_v1), whose "
            "drill can fail: this dataset is too easy to drill the gate on.",
        ),
        Cause(
            "drill_gate_passed",
            "the drill's threshold was reachable",
            "The drill's BC reached {accuracy} at threshold {threshold}, so its gate passed and "
            "there was no failure to roll back: this says nothing about promotion or rollback. "
            "Rerun with `--drill-threshold` above {accuracy}.",
        ),
        Cause(
            "no_promoted_checkpoint",
            "the drill's store held no promoted checkpoint",
            'Step 2 left no promoted checkpoint to copy, so "the promoted checkpoint is '
            'unchanged" would prove nothing. Make the BC trainer verification pass first.',
        ),
        Cause(
            "ppo_ran",
            "PPO ran after a failed BC gate",
            _STOP + ": {detail}, so a failed gate does not stop the run. Read "
            "runs/{name}/rollback_drill/cli_stderr.txt and the drill's run log, and run `pytest "
            "tests/test_mixed_training.py`.",
        ),
        Cause(
            "store_changed",
            "a failed gate changed the checkpoint store",
            _STOP + ": a failed gate must leave the store as it was, and {detail}, so promotion "
            "or rollback is broken. Read runs/{name}/rollback_drill/cli_stderr.txt and the "
            "drill's run log, and run `pytest tests/test_checkpoints.py "
            "tests/test_mixed_training.py`.",
        ),
        Cause(
            "not_promoted",
            "a passed gate did not promote its checkpoint",
            _STOP + ": the BC gate passed but {detail}, so promotion is broken. Run `pytest "
            "tests/test_checkpoints.py`.",
        ),
        Cause(
            "after_failed_steps",
            "artefacts of steps that did not pass are missing",
            "{detail}. The missing artefacts belong to the steps that did not pass ({steps}): "
            "fix those first; this step then passes.",
        ),
    )
}

# A step's failure that no cause matched: what to read, claiming no cause.
FALLBACK = {
    "dataset_integrity": CAUSES["integrity_failed"].action,
    "bc_trainer": CAUSES["bc_gate_failed"].action.replace("{detail}. ", ""),
    "anneal_smoke": (
        "Read runs/{name}/anneal_smoke/cli_stderr.txt and the run log beside it, and rerun the "
        "command in this step's metrics to reproduce."
    ),
    "rollback_drill": (
        "Read runs/{name}/rollback_drill/cli_stderr.txt and the drill's run log beside it, and "
        "rerun the command in this step's metrics to reproduce."
    ),
    "artefact_capture": (
        "The bundle is incomplete or invalid where the message says. Rerun the rehearsal; a "
        "file that is still missing belongs to a step that failed, so fix that step first."
    ),
}
ABORTED = "Fix {failed} first (see its remedial action), then rerun the rehearsal: " + _RERUN + "."
ERROR = (
    "The step could not run: its set-up or teardown failed. The message names the file or "
    "value at fault (a manifest, a config); fix it and rerun the rehearsal."
)
NOT_RUN = (
    "Run the whole rehearsal: " + _RERUN + " (this step was not selected, or the session "
    "stopped before it)."
)


class _Figures(dict[str, Any]):
    """Format arguments: a figure the step did not record shows as "?", never a KeyError."""

    def __missing__(self, key: str) -> str:
        return "" if key == "options" else "?"


def cause_title(cause: dict[str, Any] | None) -> str | None:
    known = CAUSES.get((cause or {}).get("key", ""))
    return known.title if known else None


def remedial_action(
    step: str,
    outcome: str,
    cause: dict[str, Any] | None,
    figures: dict[str, Any],
    aborted_by: str,
) -> str | None:
    """The remedial action of a step that did not pass (None when it passed).

    ``figures`` holds ``name``, ``arg``, ``base`` and ``run``; ``aborted_by`` names the earlier
    steps whose failure aborted this one.
    """
    values = _Figures(figures)
    if outcome == "passed":
        return None
    if outcome == "aborted":
        return ABORTED.format_map(_Figures(figures, failed=aborted_by or "the step that failed"))
    if outcome == "error":
        return ERROR
    if outcome != "failed":
        return NOT_RUN.format_map(values)
    known = CAUSES.get((cause or {}).get("key", ""))
    if known is None:
        return FALLBACK[step].format_map(values)
    return known.action.format_map(_Figures(figures, **{k: _show(v) for k, v in cause.items()}))


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value == value else "nan"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)
