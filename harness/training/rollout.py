"""Rollouts: stepping the training environments with the current actor, and GAE over them.

The rollout side of PPO, apart from the loss and the update (``ppo.py``), as Stable-Baselines3
keeps its rollout buffer apart from its algorithm. It is where the time goes, so three choices
keep it cheap (measured against Stable-Baselines3 in ``benchmarks/bench_ppo.py``):

- environments come from ``gymnasium.make_vec``, which uses an environment's native vectorised
  implementation where it has one (CartPole steps all its copies in one NumPy call);
- the rollout acts with a NumPy copy of the actor's weights (its weights do not change during a
  rollout): a forward pass of a 64x64 MLP on 8 observations costs a quarter or less in NumPy of
  what it costs through ``nn.Module`` calls (``scripts/docs_figures.py --section internals``);
- the sampling noise for the whole rollout is drawn in one call from the seeded generator, so a
  step builds no distribution object: discrete actions by the Gumbel-max trick, Box actions as
  the mean plus the standard deviation times standard normal noise.

Box actions are stored as sampled (their log-probability is the Gaussian's) and clipped to the
bounds only when stepping, as Stable-Baselines3 does. Observations of any shape are flattened.

Episode boundaries follow Gymnasium's next-step autoreset: the step after an episode ended only
resets that environment (its action is ignored). Such frames are marked invalid for the update,
and the observation returned at a truncation is the real final one, so truncated episodes are
bootstrapped with its value while terminated ones are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from harness.envs import EnvSpec, make_vec_env
from harness.errors import HarnessError
from harness.training.distributed import current, gather
from harness.training.policy import MLPPolicy


def make_envs(env: EnvSpec | str, num_envs: int) -> Any:
    """``num_envs`` copies of ``env``, natively vectorised where the environment allows."""
    envs = make_vec_env(env, num_envs)
    mode = envs.metadata.get("autoreset_mode")
    if mode is not gym.vector.AutoresetMode.NEXT_STEP:
        envs.close()
        raise HarnessError(f"environment '{env}': PPO needs next-step autoreset, not {mode}")
    return envs


class NumpyActor:
    """A frozen NumPy copy of an actor's forward pass, for acting during a rollout."""

    def __init__(self, actor: MLPPolicy) -> None:
        self.spec = actor.spec
        self.mean = actor.obs_mean.numpy().copy()
        self.std = actor.obs_std.numpy().copy()
        linears = [m for m in actor.net if isinstance(m, nn.Linear)]
        self.layers = [
            (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears
        ]
        if actor.spec.continuous:
            self.action_std = actor.log_std.detach().exp().numpy().copy()
            self.low = np.asarray(actor.spec.action_low, dtype=np.float32)
            self.high = np.asarray(actor.spec.action_high, dtype=np.float32)

    def logits(self, obs: np.ndarray) -> np.ndarray:
        """The network's output for flat observations: logits, or the Gaussian's mean (Box)."""
        h = (obs - self.mean) / self.std
        for weight, bias in self.layers[:-1]:
            h = np.tanh(h @ weight + bias)
        weight, bias = self.layers[-1]
        return h @ weight + bias

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions: the most likely action, or the mean clipped to the bounds (Box)."""
        out = self.logits(obs.reshape(len(obs), -1))
        if self.spec.continuous:
            return np.clip(out, self.low, self.high)
        return out.argmax(-1)


def step_actions(envs: Any, actions: np.ndarray, actor: NumpyActor) -> np.ndarray:
    """Actions as the environments take them: Box actions clipped and given the space's shape."""
    if not actor.spec.continuous:
        return actions
    space = envs.single_action_space
    # minimum(maximum()) is np.clip without its dispatch overhead, which costs more per step.
    clipped = np.minimum(np.maximum(actions, actor.low), actor.high)
    return clipped.reshape(len(actions), *space.shape).astype(space.dtype, copy=False)


@dataclass
class Rollout:
    """One rollout of ``T`` steps in ``N`` environments; ``obs[T]`` is the observation after it."""

    obs: torch.Tensor  # (T + 1, N, obs_dim) flattened observations
    actions: torch.Tensor  # (T, N) int64, or (T, N, action_dim) float32 as sampled (Box)
    rewards: np.ndarray  # (T, N)
    terminated: np.ndarray  # (T, N) the episode ended in a terminal state: no bootstrap
    done: np.ndarray  # (T, N) terminated or truncated: advantages stop here
    valid: np.ndarray  # (T, N) False on the reset step that follows an episode's end
    episode_returns: list[float]
    episode_ends: list[tuple[int, int]] = field(default_factory=list)
    """(step, environment) where each of ``episode_returns`` ended, in the same order."""


class RolloutCollector:
    """Steps the training environments with the current actor, keeping state across rollouts."""

    def __init__(self, envs: Any, num_steps: int, seed: int, generator: torch.Generator) -> None:
        self.envs = envs
        self.num_steps = num_steps
        self.generator = generator
        # Under torchrun, rank r's environment j is the single process's environment
        # r * n + j: seeded as it would be (Gymnasium seeds copy i with seed + i), and given
        # its column of the sampling noise, which every rank draws whole.
        world = current()
        self.n_envs = envs.num_envs
        self.first_env = world.rank * self.n_envs
        self.total_envs = world.size * self.n_envs
        obs, _ = envs.reset(seed=seed + self.first_env)
        self.obs = np.asarray(obs, dtype=np.float32).reshape(self.n_envs, -1)
        self.prev_done = np.zeros(self.n_envs, dtype=bool)
        self.running_return = np.zeros(self.n_envs)

    def _sampler(self, act: NumpyActor) -> tuple[Any, np.ndarray]:
        """A function from (step, flat observations) to sampled actions, and their buffer.

        The noise of the whole rollout is drawn here, in one call on the seeded generator.
        """
        steps, n, spec = self.num_steps, self.n_envs, act.spec
        total, mine = self.total_envs, slice(self.first_env, self.first_env + n)
        if not spec.continuous:
            # argmax(logits + Gumbel noise) is a sample of softmax(logits).
            uniform = torch.rand(steps, total, spec.n_actions, generator=self.generator)
            gumbel = (-torch.log(-torch.log(uniform.clamp_min_(1e-20)))).numpy()
            gumbel = gumbel[:, mine] if total != n else gumbel
            buffer = np.empty((steps, n), dtype=np.int64)
            return (lambda t, obs: (act.logits(obs) + gumbel[t]).argmax(-1)), buffer
        # mean + std * N(0, 1) is a sample of the Gaussian N(mean, std^2).
        noise = torch.randn(steps, total, spec.action_dim, generator=self.generator).numpy()
        noise = noise[:, mine].copy() if total != n else noise
        noise *= act.action_std
        buffer = np.empty((steps, n, spec.action_dim), dtype=np.float32)
        return (lambda t, obs: act.logits(obs) + noise[t]), buffer

    def collect(self, actor: MLPPolicy) -> Rollout:
        steps, n = self.num_steps, self.n_envs
        act = NumpyActor(actor)
        sample, actions = self._sampler(act)
        obs_buf = np.empty((steps + 1, n, actor.spec.obs_dim), dtype=np.float32)
        rewards = np.empty((steps, n), dtype=np.float32)
        terminated = np.empty((steps, n), dtype=bool)
        done = np.empty((steps, n), dtype=bool)
        valid = np.empty((steps, n), dtype=bool)
        episode_returns: list[float] = []
        episode_ends: list[tuple[int, int]] = []
        obs = self.obs
        for t in range(steps):
            obs_buf[t] = obs
            actions[t] = action = sample(t, obs)
            obs, reward, term, trunc, _ = self.envs.step(step_actions(self.envs, action, act))
            obs = np.asarray(obs, dtype=np.float32).reshape(n, -1)
            rewards[t], terminated[t] = reward, term
            done[t] = term | trunc
            valid[t] = ~self.prev_done
            self.running_return += reward
            episode_returns.extend(self.running_return[done[t]].tolist())
            episode_ends.extend((t, int(j)) for j in np.flatnonzero(done[t]))
            self.running_return[done[t]] = 0.0
            self.prev_done = done[t]
        obs_buf[steps] = obs
        self.obs = obs
        return Rollout(
            torch.from_numpy(obs_buf),
            torch.from_numpy(actions),
            rewards,
            terminated,
            done,
            valid,
            episode_returns,
            episode_ends,
        )


def advantages_and_returns(
    rewards: np.ndarray,
    values: np.ndarray,
    terminated: np.ndarray,
    done: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation over ``T`` steps; ``values`` has ``T + 1`` rows.

    A terminated step does not bootstrap; a truncated one bootstraps from ``values[t + 1]``, the
    value of its real final observation (next-step autoreset). Either ends the GAE sum.
    """
    steps = len(rewards)
    advantages = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[1], dtype=rewards.dtype)
    for t in reversed(range(steps)):
        next_value = values[t + 1] * ~terminated[t]
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * gae_lambda * ~done[t] * running
        advantages[t] = running
    return advantages, advantages + values[:steps]


# --- data-parallel PPO: one rollout over every rank's environments -----------------------------


def job_episode_returns(rollout: Rollout, first_env: int) -> list[float]:
    """The returns of the episodes that ended in this rollout on every rank, in the order one
    process stepping all the environments would list them (by step, then environment)."""
    if not current().distributed:
        return rollout.episode_returns
    ends = [
        (t, first_env + j, ret)
        for (t, j), ret in zip(rollout.episode_ends, rollout.episode_returns, strict=True)
    ]
    return [ret for _, _, ret in sorted(e for part in gather(ends) for e in part)]


@dataclass(frozen=True)
class FrameLayout:
    """Where this rank's frames sit in the batch one process would have made of every rank's
    rollout (valid frames, flattened step by step, environment by environment)."""

    local: torch.Tensor
    """For each frame of that batch: its index in this rank's batch, or -1 (another rank's)."""
    advantages: torch.Tensor
    """Every frame's advantage, in that order: minibatches are normalised over all of them."""

    def __len__(self) -> int:
        return len(self.local)

    def rows(self, minibatch: torch.Tensor) -> tuple[torch.Tensor, float, tuple[Any, Any]]:
        """This rank's rows of a minibatch (global indices), their share of it, and the
        mean and standard deviation of the whole minibatch's advantages."""
        local = self.local[minibatch]
        mine = local[local >= 0]
        adv = self.advantages[minibatch]
        return mine, len(mine) / len(minibatch), (adv.mean(), adv.std())


def frame_layout(valid: np.ndarray, advantages: torch.Tensor) -> FrameLayout:
    """The layout of this rank's valid frames (``valid``: its (T, n) mask) among every rank's;
    ``advantages`` are its valid frames' advantages, in its own batch's order."""
    world = current()
    parts = gather((valid, advantages.numpy()))
    n = valid.shape[1]
    keep = np.flatnonzero(np.concatenate([v for v, _ in parts], axis=1).reshape(-1))
    owner = (keep % (n * world.size)) // n  # ranks' environments are consecutive columns
    local = np.full(len(keep), -1, dtype=np.int64)
    every = np.empty(len(keep), dtype=parts[0][1].dtype)
    for rank, (_, adv) in enumerate(parts):
        where = np.flatnonzero(owner == rank)
        every[where] = adv
        if rank == world.rank:
            local[where] = np.arange(len(where))
    return FrameLayout(torch.from_numpy(local), torch.from_numpy(every))
