"""PPO with an annealed behaviour-cloning term, written out in one file (after CleanRL's ppo.py).

Why it is written here rather than taken from a library: mixed mode optimises

    loss = PPO loss (clipped surrogate + vf_coef * value loss - ent_coef * entropy)
           + c_t * BC loss (cross-entropy of the demonstrators' actions)

with c_t annealed from ``anneal.bc_coef_start`` to 0 over the PPO epochs, in the spirit of
demo-augmented policy gradients (Rajeswaran et al., 2018). Library PPOs (Stable-Baselines3,
CleanRL's scripts) have no hook for an extra term inside their update, and wrapping one would
mean re-implementing its ``train()`` anyway. Written out, the whole algorithm fits on a page.

It is also where the time goes, so three choices keep the rollout cheap (measured against
Stable-Baselines3 in ``benchmarks/bench_ppo.py``):

- environments come from ``gymnasium.make_vec``, which uses an environment's native vectorised
  implementation where it has one (CartPole steps all its copies in one NumPy call);
- the rollout acts with a NumPy copy of the actor's weights (its weights do not change during a
  rollout): a forward pass of a 64x64 MLP on 8 observations costs 10 us in NumPy against 45 us
  through ``nn.Module`` calls;
- actions are drawn by the Gumbel-max trick with the noise for the whole rollout drawn in one
  call, so a step builds no distribution object;
- values and old log-probabilities are computed after the rollout in one batched pass, not per
  step.

Episode boundaries follow Gymnasium's next-step autoreset: the step after an episode ended only
resets that environment (its action is ignored). Such frames are masked out of the update, and
the observation returned at a truncation is the real final one, so truncated episodes are
bootstrapped with its value while terminated ones are not.

The hyperparameters are one dataclass, ``harness.config.PPOConfig`` (the ``ppo`` section of the
training config).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.config import PPOConfig
from harness.errors import HarnessError
from harness.training.bc import GateResult, bc_loss
from harness.training.optim import Adam, clip_grad_norm
from harness.training.policy import MLPPolicy, mlp

SCHEDULES = ("linear", "exponential")
# Decay rate of the exponential schedule: the curve exp(-k x) is shifted and scaled to run from
# the start value at the first epoch to exactly 0 at the last; k = 5 spends most of the BC
# weight in the first third of the run.
EXPONENTIAL_RATE = 5.0
# Evaluation episodes are seeded apart from the training environments so that the regression
# gate never scores a policy on the episodes it was trained on.
EVAL_SEED_OFFSET = 10_000


def bc_schedule(start: float, schedule: str, epochs: int) -> list[float]:
    """The BC coefficient c_t of each PPO epoch: ``start`` at the first, 0 at the last.

    linear: c_t = start * (1 - t / (T - 1)).
    exponential: c_t = start * (exp(-k t / (T - 1)) - exp(-k)) / (1 - exp(-k)), k = 5.
    A one-epoch run keeps ``start``: there is no later epoch to anneal towards.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule '{schedule}' (known: {', '.join(SCHEDULES)})")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, not {epochs}")
    if epochs == 1:
        return [float(start)]
    coefs = []
    for t in range(epochs):
        x = t / (epochs - 1)
        if schedule == "linear":
            shape = 1.0 - x
        else:
            floor = math.exp(-EXPONENTIAL_RATE)
            shape = (math.exp(-EXPONENTIAL_RATE * x) - floor) / (1.0 - floor)
        coefs.append(float(start) * shape)
    coefs[-1] = 0.0  # exactly zero, not a rounding residue: the last update is plain PPO
    return coefs


class ActorCritic(nn.Module):
    """The BC-shaped policy (actor) and a value network that reads the same normalised input."""

    def __init__(self, actor: MLPPolicy, value_hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.actor = actor
        self.critic = mlp(actor.spec.obs_dim, value_hidden_sizes, 1, out_std=1.0)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.actor.normalise(obs)).squeeze(-1)


