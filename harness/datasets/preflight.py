"""The synthetic preflight dataset: a tiny dataset for rehearsing without the production data.

Its captures are synthesised, not recorded: observations are drawn uniformly from a box of
plausible CartPole-v1 states and labelled by the heuristic demonstrator, with a fixed share of
labels flipped (the demonstrator's slips). The flips keep behaviour cloning honest: a policy can
reach about 90 % agreement on held-out episodes, above the 0.8 gate and below 0.95, just as on
the production data. A third capture carries NaN observations (a sensor dropout) and is
rejected, so that the quality check has something to find.

``generate`` is deterministic: the same code rewrites the committed dataset byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.datasets.capture import Episode, write_capture
from harness.datasets.checksums import build_sheet
from harness.datasets.demonstrators import cartpole_heuristic
from harness.datasets.manifest import Entry, new_manifest

ENV_ID = "CartPole-v1"
SEED = 5_4_0
FLIP = 0.10  # share of labels flipped to the other action
# Half-widths of the box states are drawn from: x, x_dot, theta, theta_dot.
STATE_BOX = np.array([1.0, 1.0, 0.15, 1.0], dtype=np.float32)
CAPTURES = (
    # id, episodes, steps per episode, status, reason, NaN dropout
    ("synth_a", 4, 150, "accepted", "synthetic, clean", False),
    ("synth_b", 4, 150, "accepted", "synthetic, clean", False),
    ("synth_dropout", 2, 100, "rejected", "NaN observations (sensor dropout); see inspect", True),
)


def _episode(rng: np.random.Generator, steps: int, dropout: bool) -> Episode:
    obs = (rng.uniform(-1.0, 1.0, size=(steps, 4)) * STATE_BOX).astype(np.float32)
    actions = np.array([cartpole_heuristic(o) for o in obs], dtype=np.int64)
    flips = rng.random(steps) < FLIP
    actions[flips] = 1 - actions[flips]
    if dropout:
        obs[steps // 3 : steps // 3 + 5, 2] = np.nan
    terminated = np.zeros(steps, dtype=bool)
    terminated[-1] = True
    return Episode(
        obs=obs,
        actions=actions,
        rewards=np.ones(steps, dtype=np.float32),
        terminated=terminated,
        truncated=np.zeros(steps, dtype=bool),
    )


def generate(out_dir: str | Path) -> Path:
    """Write the preflight dataset under ``out_dir``; returns the manifest path."""
    out_dir = Path(out_dir)
    captures_dir = out_dir / "captures" / "preflight"
    manifest = new_manifest(
        out_dir / "manifests" / "preflight.json",
        "preflight",
        ENV_ID,
        captures_dir,
        description="Synthetic rehearsal dataset made by 'harness preflight generate'.",
    )
    rng = np.random.default_rng(SEED)
    for k, (cid, n_episodes, steps, status, reason, dropout) in enumerate(CAPTURES):
        episodes = [_episode(rng, steps, dropout) for _ in range(n_episodes)]
        params = {"flip": FLIP, "synthetic": True}
        meta = write_capture(
            captures_dir / f"{cid}.h5",
            episodes,
            env_id=ENV_ID,
            demonstrator="heuristic",
            demonstrator_params=params,
            seed=SEED + k,
        )
        manifest.entries.append(
            Entry(
                id=cid,
                path=f"{cid}.h5",
                status=status,
                episodes=meta.episodes,
                steps=meta.steps,
                demonstrator=meta.demonstrator_record(),
                reason=reason,
            )
        )
    manifest.save()
    build_sheet(manifest, out_dir / "checksums" / "preflight.json").save()
    return manifest.path
