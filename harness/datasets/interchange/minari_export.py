"""Captures written as a Minari dataset folder that ``minari.load_dataset`` opens.

``harness capture export FILE... --format minari -o DIR`` writes ``DIR/data/main_data.hdf5``
and ``DIR/data/metadata.json`` in the layout ``minari_source`` reads (Minari 0.5's HDF5 back
end), so with ``MINARI_DATASETS_PATH`` set to DIR's parent, ``minari.load_dataset(DIR's
name)`` opens it; DIR's name is therefore a Minari id, ``name-v<N>``. Minari is not needed to
write it. The episodes of every capture are written in order, as ``episode_0``, ``episode_1``...

A capture keeps the observation before each action, not the one after the last action that
Minari's ``observations`` also holds (``T + 1`` rows): the export repeats the episode's last
observation there, and the dataset's description says so. Importing the export again drops that
row, so capture -> export -> import gives back the capture's arrays.

The folder is written beside DIR under a temporary name and renamed into place when complete,
with no timestamp in it: the same captures give the same bytes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.atomic import fsync_dir
from harness.datasets.capture import Episode, read_capture
from harness.envs import EnvSpec, check_spaces, make_env
from harness.errors import HarnessError

MINARI_FORMAT = "0.5.0"  # the oldest Minari whose readers take this layout (0.5.0-0.5.4)
_ID = re.compile(r"^[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*-v\d+$")
DESCRIPTION = (
    "Exported by `harness capture export` from the capture(s) {files}. Captures do not keep "
    "the observation after an episode's last action: each episode's last observation row "
    "repeats the one before it."
)


@dataclass(frozen=True)
class Exported:
    """What an export wrote."""

    folder: Path
    dataset_id: str
    episodes: int
    steps: int


def serialize_space(space: Any) -> str:
    """A Box or Discrete space as ``minari.serialization.serialize_space`` writes it."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Discrete):
        fields = {
            "type": "Discrete",
            "dtype": "int64",
            "start": int(space.start),
            "n": int(space.n),
        }
    else:
        fields = {
            "type": "Box",
            "dtype": str(space.dtype),
            "shape": list(space.shape),
            "low": space.low.tolist(),
            "high": space.high.tolist(),
        }
    return json.dumps(fields)


def _check_target(out: Path) -> str:
    dataset_id = out.name
    if not _ID.match(dataset_id):
        raise HarnessError(
            f"{out}: the folder's name is the Minari dataset id and must read name-v<N> "
            "(e.g. cartpole-demos-v0)"
        )
    if out.exists() or out.is_symlink():
        raise HarnessError(f"{out}: already exists; give a new folder (nothing written)")
    if not out.parent.is_dir():
        raise HarnessError(f"{out.parent}: no such folder")
    return dataset_id


def _write_episode(f: Any, index: int, episode: Episode) -> None:
    group = f.create_group(f"episode_{index}")
    group.attrs["id"] = np.int64(index)
    group.attrs["total_steps"] = np.int64(len(episode))
    final = episode.obs[-1:]  # the capture has no observation after the last action
    arrays = {
        "observations": np.concatenate([episode.obs, final]),
        "actions": episode.actions,
        "rewards": episode.rewards.astype(np.float64),  # Minari's DataCollector keeps float64
        "terminations": episode.terminated,
        "truncations": episode.truncated,
    }
    for key, array in arrays.items():
        group.create_dataset(key, data=np.ascontiguousarray(array), track_times=False)
    group.create_group("infos")


def _metadata(env: EnvSpec, dataset_id: str, episodes: int, steps: int, files: str) -> dict:
    obs_space, act_space, _ = check_spaces(env)
    made = make_env(env)
    try:
        env_spec = made.spec.to_json() if made.spec is not None else None
    finally:
        made.close()
    return {
        "total_episodes": episodes,
        "total_steps": steps,
        "data_format": "hdf5",
        "jpeg_encoding": False,
        "observation_space": serialize_space(obs_space),
        "action_space": serialize_space(act_space),
        "env_spec": env_spec,
        "dataset_id": dataset_id,
        "algorithm_name": "harness capture export",
        "description": DESCRIPTION.format(files=files),
        "minari_version": MINARI_FORMAT,
    }


def _env_of(captures: list[Path]) -> EnvSpec:
    from harness.datasets.capture import open_capture, read_meta

    envs = []
    for path in captures:
        with open_capture(path) as f:
            envs.append(read_meta(f, path).env_spec())
    if len(set(envs)) != 1:
        detail = ", ".join(f"{p.name}: {e}" for p, e in zip(captures, envs, strict=True))
        raise HarnessError(f"the captures were recorded in different environments ({detail})")
    check_spaces(envs[0])  # one line if the environment cannot be made here
    return envs[0]


def export_minari(captures: list[Path], out: str | Path) -> Exported:
    """Write the episodes of ``captures`` (one capture in memory at a time) as the Minari
    dataset folder ``out``, which must not exist yet."""
    import h5py

    out = Path(out)
    dataset_id = _check_target(out)
    env = _env_of(captures)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / "data").mkdir()
        episodes = steps = 0
        with h5py.File(staging / "data" / "main_data.hdf5", "w", libver="earliest") as f:
            for path in captures:
                for episode in read_capture(path)[1]:
                    _write_episode(f, episodes, episode)
                    episodes, steps = episodes + 1, steps + len(episode)
        names = ", ".join(p.name for p in captures)
        document = _metadata(env, dataset_id, episodes, steps, names)
        (staging / "data" / "metadata.json").write_text(json.dumps(document, indent=2) + "\n")
        for file in (staging / "data").iterdir():
            with open(file, "rb+") as fh:
                os.fsync(fh.fileno())
        staging.chmod(0o755)
        os.rename(staging, out)  # refuses a folder that appeared meanwhile, unless empty
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Exported(out, dataset_id, episodes, steps)
