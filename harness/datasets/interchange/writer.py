"""Writing a source's episodes as one capture, one episode at a time.

Everything that can be checked without reading values is checked first, for every episode
taken (``check_declared``), so a malformed source is refused before a byte is written. Then the
capture is written through ``write_attrs``/``write_episode``, the very functions ``capture
record`` uses, so an imported capture has the same HDF5 settings and no timestamp: importing
the same source twice gives the same bytes. Only one episode is in memory at a time (its slices
as the source stores them and as the capture stores them).

An imported capture records where it came from in four more file attributes: ``source_format``,
``source_file`` (the file's name), ``source_sha256`` and ``source_episodes`` (the episodes taken,
as an ``--episodes`` SPEC). Its ``demonstrator`` is ``imported:<format>``, its
``demonstrator_params`` are empty and its ``seed`` is the first episode's seed where the source
keeps one (Minari), else 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.atomic import atomic_path
from harness.datasets.capture import FORMAT_VERSION, CaptureMeta, write_attrs, write_episode
from harness.datasets.capture_limits import MAX_CAPTURE_BYTES, env_step_limit
from harness.datasets.interchange.episodes import (
    Source,
    SourceEpisode,
    SourceError,
    Spaces,
    check_declared,
    read_episode,
    select,
    spec_of,
)
from harness.envs import DISCRETE, EnvSpec, check_spaces
from harness.hashing import sha256_file


@dataclass(frozen=True)
class Imported:
    """What an import wrote."""

    meta: CaptureMeta
    source_sha256: str
    source_episodes: str
    source_bytes: int


def spaces_of(env: EnvSpec) -> Spaces:
    obs_space, act_space, kind = check_spaces(env)
    return Spaces(env, obs_space, act_space, kind == DISCRETE, env_step_limit(env))


def _step_bytes(spaces: Spaces) -> int:
    obs = math.prod(spaces.obs_space.shape) * np.dtype(spaces.obs_space.dtype).itemsize
    action = 8 if spaces.discrete else 4 * math.prod(spaces.act_space.shape)
    return obs + action + 4 + 1 + 1  # rewards float32, terminated and truncated bool


def check_all(source: Source, chosen: list[SourceEpisode], spaces: Spaces) -> None:
    """Every chosen episode's declared slices, and the capture's size, before anything is read."""
    if not chosen:
        raise SourceError(f"{source.file}: no episodes to import")
    for episode in chosen:
        check_declared(episode, source.file, spaces)
    steps = sum(e.steps for e in chosen)
    declared = steps * _step_bytes(spaces)
    if declared > MAX_CAPTURE_BYTES:
        raise SourceError(
            f"{source.file}: the {len(chosen):,} episodes taken hold {steps:,} steps "
            f"({declared:,} bytes as a capture), over the {MAX_CAPTURE_BYTES:,}-byte limit of "
            "one capture; import them in parts with --episodes"
        )


def import_source(
    source: Source, out: str | Path, env: EnvSpec, wanted: list[int] | None = None
) -> Imported:
    """Write the episodes ``wanted`` (numbers as the source counts them; all if None) of
    ``source`` as one capture at ``out``, atomically."""
    import h5py

    spaces = spaces_of(env)
    chosen = select(source, wanted)
    check_all(source, chosen, spaces)
    digest = sha256_file(source.file)
    taken = spec_of(sorted(e.number for e in chosen))
    seed = chosen[0].seed if chosen[0].seed is not None else 0
    meta = CaptureMeta(
        env_id=env.id,
        env_kwargs=env.kwargs,
        demonstrator=f"imported:{source.format}",
        demonstrator_params={},
        seed=int(seed),
        format_version=FORMAT_VERSION,
        episodes=len(chosen),
        steps=sum(e.steps for e in chosen),
    )
    with atomic_path(out, suffix=".h5.tmp") as tmp, h5py.File(tmp, "w", libver="earliest") as f:
        data = write_attrs(f, meta)
        f.attrs["source_format"] = source.format
        f.attrs["source_file"] = source.file.name
        f.attrs["source_sha256"] = digest.sha256
        f.attrs["source_episodes"] = taken
        for k, episode in enumerate(chosen):
            write_episode(data, k, read_episode(episode, source.file, spaces))
    return Imported(meta, digest.sha256, taken, digest.bytes)
