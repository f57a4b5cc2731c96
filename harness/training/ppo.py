"""PPO with an annealed behaviour-cloning term, written out (after CleanRL's ppo.py).

Why it is written here rather than taken from a library: mixed mode optimises

    loss = PPO loss (clipped surrogate + vf_coef * value loss - ent_coef * entropy)
           + c_t * BC loss (``bc.bc_loss``: cross-entropy of the demonstrators' actions, or for
             Box actions the squared error of the mean scaled by each dimension's half-range)

with c_t annealed from ``anneal.bc_coef_start`` to 0 over the PPO updates (by default at every
minibatch step, ``BCTerm.coefficients``; over the first ``anneal.length`` of them), after
``anneal.critic_warmup`` updates that fit only the critic, in the spirit of
demo-augmented policy gradients (Rajeswaran et al., 2018). Library PPOs (Stable-Baselines3,
CleanRL's scripts) have no hook for an extra term inside their update, and wrapping one would
mean re-implementing its ``train()`` anyway. Written out, the algorithm fits on two pages: the
rollout and GAE in ``rollout.py``, the loss and the update here, the evaluation and the
regression gate in ``evaluation.py``. Values and old log-probabilities are computed after each rollout in one batched pass, not
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

from harness.config import AnnealConfig, PPOConfig
from harness.training.bc import bc_loss
from harness.training.distributed import current, reduce_gradients
from harness.training.optim import Adam, clip_grad_norm
from harness.training.policy import MLPPolicy, mlp
from harness.training.rollout import (
    FrameLayout,
    Rollout,
    RolloutCollector,
    advantages_and_returns,
    frame_layout,
    job_episode_returns,
)

SCHEDULES = ("linear", "exponential")
# Decay rate of the exponential schedule: the curve exp(-k x) is shifted and scaled to run from
# the start value at the first epoch to exactly 0 at the last; k = 5 spends most of the BC
# weight in the first third of the run.
EXPONENTIAL_RATE = 5.0


def bc_coef_at(start: float, schedule: str, progress: float, length: float = 1.0) -> float:
    """The BC coefficient at ``progress`` (0 at the first policy update, 1 at the last step).

    The anneal takes the first ``length`` of the run and is 0 after it.
    linear: c = start * (1 - x); exponential: c = start * (exp(-k x) - exp(-k)) / (1 - exp(-k)),
    k = 5; with x = progress / length.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule '{schedule}' (known: {', '.join(SCHEDULES)})")
    x = progress / length
    if x >= 1.0:
        return 0.0  # exactly zero, not a rounding residue: the end of the run is plain PPO
    if schedule == "linear":
        return float(start) * (1.0 - x)
    floor = math.exp(-EXPONENTIAL_RATE)
    return float(start) * (math.exp(-EXPONENTIAL_RATE * x) - floor) / (1.0 - floor)