@dataclass(frozen=True)
class LossTerms:
    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    bc: torch.Tensor | None
    approx_kl: torch.Tensor
    clip_fraction: torch.Tensor


def ppo_loss(
    logits: torch.Tensor,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    returns: torch.Tensor,
    cfg: PPOConfig,
    bc_coef: float = 0.0,
    bc_term: torch.Tensor | None = None,
) -> LossTerms:
    """PPO's loss on one minibatch, plus ``bc_coef * bc_term`` (the BC loss on demonstrations) when given."""
    logp_all = F.log_softmax(logits, dim=-1)
    logp = logp_all.gather(1, actions.unsqueeze(1)).squeeze(1)
    entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    # Advantages normalised per minibatch, as CleanRL and Stable-Baselines3 do.
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    clipped = ratio.clamp(1.0 - cfg.clip_coef, 1.0 + cfg.clip_coef)
    policy_loss = torch.max(-adv * ratio, -adv * clipped).mean()
    value_loss = 0.5 * (values - returns).pow(2).mean()
    total = policy_loss - cfg.ent_coef * entropy + cfg.vf_coef * value_loss
    if bc_term is not None:
        total = total + bc_coef * bc_term
    with torch.no_grad():
        # Schulman's low-variance estimator of KL(old || new).
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
        clip_fraction = ((ratio - 1.0).abs() > cfg.clip_coef).float().mean()
    return LossTerms(total, policy_loss, value_loss, entropy, bc_term, approx_kl, clip_fraction)


def make_envs(env_id: str, num_envs: int) -> Any:
    """``num_envs`` copies of ``env_id``, natively vectorised where the environment allows."""
    import gymnasium as gym

    envs = gym.make_vec(env_id, num_envs=num_envs)
    mode = envs.metadata.get("autoreset_mode")
    if mode is not gym.vector.AutoresetMode.NEXT_STEP:
        envs.close()
        raise HarnessError(f"env.id '{env_id}': PPO needs next-step autoreset, not {mode}")
    return envs


