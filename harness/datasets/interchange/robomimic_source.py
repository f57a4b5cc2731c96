"""Reading a robomimic HDF5 file without robomimic.

Layout, as robomimic's dataset docs (Datasets > Overview > Dataset Structure) give it::

    data                 attrs: total (samples), env_args (JSON text: env_name, env_type,
                         env_kwargs)
    data/demo_<k>        attrs: num_samples
    data/demo_<k>/obs/<key>     (T, ...) one dataset per observation key
    data/demo_<k>/actions       (T, *act_shape)
    data/demo_<k>/rewards       (T,)
    data/demo_<k>/dones         (T,) 1 where the episode ends
    (states, next_obs/<key>, mask/ may be there too; they are not read)

The capture's observation is the observation keys chosen by ``--obs-keys`` concatenated in that
order (each a vector, or one number per step); with a single key, ``--obs-keys`` may be left
out. ``dones`` becomes ``terminated``; an episode whose last step is not done is marked
truncated. The environment is ``env_name`` with ``env_kwargs`` when ``env_type`` is robomimic's
Gym type (2); robosuite and other simulators are not Gymnasium ids, so ``--env`` is needed.
"""

from __future__ import annotations

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
from harness.validation import parse_json

GYM_TYPE = 2  # robomimic.envs.env_base.EnvType.GYM_TYPE
_DEMO = re.compile(r"^demo_(\d+)$")


def env_of(data: Any, path: Path) -> EnvSpec | None:
    """The Gymnasium environment ``data.attrs["env_args"]`` names, or None when it names a
    simulator of another kind (robosuite...) or none at all."""
    text = data.attrs.get("env_args")
    if text is None:
        return None
    try:
        args = parse_json(text.decode() if isinstance(text, bytes) else str(text), "env_args")
    except (HarnessError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: data.attrs['env_args']: {exc}") from None
    if not isinstance(args, dict):
        raise SourceError(f"{path}: data.attrs['env_args'] is not a JSON object")
    if args.get("env_type", args.get("type")) != GYM_TYPE:
        return None
    name, kwargs = args.get("env_name"), args.get("env_kwargs") or {}
    if not isinstance(name, str) or not isinstance(kwargs, dict):
        raise SourceError(f"{path}: env_args has no env_name string or env_kwargs is not an object")
    return EnvSpec.of(name, kwargs)


def _obs_parts(group: Any, name: str, steps: int, keys: list[str] | None) -> tuple[Part, ...]:
    import h5py

    obs = group.get("obs")
    if not isinstance(obs, h5py.Group):
        raise SourceError(f"{name}: obs is missing or not a group")
    have = sorted(obs)
    if keys is None:
        if len(have) != 1:
            raise SourceError(
                f"{name}/obs has keys {', '.join(have) or 'none'}; choose and order them with "
                "--obs-keys"
            )
        keys = have
    parts = []
    for key in keys:
        item = obs.get(key)
        if not isinstance(item, h5py.Dataset) or not item.shape:
            raise SourceError(f"{name}/obs/{key}: missing or not an array (has {', '.join(have)})")
        parts.append(Part(item, f"{name}/obs/{key}", 0, steps))
    return tuple(parts)


def _episode(group: Any, name: str, number: int, keys: list[str] | None) -> SourceEpisode:
    import h5py

    datasets = {}
    for key in ("actions", "rewards", "dones"):
        item = group.get(key)
        if not isinstance(item, h5py.Dataset) or not item.shape:
            raise SourceError(f"{name}: {key} is missing or not an array dataset")
        datasets[key] = item
    steps = int(datasets["actions"].shape[0])
    for key in ("rewards", "dones"):
        if int(datasets[key].shape[0]) != steps:
            raise SourceError(
                f"{name}: {key} has {datasets[key].shape[0]:,} rows for {steps:,} actions"
            )
    return SourceEpisode(
        number=number,
        where=name,
        steps=steps,
        obs=_obs_parts(group, name, steps, keys),
        actions=Part(datasets["actions"], f"{name}/actions", 0, steps),
        rewards=Part(datasets["rewards"], f"{name}/rewards", 0, steps),
        terminated=Part(datasets["dones"], f"{name}/dones", 0, steps),
        truncated=None,
    )


def open_robomimic(src: str | Path, obs_keys: list[str] | None = None) -> Source:
    """Open the robomimic file ``src``; ``obs_keys`` chooses and orders the observation keys."""
    import h5py

    path = Path(src)
    f = open_source(path, "robomimic file")
    try:
        data = f.get("data")
        if not isinstance(data, h5py.Group):
            raise SourceError("no data group")
        groups = numbered_groups(data, _DEMO, "data/", "demos")
        episodes = [_episode(group, name, number, obs_keys) for number, name, group in groups]
        env = env_of(data, path)
    except SourceError as exc:
        f.close()
        raise SourceError(f"{path}: {exc}".replace(f"{path}: {path}: ", f"{path}: ")) from None
    except BaseException:
        f.close()
        raise
    return Source("robomimic", path, env, episodes, handle=f)
