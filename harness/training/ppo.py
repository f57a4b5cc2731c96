"""PPO with an annealed behaviour-cloning term, written out (after CleanRL's ppo.py).

Why it is written here rather than taken from a library: mixed mode optimises

    loss = PPO loss (clipped surrogate + vf_coef * value loss - ent_coef * entropy)
           + c_t * BC loss (``bc.bc_loss``: cross-entropy of the demonstrators' actions, or for
             Box actions the squared error of the mean scaled by each dimension's half-range)

with c_t annealed from ``anneal.bc_coef_start`` to 0 over the PPO epochs, in the spirit of
demo-augmented policy gradients (Rajeswaran et al., 2018). Library PPOs (Stable-Baselines3,
CleanRL's scripts) have no hook for an extra term inside their update, and wrapping one would
mean re-implementing its ``train()`` anyway. Written out, the algorithm fits on two pages: the
rollout and GAE in ``rollout.py``, the loss, the update, the evaluation and the regression gate
here. Values and old log-probabilities are computed after each rollout in one batched pass, not
per step. The policy's distribution (categorical, or a Gaussian with a state-independent log
standard deviation for Box actions) is ``MLPPolicy.log_prob_entropy``: the loss only sees
log-probabilities and the entropy, so both action kinds share it.

The hyperparameters are one dataclass, ``harness.config.PPOConfig`` (the ``ppo`` section of the
training config); ``ppo.epochs`` alone sets how many updates a run makes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.config import PPOConfig
from harness.envs import EnvSpec
from harness.training.bc import bc_loss
from harness.training.distributed import current, reduce_gradients
from harness.training.optim import Adam, clip_grad_norm
from harness.training.policy import MLPPolicy, mlp
from harness.training.results import GateResult
from harness.training.rollout import (
    FrameLayout,
    NumpyActor,
    Rollout,
    RolloutCollector,
    advantages_and_returns,
    frame_layout,
    job_episode_returns,
    make_envs,
    step_actions,
)

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

    def parts(self) -> tuple[float, ...]:
        """The figures the PPO log averages, in ``LOSS_PARTS`` order (bc 0.0 when absent)."""
        bc = self.bc.item() if self.bc is not None else 0.0
        return (
            self.total.item(),
            self.policy.item(),
            self.value.item(),
            self.entropy.item(),
            bc,
            self.approx_kl.item(),
            self.clip_fraction.item(),
        )


def ppo_loss(
    logp: torch.Tensor,
    entropy: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    returns: torch.Tensor,
    cfg: PPOConfig,
    bc_coef: float = 0.0,
    bc_term: torch.Tensor | None = None,
    adv_stats: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> LossTerms:
    """PPO's loss on one minibatch, plus ``bc_coef * bc_term`` (the BC loss on demonstrations)
    when given. ``logp`` is the current policy's log-probability of each action and ``entropy``
    its mean entropy (``MLPPolicy.log_prob_entropy``). ``adv_stats``: the mean and standard
    deviation of the whole minibatch's advantages when these frames are only a rank's share."""
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    # Advantages normalised per minibatch, as CleanRL and Stable-Baselines3 do.
    mean, std = adv_stats if adv_stats is not None else (advantages.mean(), advantages.std())
    adv = (advantages - mean) / (std + 1e-8)
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


@dataclass(frozen=True)
class BCTerm:
    """Mixed mode's BC term: the demonstrations and how their weight is annealed over the run."""

    obs: np.ndarray
    """Every accepted frame's (flattened) observation."""
    actions: np.ndarray
    """The demonstrators' action at each of those frames (Box: flattened, one row each)."""
    coef_start: float
    """c_0, the weight at the first update (``anneal.bc_coef_start``)."""
    schedule: str
    """The shape of the anneal to 0 (``anneal.schedule``)."""


