"""Benchmark: ``harness capture import --format d4rl`` on a source of at least 1 GB: peak memory
against its bound, and throughput against h5py copying the same arrays.

What it measures
    A D4RL-style file (``observations``, ``next_observations``, ``actions``, ``rewards``,
    ``terminals``, ``timeouts``) of seeded pseudo-random data for an environment registered for
    the benchmark (``benchenv:Wide-v0``: 256 float32 observations, 8 actions in [-1, 1], episodes
    of up to 20,000 steps) is written to a temporary folder (deleted afterwards): by default 25
    episodes of 20,000 steps, 1.04 GB. Three processes then run under ``/usr/bin/time -v``:

    * ``harness capture import SRC --format d4rl --env benchenv:Wide-v0 -o OUT``;
    * the baseline: the same command on a source of the same layout holding one episode of one
      step: the interpreter with the same imports, the same environment made, the same code
      run, and no data to speak of;
    * the peer: a Python script in which h5py copies the same slices, episode by episode, into
      a new file with the capture's dataset settings (gzip 4, shuffle), with no checks.

    The bound the import must stay under is ``2 x the largest episode + the baseline``, where an
    episode's size is the bytes the import reads for it (observations, actions, rewards,
    terminals and timeouts; ``next_observations`` is not read). Throughput is those bytes read
    per second of wall-clock time, for the import and for the peer; the page cache is warmed
    first. Figures are from one run each (the wall-clock is noisy on a shared machine; the
    memory figures are not).

How to run
    . .venv/bin/activate
    python benchmarks/bench_import.py                       # 1.04 GB source (a few minutes)
    python benchmarks/bench_import.py --episodes 3 --json   # a smoke run, as JSON on stdout

Progress goes to stderr; the results go to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

OBS, ACT, STEPS = 256, 8, 20_000
ENV_MODULE = '''\
"""The benchmark's environment: wide observations, long episodes (never stepped here)."""
import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import register


