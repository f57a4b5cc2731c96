"""The capture format: one HDF5 file per recording session.

Layout (the capture contract of docs/architecture.md)::

    /                      attrs: env_id, env_kwargs (JSON; only when there are any),
                                  demonstrator, demonstrator_params (JSON), seed,
                                  format_version, episodes, steps
    /data/demo_<k>/obs         (T, *obs_shape)  observation before each action
    /data/demo_<k>/actions     (T,) int64 for Discrete, (T, *act_shape) float32 for Box
    /data/demo_<k>/rewards     (T,) float32
    /data/demo_<k>/terminated  (T,) bool
    /data/demo_<k>/truncated   (T,) bool

Datasets are written with ``track_times=False`` and without any wall-clock data so that the same
episodes give a byte-identical file, hence the same sha256.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.atomic import atomic_path
from harness.datasets.capture_limits import capture_problem, env_step_limit
from harness.envs import EnvSpec
from harness.errors import CaptureError, HarnessError
from harness.files import check_regular
from harness.formatting import clip

FORMAT_VERSION = 1
REQUIRED_ATTRS = ("env_id", "demonstrator", "seed", "format_version")
EPISODE_KEYS = ("obs", "actions", "rewards", "terminated", "truncated")
_DEMO = re.compile(r"^demo_(\d+)$")


@dataclass(frozen=True)
class Episode:
    """One episode of a capture; every array has one row per step."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rewards, dtype=np.float64))


@dataclass(frozen=True)
class CaptureMeta:
    """The file attributes of a capture."""

    env_id: str
    demonstrator: str
    demonstrator_params: dict[str, Any]
    seed: int
    format_version: int
    episodes: int
    steps: int
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def env_spec(self) -> EnvSpec:
        return EnvSpec.of(self.env_id, self.env_kwargs)

    def demonstrator_record(self) -> dict[str, Any]:
        """The manifest's ``demonstrator`` object for this capture."""
        return {"name": self.demonstrator, **self.demonstrator_params, "seed": self.seed}


def write_capture(
    path: str | Path,
    episodes: Sequence[Episode],
    *,
    env_id: str,
    demonstrator: str,
    demonstrator_params: dict[str, Any],
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
) -> CaptureMeta:
    """Write ``episodes`` to ``path`` atomically and deterministically."""
    import h5py

    meta = CaptureMeta(
        env_id=env_id,
        env_kwargs=dict(env_kwargs or {}),
        demonstrator=demonstrator,
        demonstrator_params=dict(demonstrator_params),
        seed=int(seed),
        format_version=FORMAT_VERSION,
        episodes=len(episodes),
        steps=sum(len(e) for e in episodes),
    )
    with atomic_path(path, suffix=".h5.tmp") as tmp, h5py.File(tmp, "w", libver="earliest") as f:
        data = write_attrs(f, meta)
        for k, episode in enumerate(episodes):
            write_episode(data, k, episode)
    return meta


def write_attrs(f: Any, meta: CaptureMeta) -> Any:
    """Write a capture's file attributes into the new file ``f`` (opened with
    ``libver="earliest"``) and return its ``data`` group; episodes go in with ``write_episode``.
    Also used by the streaming writer of ``harness.datasets.interchange``."""
    f.attrs["env_id"] = meta.env_id
    if meta.env_kwargs:  # absent when empty: captures recorded without arguments keep their bytes
        f.attrs["env_kwargs"] = meta.env_spec().kwargs_text
    f.attrs["demonstrator"] = meta.demonstrator
    f.attrs["demonstrator_params"] = json.dumps(meta.demonstrator_params, sort_keys=True)
    f.attrs["seed"] = np.int64(meta.seed)
    f.attrs["format_version"] = np.int64(FORMAT_VERSION)
    f.attrs["episodes"] = np.int64(meta.episodes)
    f.attrs["steps"] = np.int64(meta.steps)
    return f.create_group("data")


def write_episode(data: Any, k: int, episode: Episode) -> None:
    """Write ``episode`` as ``data/demo_<k>``, with the capture's fixed dataset settings."""
    group = data.create_group(f"demo_{k}")
    for key in EPISODE_KEYS:
        array = np.ascontiguousarray(getattr(episode, key))
        # Chunked + gzip keeps the committed datasets small; no timestamps for determinism.
        options: dict[str, Any] = {"track_times": False}
        if array.size >= 64:
            options.update(compression="gzip", compression_opts=4, shuffle=True)
        group.create_dataset(key, data=array, **options)


def _attr(f: Any, key: str, path: Path) -> Any:
    try:
        value = f.attrs[key]
    except KeyError:
        raise CaptureError(f"{path}: missing file attribute '{key}'") from None
    return value.decode() if isinstance(value, bytes) else value