class NumpyActor:
    """A frozen NumPy copy of an actor's forward pass, for acting during a rollout."""

    def __init__(self, actor: MLPPolicy) -> None:
        self.mean = actor.obs_mean.numpy().copy()
        self.std = actor.obs_std.numpy().copy()
        linears = [m for m in actor.net if isinstance(m, nn.Linear)]
        self.layers = [
            (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears
        ]

    def logits(self, obs: np.ndarray) -> np.ndarray:
        h = (obs - self.mean) / self.std
        for weight, bias in self.layers[:-1]:
            h = np.tanh(h @ weight + bias)
        weight, bias = self.layers[-1]
        return h @ weight + bias


@dataclass
class Rollout:
    """One rollout of ``T`` steps in ``N`` environments; ``obs[T]`` is the observation after it."""

    obs: torch.Tensor  # (T + 1, N, obs_dim)
    actions: torch.Tensor  # (T, N)
    rewards: np.ndarray  # (T, N)
    terminated: np.ndarray  # (T, N) the episode ended in a terminal state: no bootstrap
    done: np.ndarray  # (T, N) terminated or truncated: advantages stop here
    valid: np.ndarray  # (T, N) False on the reset step that follows an episode's end
    episode_returns: list[float]


class RolloutCollector:
    """Steps the training environments with the current actor, keeping state across rollouts."""

    def __init__(self, envs: Any, num_steps: int, seed: int, generator: torch.Generator) -> None:
        self.envs = envs
        self.num_steps = num_steps
        self.generator = generator
        obs, _ = envs.reset(seed=seed)
        self.obs = np.asarray(obs, dtype=np.float32)
        self.n_envs = len(self.obs)
        self.prev_done = np.zeros(self.n_envs, dtype=bool)
        self.running_return = np.zeros(self.n_envs)

    def collect(self, actor: MLPPolicy) -> Rollout:
        steps, n, spec = self.num_steps, self.n_envs, actor.spec
        act = NumpyActor(actor)
        obs_buf = np.empty((steps + 1, n, spec.obs_dim), dtype=np.float32)
        actions = np.empty((steps, n), dtype=np.int64)
        rewards = np.empty((steps, n), dtype=np.float32)
        terminated = np.empty((steps, n), dtype=bool)
        done = np.empty((steps, n), dtype=bool)
        valid = np.empty((steps, n), dtype=bool)
        # argmax(logits + Gumbel noise) is a sample of softmax(logits).
        uniform = torch.rand(steps, n, spec.n_actions, generator=self.generator)
        gumbel = (-torch.log(-torch.log(uniform.clamp_min_(1e-20)))).numpy()
        episode_returns: list[float] = []
        obs = self.obs
        for t in range(steps):
            obs_buf[t] = obs
            actions[t] = action = (act.logits(obs) + gumbel[t]).argmax(-1)
            obs, reward, term, trunc, _ = self.envs.step(action)
            obs = np.asarray(obs, dtype=np.float32)
            rewards[t], terminated[t] = reward, term
            done[t] = term | trunc
            valid[t] = ~self.prev_done
            self.running_return += reward
            episode_returns.extend(self.running_return[done[t]].tolist())
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


@dataclass(frozen=True)
class UpdateStats:
    """One PPO update (one epoch): a line of the PPO log."""

    update: int
    bc_coef: float
    loss_total: float
    loss_policy: float
    loss_value: float
    entropy: float
    loss_bc: float | None
    approx_kl: float
    clip_fraction: float
    mean_episode_return: float | None
    episodes: int
    env_steps: int
    steps_per_second: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def train(
    model: ActorCritic,
    envs: Any,
    cfg: PPOConfig,
    bc_coefs: Sequence[float],
    seed: int,
    generator: torch.Generator,
    demos: tuple[np.ndarray, np.ndarray] | None = None,
    on_update: Callable[[UpdateStats], None] | None = None,
) -> list[UpdateStats]:
    """``len(bc_coefs)`` PPO epochs; each collects one rollout and updates on it.

    ``demos`` (observations, actions) supplies the BC term, weighted ``bc_coefs[epoch]``; without
    it the loss is plain PPO's. The caller seeds torch (``harness.training.seeding.deterministic``).
    """
    actor = model.actor
    params = list(model.parameters())
    optimiser = Adam(params, lr=cfg.lr, eps=1e-5)  # eps 1e-5 as in CleanRL and SB3's PPO
    collector = RolloutCollector(envs, cfg.num_steps, seed, generator)
    demo_x = torch.as_tensor(demos[0]) if demos is not None else None
    demo_y = torch.as_tensor(demos[1]) if demos is not None else None
    history: list[UpdateStats] = []
    env_steps = 0
    for update, bc_coef in enumerate(bc_coefs, start=1):
        started = time.perf_counter()
        model.eval()
        rollout = collector.collect(actor)
        env_steps += rollout.rewards.size

        # Flatten the rollout to its valid frames; score them once under the rollout's policy.
        steps = len(rollout.rewards)
        keep = torch.from_numpy(np.flatnonzero(rollout.valid.reshape(-1)))
        with torch.no_grad():
            values = model.value(rollout.obs).numpy()
            advantages, returns = advantages_and_returns(
                rollout.rewards, values, rollout.terminated, rollout.done, cfg.gamma, cfg.gae_lambda
            )
            b_obs = rollout.obs[:steps].reshape(-1, actor.spec.obs_dim)[keep]
            b_actions = rollout.actions.reshape(-1)[keep]
            logp_all = F.log_softmax(actor(b_obs), dim=-1)
            b_logp = logp_all.gather(1, b_actions.unsqueeze(1)).squeeze(1)
        b_adv = torch.from_numpy(advantages.reshape(-1))[keep]
        b_ret = torch.from_numpy(returns.reshape(-1))[keep]

        model.train()
        sums = dict.fromkeys(("total", "policy", "value", "entropy", "bc", "kl", "clip"), 0.0)
        minibatches = 0
        # Masked reset frames make the batch a little smaller than num_envs * num_steps; equal
        # splits avoid a remainder minibatch of one frame, whose advantage std would be NaN.
        n_minibatches = math.ceil(len(keep) / cfg.minibatch_size)
        for _ in range(cfg.update_epochs):
            order = torch.randperm(len(keep), generator=generator)
            for mb in torch.tensor_split(order, n_minibatches):
                bc_term = None
                if demo_x is not None:
                    demo_mb = torch.randint(len(demo_x), (len(mb),), generator=generator)
                    bc_term = bc_loss(actor(demo_x[demo_mb]), demo_y[demo_mb])
                terms = ppo_loss(
                    actor(b_obs[mb]),
                    b_actions[mb],
                    b_logp[mb],
                    b_adv[mb],
                    model.value(b_obs[mb]),
                    b_ret[mb],
                    cfg,
                    bc_coef,
                    bc_term,
                )
                optimiser.zero_grad()
                terms.total.backward()
                clip_grad_norm(params, cfg.max_grad_norm)
                optimiser.step()
                minibatches += 1
                sums["total"] += terms.total.item()
                sums["policy"] += terms.policy.item()
                sums["value"] += terms.value.item()
                sums["entropy"] += terms.entropy.item()
                sums["bc"] += terms.bc.item() if terms.bc is not None else 0.0
                sums["kl"] += terms.approx_kl.item()
                sums["clip"] += terms.clip_fraction.item()
            if cfg.target_kl is not None and terms.approx_kl.item() > cfg.target_kl:
                break
        model.eval()

        mean = {key: value / minibatches for key, value in sums.items()}
        elapsed = time.perf_counter() - started
        episodes = rollout.episode_returns
        stats = UpdateStats(
            update=update,
            bc_coef=float(bc_coef),
            loss_total=mean["total"],
            loss_policy=mean["policy"],
            loss_value=mean["value"],
            entropy=mean["entropy"],
            loss_bc=mean["bc"] if demo_x is not None else None,
            approx_kl=mean["kl"],
            clip_fraction=mean["clip"],
            mean_episode_return=float(np.mean(episodes)) if episodes else None,
            episodes=len(episodes),
            env_steps=env_steps,
            steps_per_second=rollout.rewards.size / elapsed,
        )
        history.append(stats)
        if on_update:
            on_update(stats)
    return history


@torch.no_grad()
def evaluate(actor: MLPPolicy, env_id: str, episodes: int, seed: int) -> list[float]:
    """Return of one greedy episode in each of ``episodes`` environments reset with ``seed``.

    Two policies evaluated with the same ``seed`` face the same initial states, which is what the
    regression gate compares.
    """
    envs = make_envs(env_id, episodes)
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes)
        finished = np.zeros(episodes, dtype=bool)
        act = NumpyActor(actor)
        while not finished.all():
            obs, reward, term, trunc, _ = envs.step(act.logits(obs).argmax(-1))
            returns += np.where(finished, 0.0, reward)
            finished |= term | trunc
        return returns.tolist()
    finally:
        envs.close()


def regression_gate(
    mean_return: float,
    baseline_mean_return: float | None,
    tolerance: float,
    loss_total: float | None,
) -> GateResult:
    """Pass unless training diverged or the new policy lost more than ``tolerance`` against the
    baseline (the promoted policy, scored on the same evaluation episodes).

    A negative tolerance demands an improvement of at least its size; with no baseline (an
    empty store) only divergence fails the gate.
    """
    reasons = []
    if loss_total is None or not math.isfinite(loss_total):
        reasons.append("the PPO loss is not finite: training diverged")
    if baseline_mean_return is not None and mean_return < baseline_mean_return - tolerance:
        reasons.append(
            f"mean return {mean_return:.1f} is below the required "
            f"{baseline_mean_return - tolerance:.1f} (the baseline's {baseline_mean_return:.1f} "
            f"minus anneal.regression_tolerance {tolerance:g})"
        )
    return GateResult(not reasons, reasons)