def bc_schedule(start: float, schedule: str, epochs: int, length: float = 1.0) -> list[float]:
    """The BC coefficient c_t of each PPO epoch: ``start`` at the first, 0 at the last
    (``anneal.granularity: update``; ``bc_coef_at`` at progress t / (T - 1)).

    A one-epoch run keeps ``start``: there is no later epoch to anneal towards.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule '{schedule}' (known: {', '.join(SCHEDULES)})")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, not {epochs}")
    if epochs == 1:
        return [float(start)]
    return [bc_coef_at(start, schedule, t / (epochs - 1), length) for t in range(epochs)]


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
    """c at the update's first minibatch"""
    bc_coef_end: float
    """c at its last minibatch (the same as ``bc_coef`` with ``anneal.granularity: update``)"""
    critic_only: bool
    """a critic warm-up update: only the value network moved"""
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
    granularity: str = "minibatch"
    """How often c moves: every minibatch step, or once per update (``anneal.granularity``)."""
    length: float = 1.0
    """The fraction of the policy updates over which c reaches 0 (``anneal.length``)."""
    critic_warmup: int = 0
    """Updates at the start that fit only the critic (``anneal.critic_warmup``)."""

    @classmethod
    def from_config(cls, obs: np.ndarray, actions: np.ndarray, anneal: AnnealConfig) -> BCTerm:
        """The BC term on these frames, annealed as the config's ``anneal`` section says."""
        a = anneal
        return cls(
            obs, actions, a.bc_coef_start, a.schedule, a.granularity, a.length, a.critic_warmup
        )

    def coefficients(self, updates: int) -> list[Callable[[float], float]]:
        """For each of ``updates`` policy updates, c as a function of the position in it
        (0 at its first minibatch step, 1 at its last)."""
        if self.granularity == "update":
            per_update = bc_schedule(self.coef_start, self.schedule, updates, self.length)
            return [lambda _, c=c: c for c in per_update]
        start, shape, length = self.coef_start, self.schedule, self.length
        return [
            lambda f, t=t: bc_coef_at(start, shape, (t + f) / updates, length)
            for t in range(updates)
        ]


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
    bc_coef: Callable[[float], float],
    demos: tuple[torch.Tensor, torch.Tensor] | None,
    layout: FrameLayout | None = None,
    critic_only: bool = False,
) -> dict[str, float]:
    """``cfg.update_epochs`` passes of minibatch steps over ``batch``; the loss parts' means,
    and the BC coefficient at the first and last step (``coef_first``, ``coef_last``).

    With ``demos`` each minibatch adds ``bc_coef(f)`` times the BC loss on as many demonstration
    frames, drawn at random; f runs from 0 at the first minibatch step to 1 at the last.
    ``critic_only`` steps on the value loss alone: the policy does not move. With ``layout``
    (torchrun) the minibatches are drawn from every rank's frames as one process would; each
    rank's loss covers its own frames of a minibatch, weighted by their share, and the gradients
    and loss parts are summed over the ranks.
    """
    actor, params = model.actor, list(model.parameters())
    sums = dict.fromkeys(LOSS_PARTS, 0.0)
    # Masked reset frames make the batch a little smaller than num_envs * num_steps; equal
    # splits avoid a remainder minibatch of one frame, whose advantage std would be NaN.
    size = len(batch) if layout is None else len(layout)
    n_minibatches = math.ceil(size / cfg.minibatch_size)
    last_step = max(1, cfg.update_epochs * n_minibatches - 1)
    coefs: list[float] = []
    model.train()
    for _ in range(cfg.update_epochs):
        order = torch.randperm(size, generator=generator)
        for mb in torch.tensor_split(order, n_minibatches):
            rows, weight, adv_stats = (mb, 1.0, None) if layout is None else layout.rows(mb)
            coefs.append(0.0 if critic_only else bc_coef(len(coefs) / last_step))
            bc_term = None
            if demos is not None and not critic_only:
                demo_mb = torch.randint(len(demos[0]), (len(mb),), generator=generator)
                bc_term = bc_loss(actor, actor(demos[0][demo_mb]), demos[1][demo_mb])
            optimiser.zero_grad()
            parts = _backward(
                model, batch, (rows, weight, adv_stats), cfg, coefs[-1], bc_term, critic_only
            )
            parts = reduce_gradients(params, parts)
            clip_grad_norm(params, cfg.max_grad_norm)
            optimiser.step()
            for key, value in zip(LOSS_PARTS, parts, strict=True):
                sums[key] += value
        if cfg.target_kl is not None and parts[LOSS_PARTS.index("kl")] > cfg.target_kl:
            break
    model.eval()
    means = {key: value / len(coefs) for key, value in sums.items()}
    return {**means, "coef_first": coefs[0], "coef_last": coefs[-1]}


def _backward(
    model: ActorCritic,
    batch: Batch,
    share: tuple[torch.Tensor, float, tuple[torch.Tensor, torch.Tensor] | None],
    cfg: PPOConfig,
    bc_coef: float,
    bc_term: torch.Tensor | None,
    critic_only: bool,
) -> list[float]:
    """Backpropagate the loss of ``rows`` of a minibatch, weighted by ``weight`` (their share
    of it under torchrun; 1 for a single process); return the loss parts, weighted alike.
    ``critic_only`` backpropagates the value loss alone (a critic warm-up update)."""
    rows, weight, adv_stats = share
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
    loss = cfg.vf_coef * terms.value if critic_only else terms.total
    (loss if weight == 1.0 else loss * weight).backward()
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

    ``bc`` adds the BC term, its weight annealed over the policy updates (``BCTerm``); without
    it the loss is plain PPO's. With ``bc.critic_warmup`` the first updates (at most all but
    one) fit only the critic, on rollouts of the unchanged policy. The caller seeds torch
    (``harness.training.seeding.deterministic``).
    """
    optimiser = Adam(model.parameters(), lr=cfg.lr, eps=1e-5)  # eps 1e-5 as in CleanRL and SB3
    collector = RolloutCollector(envs, cfg.num_steps, seed, generator)
    warmup = min(bc.critic_warmup, cfg.epochs - 1) if bc else 0
    policy_updates = cfg.epochs - warmup
    coefs = bc.coefficients(policy_updates) if bc else [lambda _: 0.0] * policy_updates
    schedule = [lambda _: 0.0] * warmup + coefs
    demos = (torch.as_tensor(bc.obs), torch.as_tensor(bc.actions)) if bc else None
    history: list[UpdateStats] = []
    env_steps = 0
    world = current()
    for number, bc_coef in enumerate(schedule, start=1):
        started = time.perf_counter()
        model.eval()
        rollout = collector.collect(model.actor)
        steps = rollout.rewards.size * world.size  # every rank steps as many environments
        env_steps += steps
        critic_only = number <= warmup
        batch = to_batch(model, rollout, cfg)
        layout = frame_layout(rollout.valid, batch.advantages) if world.distributed else None
        mean = update(model, optimiser, batch, cfg, generator, bc_coef, demos, layout, critic_only)
        episodes = job_episode_returns(rollout, collector.first_env)
        stats = UpdateStats(
            update=number,
            bc_coef=mean["coef_first"],
            bc_coef_end=mean["coef_last"],
            critic_only=critic_only,
            loss_total=mean["total"],
            loss_policy=mean["policy"],
            loss_value=mean["value"],
            entropy=mean["entropy"],
            loss_bc=mean["bc"] if demos is not None and not critic_only else None,
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
