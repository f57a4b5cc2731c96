"""A team's own environment and demonstrator, as they would live in the team's package outside
this project. ``write_package(folder)`` writes it as ``mycorridor/`` into ``folder``, which the
tests then put on the import path: nothing of it is importable from the project itself."""

from __future__ import annotations

from pathlib import Path

PACKAGE = "mycorridor"
ENV_ID = f"{PACKAGE}:MyOrg/Corridor-v0"
DEMONSTRATOR = f"{PACKAGE}.control:steer"
DISCRETE_ENV_ID = f"{PACKAGE}:MyOrg/CorridorSteps-v0"

_INIT = '''"""Corridor: drive a cart to a goal on a line. Registers MyOrg/Corridor-v0 (a force in
[-1, 1], continuous) and MyOrg/CorridorSteps-v0 (left, coast, right)."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Corridor(gym.Env):
    """Observation: a 2x2 array [[position, velocity], [goal, steps left / 100]]."""

    def __init__(self, discrete=False, friction=0.1):
        self.discrete = discrete
        self.friction = friction
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2, 2), dtype=np.float32)
        if discrete:
            self.action_space = spaces.Discrete(3)
        else:
            self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)

    def _obs(self):
        return np.array(
            [[self.x, self.v], [self.goal, self.left / 100.0]], dtype=np.float32
        )

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-1.0, 1.0))
        self.goal = float(self.np_random.uniform(-1.0, 1.0))
        self.v = 0.0
        self.left = 100
        return self._obs(), {}

    def step(self, action):
        force = float(action) - 1.0 if self.discrete else float(np.clip(action, -1, 1)[0])
        self.v = (1.0 - self.friction) * self.v + 0.01 * force
        self.x += self.v
        self.left -= 1
        distance = abs(self.x - self.goal)
        terminated = distance < 0.02 and abs(self.v) < 0.005
        return self._obs(), -distance, terminated, False, {}


gym.register("MyOrg/Corridor-v0", entry_point=Corridor, max_episode_steps=100)
gym.register(
    "MyOrg/CorridorSteps-v0", entry_point=Corridor, kwargs={"discrete": True}, max_episode_steps=100
)
'''

_CONTROL = '''"""The team's scripted demonstrator: a PD controller toward the goal."""

import numpy as np


def steer(env, observation):
    (x, v), (goal, _) = observation
    force = 2.0 * (goal - x) - 6.0 * v
    if env.discrete:
        return 0 if force < -0.3 else 2 if force > 0.3 else 1
    return np.clip(np.array([force], dtype=np.float32), -1.0, 1.0)


def bail(env, observation):
    raise SystemExit(0)
'''


def write_package(folder: Path) -> Path:
    """Write ``mycorridor/`` into ``folder``; return ``folder`` (the path to import from)."""
    package = folder / PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(_INIT, encoding="utf-8")
    (package / "control.py").write_text(_CONTROL, encoding="utf-8")
    return folder
