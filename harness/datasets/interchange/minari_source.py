"""Reading a Minari dataset folder (Minari 0.4-0.5, HDF5 back end) without Minari.

Layout, as ``DataCollector.create_dataset`` writes it::

    <dataset>/data/metadata.json    data_format "hdf5", observation_space and action_space
                                    (JSON text), env_spec (Gymnasium's EnvSpec as JSON text),
                                    total_episodes, total_steps, minari_version ...
    <dataset>/data/main_data.hdf5   /episode_<k>/observations   (T + 1, *obs_shape)
                                    /episode_<k>/actions        (T, *act_shape)
                                    /episode_<k>/rewards        (T,)
                                    /episode_<k>/terminations   (T,) bool
                                    /episode_<k>/truncations    (T,) bool
                                    /episode_<k>/infos          (group, not read)
                                    episode_<k>.attrs: id, total_steps, seed (if reset with one)

Minari keeps the observation after the last action too (``T + 1`` rows); a capture keeps the
observation before each action, so the last row is left out. The environment is the dataset's
own ``env_spec`` (its ``id`` and ``kwargs``) unless the command names one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.datasets.interchange.episodes import (
    Part,
    Source,
    SourceEpisode,
    SourceError,
    numbered_groups,
    open_source,
)
from harness.envs import EnvSpec
from harness.errors import HarnessError
from harness.files import MAX_JSON_BYTES, read_regular
from harness.validation import parse_json

DATA_FILE, METADATA_FILE = "main_data.hdf5", "metadata.json"
_EPISODE = re.compile(r"^episode_(\d+)$")
_SPACES = {"observation_space": ("Box",), "action_space": ("Box", "Discrete")}


def data_folder(src: Path) -> Path:
    """The folder holding ``main_data.hdf5``: SRC itself, its ``data/`` folder, or the folder
    of SRC when SRC is the HDF5 file."""
    if src.is_file():
        return src.parent
    return src / "data" if (src / "data").is_dir() else src


def read_metadata(folder: Path) -> dict[str, Any]:
    path = folder / METADATA_FILE
    try:
        document = parse_json(
            read_regular(path, MAX_JSON_BYTES, "Minari metadata file").decode(), path
        )
    except UnicodeDecodeError:
        raise SourceError(f"{path}: not UTF-8 text") from None
    if not isinstance(document, dict):
        raise SourceError(f"{path}: expected a JSON object")
    if document.get("data_format", "hdf5") != "hdf5":
        raise SourceError(
            f"{path}: data_format {document['data_format']!r}; only Minari's hdf5 back end is read"
        )
    for key, kinds in _SPACES.items():
        text = document.get(key)
        space = _space(text, path, key) if text is not None else {}
        if space and space.get("type") not in kinds:
            raise SourceError(
                f"{path}: {key} is a {space.get('type')} space; only {' and '.join(kinds)} "
                "can be imported"
            )
    return document


def _space(text: Any, path: Path, key: str) -> dict[str, Any]:
    """A serialised space: Minari writes infinite bounds as ``Infinity``, which strict JSON
    refuses, so it is read leniently (the text is already bounded by the file's size limit)."""
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise SourceError(f"{path}: {key} is not a serialised space (JSON object text)")
    return value


def _json_text(text: Any, path: Path, key: str) -> dict[str, Any]:
    if not isinstance(text, str):
        raise SourceError(f"{path}: {key} is not JSON text")
    try:
        value = parse_json(text, f"{key}")
    except HarnessError as exc:
        raise SourceError(f"{path}: {exc}") from None
    if not isinstance(value, dict):
        raise SourceError(f"{path}: {key} is not a JSON object")
    return value


def env_of(document: dict[str, Any], path: Path) -> EnvSpec | None:
    """The environment the dataset was recorded in (``env_spec``), or None if it names none."""
    text = document.get("env_spec")
    if text is None:
        return None
    spec = _json_text(text, path, "env_spec")
    env_id, kwargs = spec.get("id"), spec.get("kwargs") or {}
    if not isinstance(env_id, str) or not isinstance(kwargs, dict):
        raise SourceError(f"{path}: env_spec has no id string or its kwargs are not an object")
    try:
        return EnvSpec.of(env_id, kwargs)
    except HarnessError as exc:
        raise SourceError(f"{path}: env_spec: {exc}") from None


def _episode(group: Any, name: str, number: int) -> SourceEpisode:
    import h5py

    datasets = {}
    for key in ("observations", "actions", "rewards", "terminations", "truncations"):
        item = group.get(key)
        if not isinstance(item, h5py.Dataset) or not item.shape:
            raise SourceError(f"{name}: {key} is missing or not an array dataset")
        datasets[key] = item
    steps = int(datasets["actions"].shape[0])
    rows = int(datasets["observations"].shape[0])
    if rows != steps + 1:
        raise SourceError(
            f"{name}: observations has {rows:,} rows for {steps:,} actions; Minari keeps one more "
            "observation than actions"
        )
    seed = group.attrs.get("seed")

    def part(key: str) -> Part:
        return Part(datasets[key], f"{name}/{key}", 0, steps)

    return SourceEpisode(
        number=number,
        where=name,
        steps=steps,
        obs=(part("observations"),),
        actions=part("actions"),
        rewards=part("rewards"),
        terminated=part("terminations"),
        truncated=part("truncations"),
        seed=int(seed) if seed is not None and getattr(seed, "ndim", 0) == 0 else None,
    )


def open_minari(src: str | Path) -> Source:
    """Open the Minari dataset at ``src`` (its folder, its ``data/`` folder or the HDF5 file)."""

    folder = data_folder(Path(src))
    document = read_metadata(folder)
    path = folder / DATA_FILE
    env = env_of(document, folder / METADATA_FILE)
    f = open_source(path, "Minari data file")
    try:
        groups = numbered_groups(f, _EPISODE, "", "episodes")
        episodes = [_episode(group, name, number) for number, name, group in groups]
    except SourceError as exc:
        f.close()
        raise SourceError(f"{path}: {exc}") from None
    except BaseException:
        f.close()
        raise
    return Source("minari", path, env, episodes, handle=f, also_read=(folder / METADATA_FILE,))
