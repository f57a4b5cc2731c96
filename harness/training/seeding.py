"""Seeding and thread settings that make a training run repeatable to the last digit."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch


@contextlib.contextmanager
def deterministic(seed: int, threads: int = 1) -> Iterator[torch.Generator]:
    """Seed Python, NumPy and torch; run torch on ``threads`` threads; restore the thread count.

    One thread by default: with two, the BC weights on idle_v1 already differ in their last
    bits from a one-thread run, so a machine with another core count would not reproduce a run.
    For networks this small a second thread buys nothing measurable (30 BC epochs on idle_v1,
    one thread against two: ``scripts/docs_figures.py --section internals``). Yields a torch
    generator for shuffling, seeded from ``seed``.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    try:
        yield torch.Generator().manual_seed(seed)
    finally:
        torch.set_num_threads(previous)
