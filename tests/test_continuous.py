"""Training beyond CartPole: Box (continuous) actions and observations of any shape, with BC, its
gate and PPO, on real environments (Pendulum-v1 with a swing-up controller written here,
LunarLander-v3 with Gymnasium's own heuristic, continuous and discrete) and on a small strict
environment that refuses any action outside its bounds.

Datasets are recorded here by running the controller and writing the capture with
``write_capture``, the way ``harness dataset record`` writes one."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Normal

from harness import TrainingHarness, load_config
from harness.config import Config
from harness.datasets.capture import Episode, read_capture, write_capture
from harness.datasets.checksums import build_sheet
from harness.datasets.curation import add_capture
from harness.datasets.manifest import new_manifest
from harness.errors import HarnessError
from harness.training.bc import (
    accuracy_gate,
    action_accuracy,
    bc_loss,
    mean_action_baseline,
    range_scaled_mae,
    regression_figures,
    within_tolerance,
)
from harness.training.bc import train as bc_train
from harness.training.checkpoints import load_checkpoint
from harness.training.evaluation import evaluate
from harness.training.policy import (
    MLPPolicy,
    PolicySpec,
    gaussian_log_prob_entropy,
    load_policy,
    policy_bytes,
)
from harness.training.ppo import ActorCritic, ppo_loss, to_batch
from harness.training.rollout import NumpyActor, RolloutCollector, make_envs
from harness.training.runlog import log_path, read_log, read_ppo_log
from harness.validation import schema_problems

from .conftest import REPO, Dataset

BASE = REPO / "configs" / "examples" / "poc_hybrid.yaml"
CFG = load_config(BASE)
Controller = Callable[[Any, np.ndarray], Any]


# --- a strict environment: Box observations of shape (2, 3), Box actions of shape (1, 2) ------


class StrictBox(gym.Env):  # type: ignore[type-arg]
    """Observations of shape (2, 3); actions of shape (1, 2) with bounds [-1, 1] and [0, 3].

    The reward is minus the squared distance to ``target(obs)``; an action outside the bounds
    (or of the wrong shape) raises, so an unclipped step fails the test that made it.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, (2, 3), np.float32)
    action_space = gym.spaces.Box(
        np.array([[-1.0, 0.0]], np.float32), np.array([[1.0, 3.0]], np.float32), dtype=np.float32
    )

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.obs = self.np_random.uniform(-1, 1, (2, 3)).astype(np.float32)
        return self.obs, {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            raise ValueError(f"StrictBox: action {action!r} is outside {self.action_space}")
        reward = -float(np.sum((action - strict_target(self.obs)) ** 2))
        self.obs = self.np_random.uniform(-1, 1, (2, 3)).astype(np.float32)
        return self.obs, reward, False, False, {}


def strict_target(obs: np.ndarray) -> np.ndarray:
    """The best action: a function of the observation that spans most of each range."""
    return np.array([[0.9 * obs[0, 0], 1.5 + 1.4 * obs[1, 2]]], dtype=np.float32)


STRICT = "harness_test/StrictBox-v0"
if STRICT not in gym.registry:
    gym.register(STRICT, entry_point=StrictBox, max_episode_steps=25)


# --- recording: run a controller, write the capture, build a dataset -------------------------


def swing_up(env: Any, obs: np.ndarray) -> np.ndarray:
    """Pendulum-v1: pump energy with full torque until near the top, then a PD balance.

    Energy relative to resting upright, for Pendulum's m = l = 1, g = 10 and inertia 1/3:
    E = w^2 / 6 + 5 (cos(theta) - 1). Not optimal; it swings up and holds the pendulum.
    """
    cos, sin, vel = (float(x) for x in obs)
    if cos > 0.85:
        torque = -(12.0 * np.arctan2(sin, cos) + 2.5 * vel)
    elif vel**2 / 6 + 5.0 * (cos - 1.0) < 0:
        torque = 2.0 * np.sign(vel) if vel else 2.0
    else:
        torque = -0.5 * np.sign(vel)
    return np.clip(np.array([torque], np.float32), -2.0, 2.0)


def lander_heuristic(env: Any, obs: np.ndarray) -> Any:
    from gymnasium.envs.box2d.lunar_lander import heuristic

    return heuristic(env, obs)


def strict_demonstrator(env: Any, obs: np.ndarray) -> np.ndarray:
    return strict_target(obs)


def record_episodes(
    env_id: str, kwargs: dict[str, Any], controller: Controller, episodes: int, seed: int
) -> list[Episode]:
    """``episodes`` episodes of ``controller(env.unwrapped, obs)``, reset with seed, seed + 1..."""
    env = gym.make(env_id, **kwargs)
    continuous = isinstance(env.action_space, gym.spaces.Box)
    recorded = []
    try:
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + k)
            rows: list[tuple[Any, ...]] = []
            done = False
            while not done:
                action = controller(env.unwrapped, obs)
                if continuous:
                    action = np.asarray(action, np.float32).reshape(env.action_space.shape)
                following, reward, term, trunc, _ = env.step(action)
                rows.append((obs, action, reward, term, trunc))
                obs, done = following, term or trunc
            columns = list(zip(*rows, strict=True))
            recorded.append(
                Episode(
                    obs=np.array(columns[0], np.float32),
                    actions=np.array(columns[1], np.float32 if continuous else np.int64),
                    rewards=np.array(columns[2], np.float32),
                    terminated=np.array(columns[3], bool),
                    truncated=np.array(columns[4], bool),
                )
            )
    finally:
        env.close()
    return recorded


