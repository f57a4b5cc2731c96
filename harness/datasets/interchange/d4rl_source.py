"""Reading a D4RL-style HDF5 file without D4RL.

Layout, as D4RL's ``get_dataset`` documents it: one row per transition, all episodes end to
end in flat datasets at the root::

    observations  (N, *obs_shape)
    actions       (N, *act_shape)
    rewards       (N,)
    terminals     (N,) bool   the episode ended in a terminal state at this step
    timeouts      (N,) bool   the episode was cut by a time limit at this step
    (next_observations, infos/*, metadata/* may be there too; they are not read)

Episodes are split after each row with ``terminals`` or ``timeouts`` set, as D4RL's own
``sequence_dataset`` does; rows after the last such row belong to no finished episode and are
left out (the command says how many). The file names no environment: ``--env`` is required.
Episodes are numbered 0, 1, ... in file order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.datasets.capture_limits import dataset_problem
from harness.datasets.interchange.episodes import (
    MAX_EPISODES,
    Part,
    Source,
    SourceEpisode,
    SourceError,
    open_source,
)

FIELDS = ("observations", "actions", "rewards", "terminals", "timeouts")
SCAN_ROWS = 1 << 20  # rows of terminals/timeouts read at a time while looking for episode ends


def _flat(f: object, path: Path) -> dict[str, object]:
    import h5py

    datasets = {}
    for key in FIELDS:
        item = f.get(key)  # type: ignore[attr-defined]
        if not isinstance(item, h5py.Dataset) or not item.shape:
            raise SourceError(f"{path}: {key} is missing or not an array dataset at the root")
        if problem := dataset_problem(item, key):
            raise SourceError(f"{path}: {problem}")
        datasets[key] = item
    rows = {k: int(d.shape[0]) for k, d in datasets.items()}  # type: ignore[attr-defined]
    if len(set(rows.values())) != 1:
        detail = ", ".join(f"{k} {n:,}" for k, n in rows.items())
        raise SourceError(f"{path}: the flat arrays have different lengths ({detail})")
    return datasets


def episode_ends(terminals: object, timeouts: object, rows: int, path: Path) -> np.ndarray:
    """Row indices (inclusive) where episodes end, scanned a block at a time."""
    ends: list[np.ndarray] = []
    count = 0
    for start in range(0, rows, SCAN_ROWS):
        stop = min(start + SCAN_ROWS, rows)
        try:
            done = (terminals[start:stop] != 0) | (timeouts[start:stop] != 0)  # type: ignore[index]
        except (OSError, ValueError, TypeError) as exc:
            raise SourceError(
                f"{path}: terminals/timeouts rows {start:,}-{stop:,}: {exc}"
            ) from None
        found = np.flatnonzero(done.reshape(stop - start)) + start
        count += len(found)
        if count > MAX_EPISODES:
            raise SourceError(
                f"{path}: terminals/timeouts end more than {MAX_EPISODES:,} episodes; "
                "more than one import can take"
            )
        ends.append(found)
    return np.concatenate(ends) if ends else np.empty(0, np.int64)


def open_d4rl(src: str | Path) -> Source:
    """Open the D4RL-style file ``src`` and split it into episodes (from its flags only)."""
    path = Path(src)
    f = open_source(path, "D4RL-style file")
    try:
        data = _flat(f, path)
        rows = int(data["actions"].shape[0])  # type: ignore[attr-defined]
        ends = episode_ends(data["terminals"], data["timeouts"], rows, path)
    except BaseException:
        f.close()
        raise
    episodes = []
    start = 0
    for number, end in enumerate(ends.tolist()):
        stop = end + 1

        def part(key: str, start: int = start, stop: int = stop) -> Part:
            return Part(data[key], key, start, stop)

        episodes.append(
            SourceEpisode(
                number=number,
                where=f"episode {number} (rows {start:,}-{end:,})",
                steps=stop - start,
                obs=(part("observations"),),
                actions=part("actions"),
                rewards=part("rewards"),
                terminated=part("terminals"),
                truncated=part("timeouts"),
            )
        )
        start = stop
    source = Source("d4rl", path, None, episodes, handle=f)
    if start < rows:
        source.notes.append(
            f"{rows - start:,} rows after the last terminal or timeout end no episode; left out"
        )
    return source
