"""What a format reader hands over, and one source episode made into a capture's ``Episode``.

A reader opens its source and lists its episodes (``SourceEpisode``): for each, where it lies
in the source file as ``Part`` slices of HDF5 datasets, found from metadata alone. Nothing is
read until the writer asks for that one episode: ``read_episode`` first checks what the slices
declare (stored in the file, shapes that fit the environment, no more steps than the episode
has) and only then reads them, converts them to the capture's dtypes and checks the values
(finite, actions inside the action space). Every refusal is one line naming the source file,
the episode and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.datasets.capture import Episode
from harness.datasets.capture_limits import dataset_problem
from harness.envs import EnvSpec
from harness.errors import HarnessError

# Actions a little outside a Box's bounds are float noise (a float64 bound stored as float32);
# anything further is a source for another environment.
ACTION_TOLERANCE = 1e-5
# Episodes one source may list: each is a small record held while the capture is written.
MAX_EPISODES = 200_000


class SourceError(HarnessError):
    """A source file that is malformed or disagrees with the environment (exit code 2)."""


@dataclass(frozen=True)
class Part:
    """Rows ``start:stop`` of the HDF5 dataset ``dataset`` (named ``name`` in messages)."""

    dataset: Any
    name: str
    start: int
    stop: int


@dataclass(frozen=True)
class SourceEpisode:
    """One episode of a source: its number as the source counts them, how messages name it,
    its steps, and the slices holding each field. ``obs`` may be several parts, concatenated
    along the feature axis in order; ``terminated``/``truncated`` may be absent (None)."""

    number: int
    where: str
    steps: int
    obs: tuple[Part, ...]
    actions: Part
    rewards: Part
    terminated: Part | None
    truncated: Part | None
    seed: int | None = None


@dataclass
class Source:
    """An opened source: its format, the file its provenance names, the environment it names
    (None if it names none) and its episodes. ``close`` closes the HDF5 file."""

    format: str
    file: Path
    env: EnvSpec | None
    episodes: list[SourceEpisode]
    handle: Any = None
    notes: list[str] = field(default_factory=list)
    also_read: tuple[Path, ...] = ()
    """Other files the source was read from (Minari's metadata.json): no output either."""

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
MAX_SELECTED = 10_000_000


def parse_episodes(spec: str) -> list[int]:
    """``--episodes SPEC``: comma-separated numbers and inclusive ranges (``0-9,12``), as a
    sorted list without repeats; else a ``HarnessError`` quoting the part that is wrong."""
    numbers: set[int] = set()
    for item in spec.split(","):
        match = _RANGE.match(item.strip())
        if not match:
            raise HarnessError(f"--episodes {spec!r}: {item!r} is not N or A-B (e.g. 0-9,12)")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if high < low:
            raise HarnessError(f"--episodes {spec!r}: range {item!r} runs backwards")
        if high - low + len(numbers) >= MAX_SELECTED:
            raise HarnessError(f"--episodes {spec!r}: more than {MAX_SELECTED:,} episodes")
        numbers.update(range(low, high + 1))
    return sorted(numbers)


def spec_of(numbers: list[int]) -> str:
    """The shortest ``--episodes`` SPEC of sorted ``numbers`` (``0-9,12``)."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def select(source: Source, wanted: list[int] | None) -> list[SourceEpisode]:
    """The source's episodes whose numbers are ``wanted`` (all if None), in source order."""
    if wanted is None:
        return list(source.episodes)
    have = {e.number: e for e in source.episodes}
    missing = [n for n in wanted if n not in have]
    if missing:
        shown = ", ".join(str(n) for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise SourceError(
            f"{source.file}: --episodes names episode(s) {shown} that the source does not have "
            f"(it has {spec_of(sorted(have)) or 'none'})"
        )
    chosen = set(wanted)
    return [e for e in source.episodes if e.number in chosen]


@dataclass(frozen=True)
class Spaces:
    """The environment's spaces as an episode is checked against them."""

    env: EnvSpec
    obs_space: Any
    act_space: Any
    discrete: bool
    step_limit: int | None


def _declared(part: Part, file: Path, where: str) -> None:
    problem = dataset_problem(part.dataset, part.name)
    if problem:
        raise SourceError(f"{file}: {where}: {problem}")
    rows = part.dataset.shape[0] if part.dataset.shape else 0
    if not 0 <= part.start <= part.stop <= rows:
        raise SourceError(
            f"{file}: {where}: {part.name} has {rows:,} rows, the episode needs rows "
            f"{part.start:,}-{part.stop:,}"
        )


def _read(part: Part) -> np.ndarray:
    try:
        array = part.dataset[part.start : part.stop]
    except (OSError, ValueError, TypeError) as exc:  # a damaged chunk, a compound type
        raise SourceError(f"{part.name}: cannot be read ({' '.join(str(exc).split())})") from None
    if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
        raise SourceError(f"{part.name}: holds {array.dtype}, not numbers")
    return array


def _obs_shape(parts: tuple[Part, ...]) -> tuple[int, ...]:
    shapes = [tuple(p.dataset.shape[1:]) or (1,) for p in parts]
    if len(shapes) == 1:
        return shapes[0]
    if any(len(s) != 1 for s in shapes):
        raise SourceError(
            f"observation keys {', '.join(p.name for p in parts)} are not all vectors "
            f"(shapes {shapes}); only vectors can be concatenated"
        )
    return (sum(s[0] for s in shapes),)


def check_declared(episode: SourceEpisode, file: Path, spaces: Spaces) -> None:
    """What the episode's slices declare, against the file and the environment, before any
    value is read: dataset problems, rows, episode length and observation/action shapes."""
    where = episode.where
    if episode.steps < 1:
        raise SourceError(f"{file}: {where}: no steps")
    if spaces.step_limit is not None and episode.steps > spaces.step_limit:
        raise SourceError(
            f"{file}: {where}: {episode.steps:,} steps, longer than {spaces.env}'s limit of "
            f"{spaces.step_limit:,} steps per episode"
        )
    parts = [*episode.obs, episode.actions, episode.rewards, episode.terminated, episode.truncated]
    for part in parts:
        if part is not None:
            _declared(part, file, where)
    try:
        obs_shape = _obs_shape(episode.obs)
    except SourceError as exc:
        raise SourceError(f"{file}: {where}: {exc}") from None
    if obs_shape != tuple(spaces.obs_space.shape):
        raise SourceError(
            f"{file}: {where}: observations have shape {obs_shape}, {spaces.env}'s are "
            f"{tuple(spaces.obs_space.shape)}"
        )
    act_shape = tuple(episode.actions.dataset.shape[1:])
    wanted = ((), (1,)) if spaces.discrete else (tuple(spaces.act_space.shape),)
    if act_shape not in wanted:
        raise SourceError(
            f"{file}: {where}: actions have shape {act_shape}, {spaces.env}'s action space "
            f"is {spaces.act_space}"
        )
    if tuple(episode.rewards.dataset.shape[1:]) not in ((), (1,)):
        raise SourceError(f"{file}: {where}: rewards are not one number per step")


def _actions(actions: np.ndarray, spaces: Spaces, where: str) -> np.ndarray:
    if not _finite(actions):
        raise SourceError(f"{where}: NaN or inf in actions")
    if spaces.discrete:
        actions = actions.reshape(len(actions))
        n = int(spaces.act_space.n)
        if np.issubdtype(actions.dtype, np.floating) and (actions != np.round(actions)).any():
            raise SourceError(f"{where}: actions are not whole numbers; {spaces.env} is Discrete")
        outside = (actions < 0) | (actions >= n)
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            raise SourceError(
                f"{where}: action {actions[first]:g} at step {first} is outside {spaces.env}'s "
                f"action space Discrete({n})"
            )
        return actions.astype(np.int64)
    low, high = spaces.act_space.low, spaces.act_space.high
    slack = ACTION_TOLERANCE * np.maximum(high - low, 1.0)
    outside = ((actions < low - slack) | (actions > high + slack)).reshape(len(actions), -1)
    if outside.any():
        first = int(np.flatnonzero(outside.any(axis=1))[0])
        raise SourceError(
            f"{where}: action at step {first} is outside {spaces.env}'s action range "
            f"[{low.min():g}, {high.max():g}]: {np.array2string(actions[first], precision=4)}"
        )
    return np.clip(actions, low, high).astype(np.float32)


def _flags(part: Part | None, steps: int) -> np.ndarray:
    return np.zeros(steps, bool) if part is None else _read(part).reshape(steps) != 0


def _finite(array: np.ndarray) -> bool:
    """No NaN and no inf, without a temporary as large as ``array`` (min and max propagate NaN
    and reach any inf)."""
    if not np.issubdtype(array.dtype, np.floating) or array.size == 0:
        return True
    return bool(np.isfinite(array.min()) and np.isfinite(array.max()))


def read_episode(episode: SourceEpisode, file: Path, spaces: Spaces) -> Episode:
    """Read one checked episode (``check_declared``) and make it a capture ``Episode``."""
    steps = episode.steps
    try:
        if len(episode.obs) == 1:
            obs = _read(episode.obs[0])
        else:  # robomimic's observation keys, side by side in the order asked for
            obs = np.concatenate([_read(p).reshape(steps, -1) for p in episode.obs], axis=1)
        actions, rewards = _read(episode.actions), _read(episode.rewards).reshape(steps)
        terminated, truncated = _flags(episode.terminated, steps), _flags(episode.truncated, steps)
    except SourceError as exc:
        raise SourceError(f"{file}: {episode.where}: {exc}") from None
    where = f"{file}: {episode.where}"
    obs = obs.reshape(steps, *spaces.obs_space.shape).astype(spaces.obs_space.dtype, copy=False)
    if not _finite(obs):
        raise SourceError(f"{where}: NaN or inf in observations")
    if not _finite(rewards):
        raise SourceError(f"{where}: NaN or inf in rewards")
    ends = terminated | truncated
    if ends[:-1].any():
        first = int(np.flatnonzero(ends[:-1])[0])
        raise SourceError(f"{where}: terminations/truncations: the episode ends at step {first}")
    if not ends[-1]:
        truncated[-1] = True  # the source stopped recording there: the episode was cut, not over
    return Episode(
        obs=obs,
        actions=_actions(actions, spaces, where),
        rewards=rewards.astype(np.float32),
        terminated=terminated,
        truncated=truncated,
    )


def open_source(path: Path, what: str) -> Any:
    """Open the HDF5 source ``path`` as ``open_capture`` opens a capture (a regular file, size
    checked); its one-line refusal names ``what`` (``"robomimic file"``) as a ``SourceError``."""
    from harness.datasets.capture import open_capture

    try:
        return open_capture(path)
    except HarnessError as exc:
        message = str(exc).replace("HDF5 capture", f"HDF5 {what}").replace("capture file", what)
        raise SourceError(message) from None


def numbered_groups(parent: Any, pattern: re.Pattern[str], where: str, noun: str) -> list[Any]:
    """``(number, path in the file, group)`` of ``parent``'s members named by ``pattern`` (its
    first group the number), in number order; ``where`` prefixes the paths, ``noun`` names them
    in the refusal of too many."""
    import h5py

    numbered = sorted((int(m.group(1)), n) for n in parent if (m := pattern.match(n)))
    if len(numbered) > MAX_EPISODES:
        raise SourceError(f"more than {MAX_EPISODES:,} {noun}; more than one import can take")
    found = []
    for number, name in numbered:
        group = parent[name]
        if not isinstance(group, h5py.Group):
            raise SourceError(f"{where}{name} is not a group")
        found.append((number, f"{where}{name}", group))
    return found