def make_dataset(
    root: Path, env_id: str, kwargs: dict[str, Any], controller: Controller, sizes: list[int]
) -> Dataset:
    """One accepted capture of ``n`` episodes for each ``n`` in ``sizes``, checksummed."""
    ds = Dataset(root, "demo")
    manifest = new_manifest(ds.manifest_path, ds.name, env_id, ds.captures, env_kwargs=kwargs)
    for i, episodes in enumerate(sizes):
        path = ds.captures / f"c{i}.h5"
        recorded = record_episodes(env_id, kwargs, controller, episodes, seed=100 * i)
        write_capture(
            path,
            recorded,
            env_id=env_id,
            env_kwargs=kwargs,
            demonstrator=getattr(controller, "__name__", "controller"),
            demonstrator_params={},
            seed=100 * i,
        )
        add_capture(manifest, path)
        manifest.with_status(f"c{i}", "accepted", "recorded by the test")
    manifest.save()
    build_sheet(manifest, ds.sheet_path).save()
    return ds


def config_for(ds: Dataset, out: Path, **changes: Any) -> Config:
    """The base config on ``ds``'s environment and data, outputs in ``out``, PPO shortened."""
    manifest = ds.manifest()
    overrides: dict[str, Any] = {
        "dataset.manifest": ds.manifest_path,
        "dataset.checksums": ds.sheet_path,
        "env.id": manifest.env_id,
        "env.kwargs": manifest.env_kwargs,
        "output.log_dir": out / "logs",
        "output.checkpoint_dir": out / "ckpt",
        "ppo.epochs": 2,
        "ppo.num_envs": 4,
        "ppo.num_steps": 64,
        "ppo.minibatch_size": 64,
        "anneal.eval_episodes": 3,
    }
    overrides.update({k.replace("__", "."): v for k, v in changes.items()})
    return CFG.override(overrides)


@pytest.fixture(scope="module")
def strict_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return make_dataset(tmp_path_factory.mktemp("strict"), STRICT, {}, strict_demonstrator, [3, 3])


@pytest.fixture(scope="module")
def pendulum_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return make_dataset(tmp_path_factory.mktemp("pendulum"), "Pendulum-v1", {}, swing_up, [4, 4])


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """torch.testing.assert_close's float32 tolerances; its first call costs a second of imports."""
    np.testing.assert_allclose(
        actual.detach().numpy(), expected.detach().numpy(), rtol=1.3e-6, atol=1e-5
    )


def records(out: Path) -> list[dict[str, Any]]:
    return read_log(log_path(out / "logs"))


def without_times(record: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in record.items() if k not in ("started_at", "duration_s", "steps_per_second")
    }


# --- the Gaussian policy ---------------------------------------------------------------------


