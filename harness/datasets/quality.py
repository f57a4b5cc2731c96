"""Quality check of captures: malformed content and the shape of the demonstrations.

Errors make a capture unusable (missing datasets, length mismatches, NaN/inf observations,
actions outside the action space, a different environment). Warnings are for a reviewer: a
capture dominated by one action (an "idle" demonstrator) or episodes that end far earlier than
their siblings. Per-action counts and episode returns are always reported.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.datasets.capture import (
    EPISODE_KEYS,
    FORMAT_VERSION,
    REQUIRED_ATTRS,
    check_before_reading,
    open_capture,
    read_meta,
)
from harness.envs import EnvSpec, env_spaces
from harness.errors import CaptureError, HarnessError
from harness.formatting import clip

DOMINANT_SHARE = 0.9  # a capture where one action exceeds this share is flagged


@dataclass
class CaptureQuality:
    """What ``harness dataset inspect`` says of one capture."""

    path: Path
    entry: str | None = None
    status: str | None = None
    env_id: str | None = None
    demonstrator: str | None = None
    noise: float | None = None
    episodes: int = 0
    steps: int = 0
    action_counts: dict[int, int] = field(default_factory=dict)
    returns: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def action_shares(self) -> dict[int, float]:
        total = sum(self.action_counts.values())
        return {a: c / total for a, c in sorted(self.action_counts.items())} if total else {}

    def to_json(self) -> dict[str, Any]:
        returns = np.asarray(self.returns, dtype=np.float64)
        return {
            "entry": self.entry,
            "status": self.status,
            "path": str(self.path),
            "env_id": self.env_id,
            "demonstrator": self.demonstrator,
            "noise": self.noise,
            "episodes": self.episodes,
            "steps": self.steps,
            "action_counts": {str(a): c for a, c in sorted(self.action_counts.items())},
            "return_mean": float(returns.mean()) if returns.size else None,
            "return_min": float(returns.min()) if returns.size else None,
            "return_max": float(returns.max()) if returns.size else None,
            "ok": self.ok,
            "errors": self.errors,
            "warnings": self.warnings,
        }


def inspect_capture(path: str | Path, expected_env: EnvSpec | str | None = None) -> CaptureQuality:
    """Inspect one capture read-only; problems are collected, never raised."""
    path = Path(path)
    q = CaptureQuality(path=path)
    try:
        f = open_capture(path)
    except CaptureError as exc:
        q.errors.append(str(exc).removeprefix(f"{path}: "))
        return q
    with f:
        missing_attrs = [k for k in REQUIRED_ATTRS if k not in f.attrs]
        if missing_attrs:
            q.errors.append(f"missing file attribute(s) {', '.join(missing_attrs)}")
            return q
        try:
            meta = read_meta(f, path)
        except CaptureError as exc:
            q.errors.append(str(exc).removeprefix(f"{path}: "))
            return q
        q.env_id, q.demonstrator = meta.env_id, meta.demonstrator
        noise = meta.demonstrator_params.get("noise")
        q.noise = float(noise) if isinstance(noise, int | float) else None
        if meta.format_version != FORMAT_VERSION:
            q.errors.append(f"format_version {meta.format_version} is not supported")
            return q
        if isinstance(expected_env, str):
            expected_env = EnvSpec.of(expected_env)
        if expected_env is not None and meta.env_spec() != expected_env:
            q.errors.append(
                f"recorded in {clip(str(meta.env_spec()))}, the dataset is for {expected_env}"
            )
        try:
            obs_space, act_space = env_spaces(meta.env_spec())
        except HarnessError as exc:
            q.errors.append(clip(str(exc), 300))  # it names the capture's env id
            return q
        try:  # what the episodes declare, before anything is read
            names = check_before_reading(f, path, meta.env_spec())
        except CaptureError as exc:
            q.errors.append(str(exc).removeprefix(f"{path}: "))
            return q
        if not names:
            q.errors.append("no episodes (no data/demo_<k> groups)")
        counts: Counter[int] = Counter()
        for name in names:
            _inspect_episode(q, f["data"][name], name, obs_space, act_space, counts)
        q.action_counts = dict(sorted(counts.items()))
        if meta.steps >= 0 and q.steps != meta.steps and not q.errors:
            q.errors.append(f"file attribute steps={meta.steps} but the episodes hold {q.steps}")
    _warn(q)
    return q


def _inspect_episode(
    q: CaptureQuality, group: Any, name: str, obs_space: Any, act_space: Any, counts: Counter[int]
) -> None:
    where = f"data/{name}"
    missing = [k for k in EPISODE_KEYS if k not in group]
    if missing:
        q.errors.append(f"{where}: missing dataset(s) {', '.join(missing)}")
        return
    try:
        arrays = {k: group[k][()] for k in EPISODE_KEYS}
    except OSError as exc:  # a damaged chunk
        q.errors.append(f"{where}: cannot be read ({exc})")
        return
    lengths = {k: (a.shape[0] if a.ndim else None) for k, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        detail = ", ".join(f"{k}={n}" for k, n in lengths.items())
        q.errors.append(f"{where}: lengths differ ({detail})")
        return
    obs, actions, rewards = arrays["obs"], arrays["actions"], arrays["rewards"]
    q.episodes += 1
    q.steps += len(actions)
    q.returns.append(float(np.sum(rewards, dtype=np.float64)))
    problem = _observation_problem(obs, obs_space)
    if problem:
        q.errors.append(f"{where}: {problem}")
    if not np.issubdtype(rewards.dtype, np.number):
        q.errors.append(f"{where}: rewards must be numbers, found {rewards.dtype}")
    elif not np.isfinite(rewards).all():
        q.errors.append(f"{where}: non-finite rewards")
    if np.issubdtype(actions.dtype, np.inexact) and not np.isfinite(actions).all():
        q.errors.append(f"{where}: NaN or inf in actions")
    if not _check_actions(q, where, actions, act_space, counts):
        return
    ends = arrays["terminated"].astype(bool) | arrays["truncated"].astype(bool)
    if len(ends) and not ends[-1]:
        q.warnings.append(f"{where}: last step is neither terminated nor truncated")
    if ends[:-1].any():
        q.errors.append(f"{where}: episode continues after a terminal step")


def _observation_problem(obs: np.ndarray, obs_space: Any) -> str | None:
    """A shape that is not the environment's, or NaN/inf values; None if the observations fit."""
    if obs_space.shape is not None and tuple(obs.shape[1:]) != tuple(obs_space.shape):
        return f"observations have shape {obs.shape[1:]}, the environment's are {obs_space.shape}"
    if not np.issubdtype(obs.dtype, np.number):
        return None
    bad = ~np.isfinite(obs)
    if not bad.any():
        return None
    rows = np.flatnonzero(bad.reshape(len(obs), -1).any(axis=1))
    kinds = "NaN" if np.isnan(obs).any() else "inf"
    if np.isnan(obs).any() and np.isinf(obs).any():
        kinds = "NaN and inf"
    return f"{kinds} in {len(rows)} observation(s), first at step {rows[0]}"


