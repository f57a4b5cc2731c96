"""What a capture may declare, checked on its HDF5 metadata before any dataset is read.

A few kilobytes of HDF5 can declare gigabytes: the chunks of a compressed dataset that were never
written read back as fill values of any declared shape (a 9 KB file declaring 10^8 steps), and a
single chunk is decompressed whole to read one value of it. So, before an episode is read:

- every dataset is stored in the capture file itself (no external file, no virtual dataset);
- its declared bytes are at most ``MAX_INFLATION`` times the bytes it stores (deflate gives back
  at most 1032 times what it stores), beyond a small allowance;
- a chunk holds at most ``MAX_CHUNK_BYTES``;
- the capture's episodes declare at most ``MAX_CAPTURE_BYTES`` in all;
- an episode is no longer than its environment's ``max_episode_steps``, when it has one.

Only metadata is read to check this, so a refusal costs milliseconds whatever the file declares.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from harness.envs import EnvSpec, max_episode_steps
from harness.errors import HarnessError

MiB = 1 << 20
MAX_INFLATION = 1100  # deflate's ceiling is 1032:1; the shuffle filter does not change it
SMALL_DATASET = 1 * MiB  # declared sizes up to this are never compared with what is stored
MAX_CHUNK_BYTES = 64 * MiB  # h5py's own chunks are at most 1 MiB
MAX_CAPTURE_BYTES = 1 << 30  # a CartPole episode of 500 steps declares about 15 KB


def declared_bytes(dataset: Any) -> int:
    """Bytes the dataset holds once read: its declared shape times its item size."""
    shape = dataset.shape or ()
    return math.prod(int(n) for n in shape) * int(dataset.dtype.itemsize)


def dataset_problem(dataset: Any, where: str) -> str | None:
    """Why reading ``dataset`` whole is refused, or None; ``where`` names it in the message."""
    import h5py

    if not isinstance(dataset, h5py.Dataset):
        return f"{where} is not a dataset"
    if dataset.external or dataset.is_virtual:
        return f"{where} is stored outside the capture file (external or virtual dataset)"
    declared = declared_bytes(dataset)
    if dataset.chunks is not None:
        chunk = math.prod(dataset.chunks) * int(dataset.dtype.itemsize)
        if chunk > MAX_CHUNK_BYTES:
            return f"{where}: chunks of {chunk:,} bytes, over the limit of {MAX_CHUNK_BYTES:,}"
    if declared > SMALL_DATASET:
        stored = int(dataset.id.get_storage_size())
        if declared > MAX_INFLATION * stored + SMALL_DATASET:
            return (
                f"{where} declares {_shape(dataset)} ({declared:,} bytes) but stores "
                f"{stored:,} bytes, more than any compression gives back: damaged or forged"
            )
    return None


def _shape(dataset: Any) -> str:
    return " x ".join(f"{n:,}" for n in dataset.shape) + " values"


def episode_problem(
    group: Any, name: str, keys: Iterable[str], step_limit: int | None
) -> tuple[str | None, int]:
    """Why the episode ``group`` (``data/<name>``) may not be read, or None; and the bytes its
    datasets ``keys`` declare. Absent datasets are left for the caller to report."""
    import h5py

    where = f"data/{name}"
    if not isinstance(group, h5py.Group):
        return f"{where} is not a group", 0
    total = 0
    for key in keys:
        if key not in group:
            continue
        dataset = group[key]
        problem = dataset_problem(dataset, f"{where}/{key}")
        if problem:
            return problem, 0
        total += declared_bytes(dataset)
        steps = dataset.shape[0] if dataset.shape else 0
        if step_limit is not None and steps > step_limit:
            return (
                f"{where}/{key}: {steps:,} steps, longer than the environment's limit of "
                f"{step_limit:,} steps per episode",
                0,
            )
    return None, total


def capture_problem(
    data: Any, names: list[str], keys: Iterable[str], step_limit: int | None
) -> str | None:
    """Why the episodes ``names`` of the ``data`` group may not be read, or None."""
    keys = tuple(keys)
    total = 0
    for name in names:
        problem, declared = episode_problem(data[name], name, keys, step_limit)
        if problem:
            return problem
        total += declared
        if total > MAX_CAPTURE_BYTES:
            return (
                f"its episodes declare more than {MAX_CAPTURE_BYTES:,} bytes in all "
                f"(by data/{name}), over the limit of a capture"
            )
    return None


def env_step_limit(env: EnvSpec) -> int | None:
    """``max_episode_steps`` of the environment as made with its keyword arguments (which may
    change it); None if it has none or cannot be made (the caller reports the environment)."""
    try:
        limit = max_episode_steps(env)
    except HarnessError:
        return None
    return int(limit) if isinstance(limit, int) and limit > 0 else None