def test_the_gaussian_log_prob_and_entropy_are_torch_normals() -> None:
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(50, 3, generator=g)
    log_std = torch.randn(3, generator=g) * 0.5
    actions = mean + torch.randn(50, 3, generator=g) * 2
    logp, entropy = gaussian_log_prob_entropy(mean, log_std, actions)
    normal = Normal(mean, log_std.exp().expand_as(mean))
    close(logp, normal.log_prob(actions).sum(-1))
    close(entropy, normal.entropy().sum(-1).mean())


def test_the_box_ppo_loss_matches_a_reference_and_trains_the_log_std() -> None:
    torch.manual_seed(1)
    policy = MLPPolicy(PolicySpec.box(4, [-1.0, 0.0], [1.0, 3.0], (8,)))
    assert torch.equal(policy.log_std.detach(), torch.zeros(2))  # SB3's and CleanRL's init
    g = torch.Generator().manual_seed(1)
    obs, actions = torch.randn(64, 4, generator=g), torch.randn(64, 2, generator=g)
    old_logp = torch.randn(64, generator=g) - 2
    advantages, values, returns = (torch.randn(64, generator=g) for _ in range(3))
    cfg = replace(CFG.ppo, ent_coef=0.01)

    mean = policy(obs)
    logp, entropy = policy.log_prob_entropy(mean, actions)
    terms = ppo_loss(logp, entropy, old_logp, advantages, values, returns, cfg)
    # CleanRL's continuous PPO loss, written with torch.distributions.
    dist = Normal(mean, policy.log_std.exp().expand_as(mean))
    ratio = (dist.log_prob(actions).sum(-1) - old_logp).exp()
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean()
    expected = (
        pg - 0.01 * dist.entropy().sum(-1).mean() + 0.5 * 0.5 * (values - returns).pow(2).mean()
    )
    close(terms.total, expected)
    terms.total.backward()
    assert policy.log_std.grad is not None and policy.log_std.grad.abs().sum() > 0


def test_bc_fits_the_mean_with_the_range_scaled_squared_error_and_leaves_the_log_std() -> None:
    policy = MLPPolicy(PolicySpec.box(3, [-1.0, -100.0], [1.0, 100.0], (8,)))
    mean = torch.tensor([[0.5, 50.0], [0.0, 0.0]], requires_grad=True)
    actions = torch.tensor([[0.0, 0.0], [1.0, 100.0]])
    # Errors of half and all of each half-range count alike in both dimensions.
    expected = (0.5**2 + 0.5**2 + 1.0 + 1.0) / 4
    loss = bc_loss(policy, mean, actions)
    assert loss.item() == pytest.approx(expected)
    # For a fixed standard deviation it is the Gaussian's negative log-likelihood (of the
    # range-scaled actions, std 1) up to an affine map: same minimiser, gradients in proportion.
    half, dims = torch.tensor([1.0, 100.0]), 2
    nll = -Normal(mean / half, 1.0).log_prob(actions / half).sum(-1).mean()
    close(loss, (2 / dims) * (nll - dims / 2 * math.log(2 * math.pi)))
    # BC training moves the mean and leaves the log std where PPO's exploration starts.
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(64, 3, generator=g).numpy()
    demo = torch.rand(64, 2, generator=g) * torch.tensor([2.0, 200.0]) - torch.tensor([1.0, 100.0])
    before = policy.net[-1].weight.detach().clone()
    stats = bc_train(policy, obs, demo.numpy(), replace(CFG.bc, epochs=3, batch_size=16), g)
    assert torch.equal(policy.log_std.detach(), torch.zeros(2))
    assert not torch.equal(policy.net[-1].weight, before) and len(stats.epoch_losses) == 3


def test_greedy_actions_are_the_mean_clipped_to_the_bounds() -> None:
    spec = PolicySpec.box(2, [-1.0, 0.0], [1.0, 3.0], (4,))
    policy = MLPPolicy(spec)
    with torch.no_grad():
        policy.net[-1].bias.copy_(torch.tensor([5.0, -2.0]))  # the mean lies outside both bounds
        policy.net[-1].weight.zero_()
    obs = np.zeros((3, 2), np.float32)
    np.testing.assert_array_equal(policy.act(obs), [[1.0, 0.0]] * 3)
    np.testing.assert_array_equal(NumpyActor(policy).greedy(obs), [[1.0, 0.0]] * 3)
    # Observations of any shape are flattened.
    np.testing.assert_array_equal(policy.act(obs.reshape(3, 1, 2)), [[1.0, 0.0]] * 3)


