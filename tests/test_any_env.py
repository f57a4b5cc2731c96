"""A team's own environment and demonstrator: module:EnvId ids, keyword arguments, continuous
actions, module:callable demonstrators, Gymnasium's scripted lander, and one-line refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from harness.config import load_config, overlay
from harness.config.dataset_match import env_mismatch
from harness.datasets.capture import read_capture
from harness.datasets.curation import add_capture
from harness.datasets.demonstrators import ActionSource, resolve_demonstrator
from harness.datasets.manifest import load_manifest, new_manifest
from harness.datasets.recording import record_capture, record_episodes
from harness.envs import CONTINUOUS, DISCRETE, EnvSpec, check_spaces, make_env
from harness.errors import CaptureError, HarnessError

from .conftest import REPO
from .outside import DEMONSTRATOR, DISCRETE_ENV_ID, ENV_ID, write_package

LANDER_HEURISTIC = "gymnasium.envs.box2d.lunar_lander:heuristic"


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The team's package, importable for this module's tests (and their subprocesses)."""
    folder = write_package(tmp_path_factory.mktemp("team"))
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))


def _cli(args: list[str], cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "HARNESS_ROOT": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_module_env_records_with_a_module_demonstrator(outside: Path, tmp_path: Path) -> None:
    spec = EnvSpec.of(ENV_ID, {"friction": 0.2})
    first, second = tmp_path / "1.h5", tmp_path / "2.h5"
    meta = record_capture(first, spec, DEMONSTRATOR, noise=0.1, episodes=3, seed=5)
    record_capture(second, spec, DEMONSTRATOR, noise=0.1, episodes=3, seed=5)
    assert first.read_bytes() == second.read_bytes()
    read, episodes = read_capture(first)
    assert read.env_spec() == spec == meta.env_spec()
    assert read.env_kwargs == {"friction": 0.2}
    assert episodes[0].obs.shape[1:] == (2, 2)
    assert episodes[0].actions.dtype == np.float32 and episodes[0].actions.shape[1:] == (1,)
    assert all(np.all(np.abs(e.actions) <= 1.0) for e in episodes)


def test_a_capture_joins_only_a_dataset_of_its_environment(outside: Path, tmp_path: Path) -> None:
    capture = tmp_path / "captures" / "c.h5"
    record_capture(capture, EnvSpec.of(ENV_ID), DEMONSTRATOR, noise=0.0, episodes=1, seed=1)
    manifest = new_manifest(
        tmp_path / "m.json", "d", ENV_ID, tmp_path / "captures", env_kwargs={"friction": 0.2}
    )
    with pytest.raises(CaptureError, match=r"recorded in mycorridor:MyOrg/Corridor-v0, .*friction"):
        add_capture(manifest, capture)
    manifest.env_kwargs = {}
    assert add_capture(manifest, capture).id == "c"


@pytest.mark.parametrize("continuous", [False, True])
def test_gymnasiums_lander_heuristic_works_as_it_is(continuous: bool) -> None:
    spec = EnvSpec.of("LunarLander-v3", {"continuous": True} if continuous else {})
    for name in ("heuristic", LANDER_HEURISTIC):
        episodes = record_episodes(spec, name, noise=0.0, episodes=3, seed=0)
        mean = float(np.mean([e.episode_return for e in episodes]))
        assert mean > 200, f"{name} lands with mean return {mean:.0f}"
    assert episodes[0].actions.dtype == (np.float32 if continuous else np.int64)


@pytest.mark.parametrize(
    ("env", "kind"), [("LunarLander-v3", DISCRETE), ("Pendulum-v1", CONTINUOUS)]
)
def test_noise_replaces_that_share_of_actions(env: str, kind: str) -> None:
    """With noise p the recorded action is the controller's except at a share p of steps
    (a discrete draw can coincide with the controller's choice)."""
    spec = EnvSpec.of(env)
    made = make_env(spec)
    try:
        source = ActionSource(resolve_demonstrator("idle", env), made, noise=0.3, seed=3)
        made.reset(seed=3)
        obs = made.observation_space.sample()
        draws = [source(obs) for _ in range(4000)]
    finally:
        made.close()
    slipped = np.mean([np.any(np.asarray(a) != 0) for a in draws])
    n = made.action_space.n if kind == DISCRETE else None
    expected = 0.3 * (1 - 1 / n) if n else 0.3
    assert abs(slipped - expected) < 0.03, (slipped, expected)
    assert check_spaces(spec)[2] == kind


def test_refusals_are_one_line(outside: Path, tmp_path: Path) -> None:
    cases = [
        (lambda: make_env("nosuchmodule:X-v0"), "cannot import nosuchmodule"),
        (lambda: make_env("Nope-v0"), "not in Gymnasium's registry"),
        (
            lambda: make_env(EnvSpec.of("CartPole-v1", {"bogus": 1})),
            "could not be made with the keyword arguments",
        ),
        (
            lambda: make_env(EnvSpec.of("LunarLander-v3", {"gravity": 5})),
            "could not be made .*AssertionError: gravity",
        ),
        (
            lambda: check_spaces(EnvSpec.of("CartPole-v1", {"max_episode_steps": -1})),
            "has no time limit",
        ),
        (lambda: resolve_demonstrator("mycorridor.control:nope", ENV_ID), "has no 'nope'"),
        (lambda: resolve_demonstrator("nosuch.mod:f", ENV_ID), "cannot import nosuch.mod"),
        (lambda: resolve_demonstrator("heuristic", "Pendulum-v1"), "no demonstrator 'heuristic'"),
        (lambda: EnvSpec.parse("CartPole-v1", "[1]"), "expected a JSON object"),
        (lambda: EnvSpec.parse("CartPole-v1", "{nope"), "not valid JSON"),
        (
            lambda: record_episodes(ENV_ID, "builtins:slice", noise=0.0, episodes=1, seed=0),
            "no action of",
        ),
        (
            lambda: record_episodes(ENV_ID, "builtins:len", noise=0.0, episodes=1, seed=0),
            "demonstrator 'builtins:len' failed: TypeError",
        ),
        (
            lambda: record_episodes(
                ENV_ID, "mycorridor.control:bail", noise=0.0, episodes=1, seed=0
            ),
            "demonstrator 'mycorridor.control:bail' failed: SystemExit",
        ),
    ]
    for call, message in cases:
        with pytest.raises(HarnessError, match=message) as caught:
            call()
        assert "\n" not in str(caught.value)


def _register(name: str, entry: object) -> str:
    if name not in gym.registry:
        gym.register(name, entry_point=entry)
    return name


class _Image(gym.Env):
    observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)