@dataclass(frozen=True)
class Batch:
    """A rollout flattened to its valid frames and scored once under the rollout's policy."""

    obs: torch.Tensor
    actions: torch.Tensor
    logp: torch.Tensor
    """Log-probability of each action under the policy that collected the rollout."""
    advantages: torch.Tensor
    returns: torch.Tensor

    def __len__(self) -> int:
        return len(self.actions)


@torch.no_grad()
def to_batch(model: ActorCritic, rollout: Rollout, cfg: PPOConfig) -> Batch:
    """GAE over the rollout, then its frames flattened, the reset frames of autoreset left out."""
    actor = model.actor
    steps = len(rollout.rewards)
    keep = torch.from_numpy(np.flatnonzero(rollout.valid.reshape(-1)))
    values = model.value(rollout.obs).numpy()
    advantages, returns = advantages_and_returns(
        rollout.rewards, values, rollout.terminated, rollout.done, cfg.gamma, cfg.gae_lambda
    )
    obs = rollout.obs[:steps].reshape(-1, actor.spec.obs_dim)[keep]
    actions = rollout.actions.reshape(steps * rollout.actions.shape[1], -1)[keep]
    if not actor.spec.continuous:
        actions = actions.squeeze(1)
    logp, _ = actor.log_prob_entropy(actor(obs), actions)
    return Batch(
        obs,
        actions,
        logp,
        torch.from_numpy(advantages.reshape(-1))[keep],
        torch.from_numpy(returns.reshape(-1))[keep],
    )


LOSS_PARTS = ("total", "policy", "value", "entropy", "bc", "kl", "clip")


def update(
    model: ActorCritic,
    optimiser: Adam,
    batch: Batch,
    cfg: PPOConfig,
    generator: torch.Generator,
    bc_coef: float,
    demos: tuple[torch.Tensor, torch.Tensor] | None,
    layout: FrameLayout | None = None,
) -> dict[str, float]:
    """``cfg.update_epochs`` passes of minibatch steps over ``batch``; the loss parts' means.

    With ``demos`` each minibatch adds ``bc_coef`` times the BC loss on as many demonstration
    frames, drawn at random. With ``layout`` (torchrun) the minibatches are drawn from every
    rank's frames as one process would; each rank's loss covers its own frames of a minibatch,
    weighted by their share, and the gradients and loss parts are summed over the ranks.
    """
    actor, params = model.actor, list(model.parameters())
    sums = dict.fromkeys(LOSS_PARTS, 0.0)
    minibatches = 0
    # Masked reset frames make the batch a little smaller than num_envs * num_steps; equal
    # splits avoid a remainder minibatch of one frame, whose advantage std would be NaN.
    size = len(batch) if layout is None else len(layout)
    n_minibatches = math.ceil(size / cfg.minibatch_size)
    model.train()
    for _ in range(cfg.update_epochs):
        order = torch.randperm(size, generator=generator)
        for mb in torch.tensor_split(order, n_minibatches):
            rows, weight, adv_stats = (mb, 1.0, None) if layout is None else layout.rows(mb)
            bc_term = None
            if demos is not None:
                demo_mb = torch.randint(len(demos[0]), (len(mb),), generator=generator)
                bc_term = bc_loss(actor, actor(demos[0][demo_mb]), demos[1][demo_mb])
            optimiser.zero_grad()
            parts = _backward(model, batch, rows, weight, adv_stats, cfg, bc_coef, bc_term)
            parts = reduce_gradients(params, parts)
            clip_grad_norm(params, cfg.max_grad_norm)
            optimiser.step()
            minibatches += 1
            for key, value in zip(LOSS_PARTS, parts, strict=True):
                sums[key] += value
        if cfg.target_kl is not None and parts[LOSS_PARTS.index("kl")] > cfg.target_kl:
            break
    model.eval()
    return {key: value / minibatches for key, value in sums.items()}