def test_a_discrete_spec_keeps_its_json_and_a_box_spec_round_trips() -> None:
    assert PolicySpec(4, 2, (64, 64)).to_json() == {
        "obs_dim": 4,
        "n_actions": 2,
        "hidden_sizes": [64, 64],
    }
    # A discrete policy's weights have no log std: its checkpoint bytes are as before.
    assert "log_std" not in MLPPolicy(PolicySpec(4, 2, (8,))).state_dict()
    box = PolicySpec.box(6, [-1.0, 0.0], [1.0, 3.0], (16,))
    assert PolicySpec.from_json(json.loads(json.dumps(box.to_json()))) == box
    assert box.to_json()["action_space"] == "continuous" and box.action_dim == 2
    torch.manual_seed(0)
    policy = MLPPolicy(box)
    with torch.no_grad():
        policy.log_std.fill_(-0.7)
    again = load_policy(box, policy_bytes(policy))
    assert torch.equal(again.log_std, policy.log_std)
    with pytest.raises(ValueError, match="either n_actions"):
        PolicySpec(4, 2, (8,), (0.0,), (1.0,))


# --- the BC gate on Box actions, worked by hand ----------------------------------------------

GATE_SPEC = PolicySpec.box(1, [-1.0, 0.0], [1.0, 10.0], (4,))  # tolerance 0.1: 0.2 and 1.0


@pytest.mark.parametrize(
    ("predicted", "actual", "inside"),
    [
        ([0.2, 5.0], [0.0, 5.0], True),  # 0.2 is exactly the tolerance of a range of 2
        ([0.21, 5.0], [0.0, 5.0], False),
        ([0.0, 6.0], [0.0, 5.0], True),  # 1.0 of a range of 10
        ([0.0, 6.1], [0.0, 5.0], False),
        ([0.3, 6.5], [0.0, 5.0], False),  # both out
        ([0.1, 4.5], [0.0, 5.0], True),
    ],
)
def test_within_tolerance_needs_every_dimension(
    predicted: list[float], actual: list[float], inside: bool
) -> None:
    got = within_tolerance(GATE_SPEC, np.array([predicted]), np.array([actual]), 0.1)
    assert got.tolist() == [inside]


def test_the_mean_action_baseline_and_the_regression_figures() -> None:
    train = np.array([[0.0, 2.0], [1.0, 4.0], [-0.4, 3.0]])  # mean [0.2, 3.0]
    hold = np.array([[0.3, 3.5], [0.2, 9.0], [-0.1, 2.0], [0.5, 3.0]])
    mean, baseline = mean_action_baseline(GATE_SPEC, train, hold, 0.1)
    assert mean == pytest.approx([0.2, 3.0])
    # Within 0.2 and 1.0 of [0.2, 3.0] in both dimensions: row 0 only (row 1: 6.0 off in the
    # second; rows 2 and 3: 0.3 off in the first).
    assert baseline == 0.25
    predicted = np.array([[0.3, 3.5], [0.2, 8.0], [-0.1, 2.0], [0.5, 3.0]])
    assert action_accuracy(GATE_SPEC, predicted, hold, 0.1) == 1.0
    mse, r2 = regression_figures(predicted, hold)
    assert mse == pytest.approx(1.0 / 8)  # one error of 1.0 over 4 frames x 2 dimensions
    ss_tot = np.sum((hold[:, 1] - hold[:, 1].mean()) ** 2)
    assert r2 == pytest.approx((1.0 + (1 - 1.0 / ss_tot)) / 2)  # dimension 0 is exact
    # Per dimension, as a fraction of its range (2 and 10): errors 0 and 1.0 + 0 + 0 + 0.
    assert range_scaled_mae(GATE_SPEC, predicted, hold) == pytest.approx([0.0, 1.0 / 4 / 10])
    # A dimension constant on the hold-out: 1.0 when predicted exactly, 0.0 when not.
    flat = np.array([[0.0, 1.0], [0.0, 2.0]])
    assert regression_figures(flat, flat)[1] == 1.0
    assert regression_figures(flat + np.array([0.1, 0.0]), flat)[1] == pytest.approx(0.5)