def _check_actions(
    q: CaptureQuality, where: str, actions: np.ndarray, act_space: Any, counts: Counter[int]
) -> bool:
    """Record actions outside the action space and count the discrete ones; False when the
    actions are not even an integer vector (nothing more is checked of the episode)."""
    import gymnasium as gym

    if not isinstance(act_space, gym.spaces.Discrete):
        inside = np.array([act_space.contains(a) for a in actions])
        if not inside.all():
            q.errors.append(f"{where}: {int((~inside).sum())} action(s) outside {act_space}")
        elif len(actions) > 1 and np.all(np.ptp(actions, axis=0) == 0):
            # The continuous counterpart of "one action dominates": an operator who left the
            # controls, and nothing for behaviour cloning to learn from.
            q.warnings.append(f"{where}: every action is the same ({clip(str(actions[0]))})")
        return True
    if not np.issubdtype(actions.dtype, np.integer) or actions.ndim != 1:
        q.errors.append(
            f"{where}: actions must be a 1-D integer array, found {actions.dtype} {actions.shape}"
        )
        return False
    lo, hi = int(act_space.start), int(act_space.start + act_space.n - 1)
    outside = (actions < lo) | (actions > hi)
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        q.errors.append(
            f"{where}: {int(outside.sum())} action(s) outside the action space "
            f"[{lo}, {hi}], first {int(actions[first])} at step {first}"
        )
    counts.update(int(a) for a in actions[~outside])
    return True


def _warn(q: CaptureQuality) -> None:
    shares = q.action_shares()
    if shares:
        action, share = max(shares.items(), key=lambda kv: kv[1])
        if share > DOMINANT_SHARE:
            q.warnings.append(f"one action dominates: action {action} is {share:.0%} of steps")


def compare_entries(reports: list[CaptureQuality]) -> None:
    """Dataset-level warnings: an entry whose mean return is far below the dataset's best one."""
    means = {id(r): float(np.mean(r.returns)) for r in reports if r.returns}
    if not means:
        return
    best = max(means.values())
    for r in reports:
        mean = means.get(id(r))
        # Far below: by half the best's magnitude, whatever its sign (costs are negative).
        if mean is not None and mean < best - 0.5 * abs(best) and mean != best:
            what = "episodes end early" if best > 0 else "returns far below the best entry"
            r.warnings.append(
                f"{what}: mean return {mean:.1f}, the dataset's best entry averages {best:.1f}"
            )