def _json_attr(f: Any, key: str, path: Path) -> dict[str, Any]:
    from harness.validation import parse_json  # strict: no repeated key, no NaN, bounded depth

    text = f.attrs.get(key, "{}")
    try:
        value = parse_json(text.decode() if isinstance(text, bytes) else text, f"attribute '{key}'")
    except HarnessError as exc:  # "attribute 'demonstrator_params': not valid JSON: ..."
        raise CaptureError(f"{path}: {exc}") from None
    except (AttributeError, TypeError, UnicodeDecodeError):
        raise CaptureError(f"{path}: attribute '{key}' is not JSON text") from None
    return value if isinstance(value, dict) else {}


def read_meta(f: Any, path: Path) -> CaptureMeta:
    """Parse the attributes of an open capture file."""
    params = _json_attr(f, "demonstrator_params", path)
    env_kwargs = _json_attr(f, "env_kwargs", path)
    try:
        EnvSpec.of("env", env_kwargs)
    except HarnessError as exc:
        raise CaptureError(f"{path}: attribute 'env_kwargs': {exc}") from None
    try:
        return CaptureMeta(
            env_id=str(_attr(f, "env_id", path)),
            env_kwargs=env_kwargs,
            demonstrator=str(_attr(f, "demonstrator", path)),
            demonstrator_params=params,
            seed=int(_attr(f, "seed", path)),
            format_version=int(_attr(f, "format_version", path)),
            episodes=int(f.attrs.get("episodes", len(episode_names(f)))),
            steps=int(f.attrs.get("steps", -1)),
        )
    except (TypeError, ValueError) as exc:
        raise CaptureError(f"{path}: malformed file attribute: {clip(str(exc))}") from None


def open_capture(path: str | Path) -> Any:
    """Open a capture read-only; a missing file, one that is not a regular file (a FIFO would
    hang HDF5's open) or not HDF5 becomes a ``CaptureError``."""
    import h5py

    path = Path(path)
    try:
        check_regular(path)
    except FileNotFoundError:
        raise CaptureError(f"{path}: capture file not found") from None
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}; expected a capture file") from None
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise CaptureError(f"{path}: not a readable HDF5 capture ({exc})") from None


def episode_names(f: Any) -> list[str]:
    """``demo_<k>`` group names in episode order (numeric, not lexical)."""
    import h5py

    data = f.get("data")
    if not isinstance(data, h5py.Group):
        return []
    names = [n for n in data if _DEMO.match(n)]
    return sorted(names, key=lambda n: int(_DEMO.match(n).group(1)))  # type: ignore[union-attr]


def check_before_reading(f: Any, path: Path, env: EnvSpec) -> list[str]:
    """The capture's episode names, once what they declare is checked against the file and the
    environment's episode limit (``capture_limits``); else a ``CaptureError``."""
    names = episode_names(f)
    problem = (
        capture_problem(f["data"], names, EPISODE_KEYS, env_step_limit(env)) if names else None
    )
    if problem:
        raise CaptureError(f"{path}: {problem}")
    return names


def non_finite(arrays: dict[str, np.ndarray]) -> str | None:
    """Which of an episode's observations, actions and rewards hold NaN or inf, if any."""
    bad = [
        k
        for k in ("obs", "actions", "rewards")
        if np.issubdtype(arrays[k].dtype, np.inexact) and not np.isfinite(arrays[k]).all()
    ]
    return f"NaN or inf in {', '.join(bad)}" if bad else None


def read_capture(path: str | Path) -> tuple[CaptureMeta, list[Episode]]:
    """Read a whole capture, raising ``CaptureError`` on any structural problem, on what it
    declares beyond bounds (checked before reading) and on NaN or inf values."""
    path = Path(path)
    with open_capture(path) as f:
        meta = read_meta(f, path)
        if meta.format_version != FORMAT_VERSION:
            raise CaptureError(
                f"{path}: format_version {meta.format_version} is not supported "
                f"(this harness reads {FORMAT_VERSION})"
            )
        episodes = []
        for name in check_before_reading(f, path, meta.env_spec()):
            group = f["data"][name]
            missing = [k for k in EPISODE_KEYS if k not in group]
            if missing:
                raise CaptureError(f"{path}: data/{name} lacks dataset(s) {', '.join(missing)}")
            arrays = {k: group[k][()] for k in EPISODE_KEYS}
            lengths = {k: a.shape[0] if a.ndim else -1 for k, a in arrays.items()}
            if len(set(lengths.values())) != 1:
                raise CaptureError(
                    f"{path}: data/{name} has datasets of different lengths {lengths}"
                )
            if problem := non_finite(arrays):
                raise CaptureError(f"{path}: data/{name}: {problem}; it cannot be trained on")
            episodes.append(Episode(**arrays))
    return meta, episodes