def test_the_gate_names_the_mean_action_baseline() -> None:
    gate = accuracy_gate(0.85, 0.8, 0.9, "mean_action")
    assert not gate.passed
    assert gate.reasons == ["accuracy 0.8500 does not beat the mean-action baseline 0.9000"]
    assert accuracy_gate(0.95, 0.8, 0.9, "mean_action").passed


# --- rollouts: sampled from the Gaussian, stored unclipped, stepped clipped ------------------


def test_box_rollouts_sample_the_gaussian_and_step_within_the_bounds() -> None:
    torch.manual_seed(2)
    spec = PolicySpec.box(6, [-1.0, 0.0], [1.0, 3.0], (8,))
    actor = MLPPolicy(spec)
    with torch.no_grad():
        actor.log_std.fill_(1.0)  # std e: most samples fall outside the bounds
    model = ActorCritic(actor, (8,))
    envs = make_envs(STRICT, 4)  # StrictBox raises on any action outside its bounds
    try:
        rollout = RolloutCollector(envs, 100, 0, torch.Generator().manual_seed(0)).collect(actor)
    finally:
        envs.close()
    assert rollout.obs.shape == (101, 4, 6) and rollout.actions.shape == (100, 4, 2)
    actions = rollout.actions.numpy()
    assert (actions[..., 0] > 1.0).any() and (actions[..., 1] < 0.0).any()  # stored unclipped
    # The samples are the Gaussian's: standardised, they look standard normal.
    with torch.no_grad():
        mean = actor(rollout.obs[:100].reshape(-1, 6)).numpy().reshape(100, 4, 2)
    z = (actions - mean) / np.e
    assert abs(z.mean()) < 0.1 and abs(z.std() - 1.0) < 0.1
    # Old log-probabilities are those of the unclipped samples.
    batch = to_batch(model, rollout, CFG.ppo)
    expected = Normal(actor(batch.obs), np.e).log_prob(batch.actions).sum(-1)
    close(batch.logp, expected.detach())


def test_evaluation_of_a_box_policy_is_seeded_and_clipped() -> None:
    torch.manual_seed(3)
    actor = MLPPolicy(PolicySpec.box(3, [-2.0], [2.0], (16,)))
    with torch.no_grad():
        actor.net[-1].bias.fill_(7.0)  # full torque, whatever the state
    first = evaluate(actor, "Pendulum-v1", 3, seed=5)
    assert evaluate(actor, "Pendulum-v1", 3, seed=5) == first
    assert len(first) == 3 and all(-200 * 16.3 < r < 0 for r in first)


# --- end to end through TrainingHarness --------------------------------------------------------


def test_mixed_on_a_box_env_with_shaped_observations_end_to_end(
    strict_dataset: Dataset, tmp_path: Path
) -> None:
    config = config_for(strict_dataset, tmp_path, bc__epochs=60)
    result = TrainingHarness(config, progress=False).run_mixed_training(tmp_path / "ppo.jsonl")
    bc, ppo = result.bc, result.ppo

    assert bc.action_space == "continuous" and bc.baseline_rule == "mean_action"
    assert bc.passed and bc.accuracy > bc.baseline and bc.per_action_recall is None
    record = bc.record
    assert record["mse"] < 0.05 and record["r2"] > 0.9 and record["action_tolerance"] == 0.1
    assert len(bc.mae_per_dimension) == 2 and record["mae_per_dimension"] == bc.mae_per_dimension
    assert max(bc.mae_per_dimension) < 0.1 and len(record["epoch_history"]) == 60
    assert len(record["mean_action"]) == 2 and "majority_baseline" not in record
    assert ppo is not None and ppo.passed and ppo.loss_total is not None
    assert len(ppo.returns) == 3 and all(r < 0 for r in ppo.returns)

    promoted = load_checkpoint(ppo.checkpoint)
    spec = PolicySpec.from_json(promoted.meta["policy"])
    assert spec == PolicySpec.box(6, [-1.0, 0.0], [1.0, 3.0], CFG.bc.hidden_sizes)
    logged = records(tmp_path)
    assert [r["mode"] for r in logged] == ["bc", "ppo"]
    assert schema_problems(logged, "run_log") == []
    lines = read_ppo_log(tmp_path / "ppo.jsonl")  # each line schema-checked
    assert [line["update"] for line in lines] == [1, 2] and lines[0]["loss_bc"] is not None
    # The reloaded BC policy reproduces the gate's figure on the hold-out episodes it names.
    policy = load_policy(spec, load_checkpoint(bc.checkpoint).file("policy.pt").read_bytes())
    names = record["holdout"]["names"]
    episodes = {
        f"c{i}/demo_{k}": e
        for i in (0, 1)
        for k, e in enumerate(read_capture(strict_dataset.captures / f"c{i}.h5")[1])
    }
    hold_obs = np.concatenate([episodes[n].obs for n in names])
    hold_act = np.concatenate([episodes[n].actions for n in names]).reshape(-1, 2)
    assert action_accuracy(spec, policy.act(hold_obs), hold_act, 0.1) == bc.accuracy


