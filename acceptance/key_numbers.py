"""The report's table of the numbers that decide, rounded to what matters, each beside what it is
judged against. A step that did not record a figure leaves its row out (an aborted step's
figures do not exist); ``summary_<dataset>.json`` keeps every figure unrounded.

What the anneal smoke proves, and no more: it runs ``--epochs 1``, so it shows that BC, one
PPO epoch with the BC term and the regression gate run end to end on the dataset, and how the BC
coefficient moved within that epoch as the PPO log recorded it. One epoch says nothing about
whether PPO improves on BC: the returns row says "after one update", and the value loss is an
untrained critic's (see ``VALUE_NOTE``).
"""

from __future__ import annotations

from typing import Any

BASELINE_NOTE = (
    "the outline's 1.8 s baseline is the run time of the BC and anneal unit suites, which train "
    "nothing for real; the rehearsal trains BC three times and PPO once, in three processes "
    "that each import PyTorch (about 2 s each), so it is not comparable. Information only"
)
VALUE_NOTE = (
    "after one update the critic has barely trained, so the value loss (squared return error) "
    "dominates the total; the policy and BC terms are the ones to read"
)


def _n(value: Any, digits: int = 3) -> str:
    """A number rounded for reading: below 10 to ``digits`` decimals, above to one."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}" if abs(value) < 10 else f"{value:.1f}"


def key_numbers(summary: dict[str, Any]) -> list[str]:
    m = summary["metrics"]
    rows = [
        *_integrity(m.get("dataset_integrity", {})),
        *_bc(m.get("bc_trainer", {})),
        *_smoke(m.get("anneal_smoke", {})),
        *_drill(m.get("rollback_drill", {})),
        *_wall_clock(summary["durations"]),
    ]
    return [
        "## Key numbers",
        "",
        "| what | value | judged against |",
        "| --- | --- | --- |",
        *(f"| {what} | {value} | {against} |" for what, value, against in rows),
        "",
    ]


Row = tuple[str, str, str]


def _integrity(m: dict[str, Any]) -> list[Row]:
    if "accepted_captures" not in m:
        return []
    problems = len(m.get("problems", []))
    return [
        (
            "Captures matching the checksum sheet",
            f"{m['matching']} of {m['accepted_captures']} ({m['matching_bytes'] / 1e6:.2f} MB)",
            f"all accepted captures; {problems} problem(s)",
        )
    ]


def _bc(m: dict[str, Any]) -> list[Row]:
    if "accuracy" not in m:
        return []
    baseline = m.get("baseline", m.get("majority_baseline", m.get("mean_action_baseline")))
    rule = {"majority_action": "always the most common action", "mean_action": "the mean action"}
    rows = [
        (
            "BC hold-out accuracy (step 2)",
            f"**{_n(m['accuracy'])}**",
            f"threshold {_n(m.get('threshold'))}; baseline {_n(baseline)} "
            f"({rule.get(m.get('baseline_rule'), 'baseline')})",
        )
    ]
    if m.get("per_action_recall"):
        recall = m["per_action_recall"]
        shown = ", ".join(f"{a}: {_n(recall[a])}" for a in sorted(recall, key=int))
        rows.append(("BC hold-out recall per action", shown, "no gate; a low one is a blind spot"))
    if m.get("mae_per_dimension"):
        shown = ", ".join(f"{i}: {_n(e)}" for i, e in enumerate(m["mae_per_dimension"]))
        rows.append(
            (
                "BC hold-out error per dimension (fraction of range)",
                shown,
                "no gate; lower is better",
            )
        )
    return rows


def _smoke(m: dict[str, Any]) -> list[Row]:
    if "exit_code" not in m:
        return []
    rows: list[Row] = [("Anneal smoke exit code (step 3)", str(m["exit_code"]), "0")]
    if m.get("world_size") is not None:
        rows.append(("World size of the smoke", str(m["world_size"]), "processes that trained"))
    if "loss_policy" in m:
        parts = (
            f"policy {_n(m['loss_policy'])}, value {_n(m['loss_value'])}, entropy "
            f"{_n(m['entropy'])}, BC term {_n(m['loss_bc'])}"
        )
        rows.append(("PPO loss parts, last update", parts, VALUE_NOTE))
    if "bc_coef_first" in m:
        moved = m["bc_coef_first"] != m["bc_coef_last"]
        what = (
            "moved within the smoke, as the PPO log records it"
            if moved
            else "did not move: the smoke shows no anneal"
        )
        rows.append(
            (
                "BC coefficient, first and last logged",
                f"{_n(m['bc_coef_first'])} → {_n(m['bc_coef_last'])}",
                f"{what} ({m['ppo_updates_logged']} update(s) logged"
                + (
                    f", {m['critic_only_updates']} of them critic warm-up"
                    if m.get("critic_only_updates")
                    else ""
                )
                + ")",
            )
        )
    if "epoch_return" in m:
        value = (
            "none: no training episode ended"
            if m["epoch_return"] is None
            else f"{_n(m['epoch_return'], 1)} ({m['epoch_episodes']} episode(s))"
        )
        rows.append(("Training return of the epoch (PPO log)", value, "information"))
    if m.get("mean_return") is not None:
        rows.append(
            (
                "Evaluation return, BC → after one PPO epoch",
                f"{_n(m.get('baseline_mean_return'), 1)} → {_n(m['mean_return'], 1)}",
                "the regression gate (same seeded episodes); one epoch proves the pipeline "
                "runs, not that PPO improves on BC",
            )
        )
    return rows


def _drill(m: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    if "threshold_asked" in m:
        raised = " (raised)" if m["threshold_raised"] else ""
        rows.append(
            (
                "Rollback drill threshold (step 4)",
                "none" if m["threshold"] is None else f"{_n(m['threshold'], 4)}{raised}",
                f"asked {_n(m['threshold_asked'], 4)}: {m['threshold_why']}",
            )
        )
    if "exit_code" in m:
        rows.append(("Drill exit code", f"**{m['exit_code']}**", "3: the gate failed, rolled back"))
    if "promoted_before" in m:
        same = m["promoted_before"] == m["promoted_after"]
        rows.append(
            (
                "Promoted checkpoint, before → after",
                f"`{m['promoted_before']}` → `{m['promoted_after']}`",
                "unchanged" if same else "**changed**",
            )
        )
    if "store_digest_before" in m:
        same = m["store_digest_before"] == m["store_digest_after"]
        rows.append(
            (
                "Store digest, before → after",
                f"`{m['store_digest_before'][:12]}` → `{m['store_digest_after'][:12]}`",
                ("unchanged" if same else "**changed**")
                + " (sha256 of every file of the drill's store, first 12 hex digits)",
            )
        )
    return rows


def _wall_clock(durations: dict[str, Any]) -> list[Row]:
    return [
        (
            "Wall-clock: session, this dataset's steps",
            f"{durations['session_s']:.1f} s, {durations['steps_s']:.1f} s",
            BASELINE_NOTE,
        )
    ]