class Wide(gym.Env):
    observation_space = gym.spaces.Box(-np.inf, np.inf, ({obs},), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, ({act},), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros({obs}, np.float32), {{}}

    def step(self, action):
        return np.zeros({obs}, np.float32), 0.0, False, False, {{}}


register("Wide-v0", entry_point=Wide, max_episode_steps={steps})
'''
PEER = """\
import sys, h5py
src, out = sys.argv[1], sys.argv[2]
with h5py.File(src, "r") as f, h5py.File(out, "w", libver="earliest") as g:
    ends = (f["terminals"][:] != 0) | (f["timeouts"][:] != 0)
    start = 0
    for k, end in enumerate(ends.nonzero()[0]):
        group = g.create_group(f"data/demo_{k}")
        for key in ("observations", "actions", "rewards", "terminals", "timeouts"):
            group.create_dataset(key, data=f[key][start : end + 1], track_times=False,
                                 compression="gzip", compression_opts=4, shuffle=True)
        start = end + 1
"""


def write_source(path: Path, episodes: int, seed: int, steps: int = STEPS) -> int:
    """The D4RL-style source, one episode at a time; bytes the import reads per episode."""
    rng = np.random.default_rng(seed)
    rows = episodes * steps
    with h5py.File(path, "w") as f:
        obs = f.create_dataset("observations", (rows, OBS), np.float32)
        nxt = f.create_dataset("next_observations", (rows, OBS), np.float32)
        act = f.create_dataset("actions", (rows, ACT), np.float32)
        rew = f.create_dataset("rewards", (rows,), np.float32)
        term = f.create_dataset("terminals", (rows,), bool)
        tout = f.create_dataset("timeouts", (rows,), bool)
        for k in range(episodes):
            s = slice(k * steps, (k + 1) * steps)
            walk = np.cumsum(rng.standard_normal((steps, OBS), np.float32) * 0.01, axis=0)
            obs[s], nxt[s] = walk, np.roll(walk, -1, axis=0)
            act[s] = rng.uniform(-1, 1, (steps, ACT)).astype(np.float32)
            rew[s] = rng.standard_normal(steps).astype(np.float32)
            flags = np.zeros(steps, bool)
            flags[-1] = True
            term[s], tout[s] = np.zeros(steps, bool), flags
    return steps * (OBS * 4 + ACT * 4 + 4 + 1 + 1)


def timed(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run ``argv`` under ``/usr/bin/time -v``: wall seconds and peak RSS in MB."""
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", *argv], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])}... failed: {done.stderr[-2000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return {"seconds": round(wall, 2), "peak_rss_mb": round(rss_kb / 1000, 1)}


def run(episodes: int, seed: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench_import."))
    try:
        (folder / "benchenv.py").write_text(
            ENV_MODULE.format(obs=OBS, act=ACT, steps=STEPS), encoding="utf-8"
        )
        env = {**os.environ, "PYTHONPATH": str(folder)}
        src = folder / "source.hdf5"
        print(f"writing {episodes} episodes of {STEPS:,} steps to {src}", file=sys.stderr)
        episode_bytes = write_source(src, episodes, seed)
        size = src.stat().st_size
        subprocess.run(["cat", str(src)], stdout=subprocess.DEVNULL, check=True)  # warm the cache
        tiny = folder / "tiny.hdf5"
        write_source(tiny, 1, seed, steps=1)
        py = sys.executable

        def import_of(source: Path, out: str) -> list[str]:
            return [py, "-m", "harness", "capture", "import", str(source), "--format", "d4rl",
                    "--env", "benchenv:Wide-v0", "-o", str(folder / out)]  # fmt: skip

        print("baseline, import, peer ...", file=sys.stderr)
        baseline = timed(import_of(tiny, "tiny.h5"), env)
        ours = timed(import_of(src, "imported.h5"), env)
        peer = timed([py, "-c", PEER, str(src), str(folder / "peer.h5")], env)
        read = episodes * episode_bytes
        bound = 2 * episode_bytes / 1e6 + baseline["peak_rss_mb"]
        return {
            "source_bytes": size,
            "episodes": episodes,
            "largest_episode_mb": round(episode_bytes / 1e6, 1),
            "bytes_read": read,
            "baseline": baseline,
            "import": {**ours, "mb_per_s": round(read / 1e6 / ours["seconds"], 1)},
            "peer_h5py_copy": {**peer, "mb_per_s": round(read / 1e6 / peer["seconds"], 1)},
            "bound_mb": round(bound, 1),
            "import_within_bound": ours["peak_rss_mb"] <= bound,
            "import_over_baseline_mb": round(ours["peak_rss_mb"] - baseline["peak_rss_mb"], 1),
            "time_ratio_import_over_peer": round(ours["seconds"] / peer["seconds"], 2),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--episodes", type=int, default=25, help="episodes of 20,000 steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    result = run(args.episodes, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    ours, peer, base = result["import"], result["peer_h5py_copy"], result["baseline"]
    print(f"source: {result['source_bytes'] / 1e9:.2f} GB, {result['episodes']} episodes of "
          f"{result['largest_episode_mb']} MB read each")  # fmt: skip
    print(f"harness capture import: {ours['seconds']} s, {ours['mb_per_s']} MB/s, "
          f"peak RSS {ours['peak_rss_mb']} MB")  # fmt: skip
    print(f"h5py copy (peer):       {peer['seconds']} s, {peer['mb_per_s']} MB/s, "
          f"peak RSS {peer['peak_rss_mb']} MB")  # fmt: skip
    print(f"baseline interpreter:   peak RSS {base['peak_rss_mb']} MB")
    print(f"bound (2 x largest episode + baseline): {result['bound_mb']} MB -> "
          f"{'within' if result['import_within_bound'] else 'OVER'}")  # fmt: skip
    print(f"import / peer time: {result['time_ratio_import_over_peer']}")


if __name__ == "__main__":
    main()