def test_the_same_seed_gives_the_same_box_run(strict_dataset: Dataset, tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        config = config_for(strict_dataset, tmp_path / name, bc__epochs=60)
        result = TrainingHarness(config, progress=False).run_mixed_training()
        assert result.ppo is not None
        updates = [{**u.to_json(), "steps_per_second": 0} for u in result.ppo.updates]
        runs.append((without_times(result.bc.record), without_times(result.ppo.record), updates))
    assert runs[0] == runs[1]
    assert runs[0][1]["checkpoint"]["id"] == runs[1][1]["checkpoint"]["id"]  # same weights


def test_a_checkpoint_of_another_environment_is_refused(
    strict_dataset: Dataset, pendulum_dataset: Dataset, tmp_path: Path
) -> None:
    config = config_for(strict_dataset, tmp_path, bc__epochs=60)
    assert TrainingHarness(config, progress=False).run_bc_training().passed
    # PPO from scratch on Pendulum is gated against the store's promoted (StrictBox) policy.
    ppo = TrainingHarness(config_for(pendulum_dataset, tmp_path), progress=False)
    with pytest.raises(
        HarnessError,
        match=r"is a policy for 6 observation values and 2-dimensional Box actions .*; "
        r"the environment has 3 observation values and 1-dimensional",
    ):
        ppo.run_ppo_training()
    assert [r["mode"] for r in records(tmp_path)] == ["bc"]


# --- real environments beyond CartPole ------------------------------------------------------


def test_pendulum_mixed_end_to_end_with_a_swing_up_demonstrator(
    pendulum_dataset: Dataset, tmp_path: Path
) -> None:
    config = config_for(pendulum_dataset, tmp_path, bc__epochs=100)
    result = TrainingHarness(config, progress=False).run_mixed_training()
    bc, ppo = result.bc, result.ppo
    # Balancing takes small torques, so the mean action (about 0) is often right: the baseline
    # is high, and BC must beat it by learning the swing-up's full-torque phases too.
    assert bc.baseline > 0.5 and bc.passed and bc.accuracy > bc.baseline, bc.reasons
    assert bc.record["r2"] > 0.5
    assert ppo is not None and ppo.baseline_mean_return is not None
    # The BC policy swings the pendulum up: far better than the ~-1200 of a constant torque.
    assert ppo.baseline_mean_return > -400
    assert schema_problems(records(tmp_path), "run_log") == []


@pytest.mark.parametrize("continuous", [True, False])
def test_lunar_lander_mixed_on_gymnasiums_heuristic(continuous: bool, tmp_path: Path) -> None:
    kwargs = {"continuous": True} if continuous else {}
    ds = make_dataset(tmp_path / "data", "LunarLander-v3", kwargs, lander_heuristic, [3, 3])
    config = config_for(ds, tmp_path, bc__epochs=60)
    result = TrainingHarness(config, progress=False).run_mixed_training()
    bc, ppo = result.bc, result.ppo
    assert bc.action_space == ("continuous" if continuous else "discrete")
    # The BC policy flies: a random one scores about -200, the heuristic about 250.
    assert ppo is not None and ppo.baseline_mean_return is not None
    assert ppo.baseline_mean_return > 0 and ppo.loss_total is not None
    assert bc.passed and bc.accuracy > bc.baseline + 0.2, (bc.accuracy, bc.baseline, bc.reasons)
    if continuous:
        assert bc.record["r2"] > 0.5
    else:
        assert set(bc.per_action_recall or {}) == {"0", "1", "2", "3"}
    assert schema_problems(records(tmp_path), "run_log") == []