def _backward(
    model: ActorCritic,
    batch: Batch,
    rows: torch.Tensor,
    weight: float,
    adv_stats: tuple[torch.Tensor, torch.Tensor] | None,
    cfg: PPOConfig,
    bc_coef: float,
    bc_term: torch.Tensor | None,
) -> list[float]:
    """Backpropagate the loss of ``rows`` of a minibatch, weighted by ``weight`` (their share
    of it under torchrun; 1 for a single process); return the loss parts, weighted alike."""
    actor = model.actor
    if not len(rows):  # none of this minibatch's frames are this rank's: zero gradients
        (sum(p.sum() for p in model.parameters()) * 0.0).backward()
        return [0.0] * len(LOSS_PARTS)
    logp, entropy = actor.log_prob_entropy(actor(batch.obs[rows]), batch.actions[rows])
    terms = ppo_loss(
        logp,
        entropy,
        batch.logp[rows],
        batch.advantages[rows],
        model.value(batch.obs[rows]),
        batch.returns[rows],
        cfg,
        bc_coef,
        bc_term,
        adv_stats,
    )
    (terms.total if weight == 1.0 else terms.total * weight).backward()
    return [value * weight for value in terms.parts()]


def train(
    model: ActorCritic,
    envs: Any,
    cfg: PPOConfig,
    seed: int,
    generator: torch.Generator,
    bc: BCTerm | None = None,
    on_update: Callable[[UpdateStats], None] | None = None,
) -> list[UpdateStats]:
    """``cfg.epochs`` PPO epochs; each collects one rollout and updates on it.

    ``bc`` adds the BC term, its weight annealed over the epochs (``bc_schedule``); without it
    the loss is plain PPO's. The caller seeds torch (``harness.training.seeding.deterministic``).
    """
    optimiser = Adam(model.parameters(), lr=cfg.lr, eps=1e-5)  # eps 1e-5 as in CleanRL and SB3
    collector = RolloutCollector(envs, cfg.num_steps, seed, generator)
    coefs = bc_schedule(bc.coef_start, bc.schedule, cfg.epochs) if bc else [0.0] * cfg.epochs
    demos = (torch.as_tensor(bc.obs), torch.as_tensor(bc.actions)) if bc else None
    history: list[UpdateStats] = []
    env_steps = 0
    world = current()
    for number, bc_coef in enumerate(coefs, start=1):
        started = time.perf_counter()
        model.eval()
        rollout = collector.collect(model.actor)
        steps = rollout.rewards.size * world.size  # every rank steps as many environments
        env_steps += steps
        batch = to_batch(model, rollout, cfg)
        layout = frame_layout(rollout.valid, batch.advantages) if world.distributed else None
        mean = update(model, optimiser, batch, cfg, generator, bc_coef, demos, layout)
        episodes = job_episode_returns(rollout, collector.first_env)
        stats = UpdateStats(
            update=number,
            bc_coef=float(bc_coef),
            loss_total=mean["total"],
            loss_policy=mean["policy"],
            loss_value=mean["value"],
            entropy=mean["entropy"],
            loss_bc=mean["bc"] if demos is not None else None,
            approx_kl=mean["kl"],
            clip_fraction=mean["clip"],
            mean_episode_return=float(np.mean(episodes)) if episodes else None,
            episodes=len(episodes),
            env_steps=env_steps,
            steps_per_second=steps / (time.perf_counter() - started),
        )
        history.append(stats)
        if on_update:
            on_update(stats)
    return history


@torch.no_grad()
def evaluate(actor: MLPPolicy, env: EnvSpec | str, episodes: int, seed: int) -> list[float]:
    """Return of one greedy episode in each of ``episodes`` environments reset with ``seed``.

    Two policies evaluated with the same ``seed`` face the same initial states, which is what the
    regression gate compares. Box actions are the mean, clipped to the bounds.
    """
    envs = make_envs(env, episodes)
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes)
        finished = np.zeros(episodes, dtype=bool)
        act = NumpyActor(actor)
        while not finished.all():
            obs, reward, term, trunc, _ = envs.step(step_actions(envs, act.greedy(obs), act))
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