class _Unbounded(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)


class _StartsAtOne(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(3, start=1)


def _needs_a_package() -> gym.Env:
    raise gym.error.DependencyNotInstalled('Box9D is not installed, run `pip install "box9d"`')


@pytest.mark.parametrize(
    ("action", "message"),
    [(np.array([np.nan], np.float32), "NaN or infinity"), (np.array([7.0]), None)],
)
def test_a_continuous_demonstrator_action_is_finite_and_clipped(
    action: np.ndarray, message: str | None
) -> None:
    spec = resolve_demonstrator("idle", "Pendulum-v1")
    made = make_env("Pendulum-v1")
    try:
        source = ActionSource(spec, made, noise=0.0, seed=0)
        if message:
            with pytest.raises(HarnessError, match=message):
                source._checked(action)
        else:
            assert source._checked(action).tolist() == [2.0]  # Pendulum's bound
    finally:
        made.close()


def test_a_discrete_demonstrator_action_is_a_whole_number() -> None:
    made = make_env("CartPole-v1")
    try:
        source = ActionSource(resolve_demonstrator("idle", "CartPole-v1"), made, 0.0, 0)
        assert source._checked(np.int64(1)) == 1 and source._checked(1.0) == 1
        with pytest.raises(HarnessError, match="not a whole number"):
            source._checked(0.7)
    finally:
        made.close()


def test_spaces_the_trainer_cannot_learn_are_refused() -> None:
    with pytest.raises(HarnessError, match="image observations"):
        check_spaces(_register("Test/Image-v0", _Image))
    with pytest.raises(HarnessError, match="unbounded"):
        check_spaces(_register("Test/Unbounded-v0", _Unbounded))
    with pytest.raises(HarnessError, match="starting at 1 is not supported"):
        check_spaces(_register("Test/StartsAtOne-v0", _StartsAtOne))
    with pytest.raises(HarnessError, match=r"needs a package .*pip install \"box9d\""):
        make_env(_register("Test/NeedsBox9D-v0", _needs_a_package))


def test_the_cli_takes_a_team_env_and_the_config_follows_its_dataset(
    outside: Path, tmp_path: Path
) -> None:
    kwargs = '{"friction": 0.2}'
    made = _cli(
        [
            "dataset",
            "create",
            "corr",
            "--env",
            ENV_ID,
            "--env-kwargs",
            kwargs,
            "--root",
            "data/bc_datasets",
        ],
        tmp_path,
        outside,
    )
    assert made.returncode == 0, made.stderr
    manifest_path = tmp_path / "data" / "bc_datasets" / "manifests" / "corr.json"
    manifest = load_manifest(manifest_path)
    assert manifest.env_spec() == EnvSpec.of(ENV_ID, {"friction": 0.2})
    recorded = _cli(
        ["capture", "record", "--env", ENV_ID, "--env-kwargs", kwargs, "--demonstrator",
         DEMONSTRATOR, "--episodes", "2", "--seed", "1", "-o", "data/bc_datasets/captures/corr/a.h5"],
        tmp_path,
        outside,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    assert (
        _cli(
            ["dataset", "add", "corr", "data/bc_datasets/captures/corr/a.h5"], tmp_path, outside
        ).returncode
        == 0
    )

    # The overlay takes the env from the dataset; a config on another env is refused by check.
    base = REPO / "configs" / "examples" / "poc_hybrid.yaml"
    config = overlay(base, tmp_path / "corr.yaml", dataset=str(manifest_path))
    assert config.env.spec() == manifest.env_spec()
    assert env_mismatch(config, manifest) is None
    with pytest.raises(HarnessError, match=r"wrong\.yaml: not written: env\.kwargs are"):
        overlay(tmp_path / "corr.yaml", tmp_path / "wrong.yaml", ["env.kwargs={friction: 0.5}"])
    assert not (tmp_path / "wrong.yaml").exists()
    # Written by hand, it is refused by config check, naming the file and the disagreement.
    text = (tmp_path / "corr.yaml").read_text(encoding="utf-8")
    (tmp_path / "wrong.yaml").write_text(text.replace("friction: 0.2", "friction: 0.5"), "utf-8")
    assert "env.kwargs are" in (env_mismatch(load_config(tmp_path / "wrong.yaml"), manifest) or "")
    checked = _cli(["config", "check", str(tmp_path / "wrong.yaml")], tmp_path, outside)
    assert checked.returncode == 2
    assert checked.stderr.count("\n") == 1 and "friction" in checked.stderr, checked.stderr
    assert load_config(tmp_path / "corr.yaml").env.kwargs == {"friction": 0.2}

    refused = _cli(
        ["dataset", "create", "x", "--env", "Nope-v0", "--root", "data/bc_datasets"],
        tmp_path,
        outside,
    )
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert not (tmp_path / "data" / "bc_datasets" / "manifests" / "x.json").exists()
    discrete = _cli(
        ["dataset", "create", "steps", "--env", DISCRETE_ENV_ID, "--root", "data/bc_datasets"],
        tmp_path,
        outside,
    )
    assert discrete.returncode == 0, discrete.stderr
    doc = json.loads((tmp_path / "data" / "bc_datasets" / "manifests" / "steps.json").read_text())
    assert "env_kwargs" not in doc  # none given: the manifest keeps the old layout
