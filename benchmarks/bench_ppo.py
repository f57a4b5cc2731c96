"""Benchmark: our PPO (``harness/training/ppo.py``) against Stable-Baselines3's PPO on the same tasks.

What it measures
    Training throughput, in environment steps per second, of two PPO implementations doing the
    same work:

    * ours: ``harness.training.ppo.train`` built the way the harness builds it (the ``ppo`` section of
      ``configs/examples/poc_hybrid.yaml``, ``MLPPolicy`` + ``ActorCritic``, ``make_envs``),
      run inside ``harness.training.seeding.deterministic`` (one torch thread), without a BC term;
    * SB3: ``stable_baselines3.PPO("MlpPolicy", ...)`` on ``make_vec_env`` (``DummyVecEnv``),
      ``device="cpu"``, with ``--sb3-threads`` torch threads (default 1, as ours; pass 2 to see
      SB3 at this machine's default).

    Two tasks, one per action kind: ``discrete``, CartPole-v1 (a categorical policy); and
    ``continuous``, Pendulum-v1 (a Gaussian policy with a state-independent log standard
    deviation initialised to 0 on both sides, actions clipped to the bounds when stepping, as
    both do). On each, both sides use 8 environments, 256 steps per environment per update,
    4 update epochs, minibatches of 256, lr 2.5e-4, gamma 0.99, GAE lambda 0.95, clip 0.2, no
    entropy bonus, vf_coef 0.5, max_grad_norm 0.5 and 64x64 tanh MLPs for policy and value, for
    the same number of updates (default 10, that is 20480 environment steps).

    Each measurement runs in a fresh subprocess (this script with a hidden ``--worker`` flag) so
    that imports, torch's thread settings and caches do not leak from one side to the other. The
    worker times only the training call (``train`` / ``PPO.learn``), not imports or construction,
    and prints one JSON line. The sides alternate (ours, sb3, ours, sb3, ...) so that a drift of
    the machine's speed affects both alike. The figures are the medians of steps per second; the
    goal, on each task, is ours running at least 2.0 times as many steps per second as SB3.

    Each worker also records its process CPU time: on a machine whose cores other jobs share,
    the wall-clock figures swing by a factor of two from run to run, and the ratio of steps per
    CPU second is the steadier figure. It is printed beside the goal's ratio, which stays the
    wall-clock one.

    The mean episode return each side reaches is printed as a sanity check that both did the
    same kind of work; it is not compared (the two sides count it over different windows).

How to run
    . .venv/bin/activate
    pip install -e '.[bench]'                    # Stable-Baselines3, only needed here
    python benchmarks/bench_ppo.py               # both tasks, 10 updates, 3 repeats (~2 minutes)
    python benchmarks/bench_ppo.py --task continuous # one task only
    python benchmarks/bench_ppo.py --sb3-threads 2   # SB3 at this machine's default threads
    python benchmarks/bench_ppo.py --json        # the same, as one JSON object on stdout
    python benchmarks/bench_ppo.py --updates 2 --repeats 1   # smoke run

Progress goes to stderr; the results go to stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "examples" / "poc_hybrid.yaml"
TASKS = {"discrete": "CartPole-v1", "continuous": "Pendulum-v1"}
HIDDEN = (64, 64)
# The shared hyperparameters, named as in harness.config.PPOConfig; SB3's names are mapped below.
HYPER: dict[str, Any] = {
    "num_envs": 8,
    "num_steps": 256,
    "update_epochs": 4,
    "minibatch_size": 256,
    "lr": 2.5e-4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_coef": 0.2,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "target_kl": None,
}
GOAL_RATIO = 2.0
SIDES = ("ours", "sb3")
NOT_INSTALLED = "stable-baselines3 is not installed: pip install -e '.[bench]'"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time our PPO (harness/training/ppo.py) against Stable-Baselines3's PPO on "
        "CartPole-v1 (discrete actions) and Pendulum-v1 (continuous actions)."
    )
    parser.add_argument(
        "--task",
        choices=(*TASKS, "both"),
        default="both",
        help="discrete (CartPole-v1), continuous (Pendulum-v1) or both (default)",
    )
    parser.add_argument(
        "--updates",
        type=int,
        default=10,
        help="PPO updates per run, each on 8 x 256 env steps (default 10 = 20480 steps)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side")
    parser.add_argument("--seed", type=int, default=0, help="seed of both sides (default 0)")
    parser.add_argument(
        "--sb3-threads",
        type=int,
        default=1,
        help="torch threads for SB3 (default 1, as ours; torch's own default is one per "
        f"core: {os.cpu_count()} here)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker and args.task == "both":
        parser.error("--worker needs one --task")
    if args.updates < 1 or args.repeats < 1 or args.sb3_threads < 1:
        parser.error("--updates, --repeats and --sb3-threads must be at least 1")
    return args


# --- workers: one measurement each, in a fresh process -------------------------------------


def work_ours(env_id: str, updates: int, seed: int) -> dict[str, Any]:
    import dataclasses

    import torch

    from harness.config import load_config
    from harness.envs import check_spaces
    from harness.training.policy import MLPPolicy, PolicySpec
    from harness.training.ppo import ActorCritic, train
    from harness.training.rollout import make_envs
    from harness.training.seeding import deterministic

    cfg_ppo = dataclasses.replace(
        load_config(CONFIG).ppo, epochs=updates, hidden_sizes=HIDDEN, **HYPER
    )
    with deterministic(seed) as generator:
        obs_space, action_space, _ = check_spaces(env_id)
        actor = MLPPolicy(PolicySpec.for_spaces(obs_space, action_space, HIDDEN))
        model = ActorCritic(actor, HIDDEN)
        envs = make_envs(env_id, cfg_ppo.num_envs)
        threads = torch.get_num_threads()
        start, cpu_start = time.perf_counter(), time.process_time()
        # No BC term: plain PPO, as SB3 runs it.
        history = train(model, envs, cfg_ppo, seed, generator)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        envs.close()
    return {
        "env_steps": history[-1].env_steps,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "threads": threads,
        "mean_return": history[-1].mean_episode_return,
        "versions": {"torch": torch.__version__},
    }


def work_sb3(env_id: str, updates: int, seed: int, threads: int) -> dict[str, Any]:
    import stable_baselines3
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(threads)
    env = make_vec_env(env_id, n_envs=HYPER["num_envs"], seed=seed)
    model = PPO(
        "MlpPolicy",
        env,
        learning_rate=HYPER["lr"],
        n_steps=HYPER["num_steps"],
        batch_size=HYPER["minibatch_size"],
        n_epochs=HYPER["update_epochs"],
        gamma=HYPER["gamma"],
        gae_lambda=HYPER["gae_lambda"],
        clip_range=HYPER["clip_coef"],
        clip_range_vf=None,
        normalize_advantage=True,  # per minibatch, as ours
        ent_coef=HYPER["ent_coef"],
        vf_coef=HYPER["vf_coef"],
        max_grad_norm=HYPER["max_grad_norm"],
        target_kl=HYPER["target_kl"],
        policy_kwargs={
            "net_arch": {"pi": list(HIDDEN), "vf": list(HIDDEN)},
            "activation_fn": torch.nn.Tanh,
            "log_std_init": 0.0,  # the Gaussian's (continuous task), as ours; SB3's default
        },
        device="cpu",
        seed=seed,
        verbose=0,
    )
    steps = updates * HYPER["num_envs"] * HYPER["num_steps"]
    start, cpu_start = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=steps)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    env.close()
    episodes = [info["r"] for info in model.ep_info_buffer]
    return {
        "env_steps": model.num_timesteps,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "threads": torch.get_num_threads(),
        "mean_return": sum(episodes) / len(episodes) if episodes else None,
        "versions": {
            "torch": torch.__version__,
            "stable_baselines3": stable_baselines3.__version__,
        },
    }


def worker(args: argparse.Namespace) -> int:
    env_id = TASKS[args.task]
    if args.worker == "ours":
        result = work_ours(env_id, args.updates, args.seed)
    else:
        if importlib.util.find_spec("stable_baselines3") is None:
            sys.exit(NOT_INSTALLED)
        result = work_sb3(env_id, args.updates, args.seed, args.sb3_threads)
    print(json.dumps(result), flush=True)
    return 0


# --- parent: alternate the workers and summarise -------------------------------------------


def run_worker(side: str, task: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        side,
        "--task",
        task,
        "--updates",
        str(args.updates),
        "--seed",
        str(args.seed),
        "--sb3-threads",
        str(args.sb3_threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"bench_ppo: the {side} worker exited {proc.returncode}\n{proc.stderr}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


def benchmark_task(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """One task: the sides alternate, ``args.repeats`` runs each; medians and their ratio."""
    log(f"{task} ({TASKS[task]}):")
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    for r in range(args.repeats):
        for side in SIDES:
            runs[side].append(run_worker(side, task, args))
        log(
            f"  repeat {r + 1}/{args.repeats}: "
            + ", ".join(
                f"{side} {res[-1]['seconds']:.2f} s "
                f"({res[-1]['env_steps'] / res[-1]['seconds']:,.0f} steps/s)"
                for side, res in runs.items()
            )
        )
    rates = {side: [x["env_steps"] / x["seconds"] for x in res] for side, res in runs.items()}
    medians = {side: statistics.median(r) for side, r in rates.items()}
    ratio = medians["ours"] / medians["sb3"]
    cpu_rates = {
        side: statistics.median(x["env_steps"] / x["cpu_seconds"] for x in res)
        for side, res in runs.items()
    }
    return {
        "env_id": TASKS[task],
        "threads": {side: runs[side][0]["threads"] for side in SIDES},
        "env_steps": {side: sorted({x["env_steps"] for x in res}) for side, res in runs.items()},
        "seconds": {side: [x["seconds"] for x in res] for side, res in runs.items()},
        "steps_per_second": rates,
        "median_steps_per_second": medians,
        "mean_return": {side: [x["mean_return"] for x in res] for side, res in runs.items()},
        "ratio_ours_to_sb3": ratio,
        "cpu_seconds": {side: [x["cpu_seconds"] for x in res] for side, res in runs.items()},
        "ratio_ours_to_sb3_cpu": cpu_rates["ours"] / cpu_rates["sb3"],
        "goal": {"min_ratio": GOAL_RATIO, "met": ratio >= GOAL_RATIO},
        "versions": runs["sb3"][0]["versions"],
    }


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    tasks = list(TASKS) if args.task == "both" else [args.task]
    results = {task: benchmark_task(task, args) for task in tasks}
    return {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            **next(iter(results.values()))["versions"],
        },
        "settings": {
            "updates": args.updates,
            "env_steps_per_run": args.updates * HYPER["num_envs"] * HYPER["num_steps"],
            "hidden_sizes": list(HIDDEN),
            "seed": args.seed,
            **HYPER,
        },
        "repeats": args.repeats,
        "tasks": results,
    }


def print_task(task: str, res: dict[str, Any]) -> None:
    labels = {
        "ours": f"ours (harness.training.ppo.train, {res['threads']['ours']} thread(s))",
        "sb3": f"SB3 (PPO.learn, {res['threads']['sb3']} thread(s))",
    }
    print(f"{task}: {res['env_id']}")
    for side in SIDES:
        runs = " ".join(f"{s:.2f}" for s in res["seconds"][side])
        returns = [r for r in res["mean_return"][side] if r is not None]
        mean_return = f"{statistics.mean(returns):.1f}" if returns else "n/a"
        print(
            f"  {labels[side]:36} runs [s]: {runs}  "
            f"median {res['median_steps_per_second'][side]:,.0f} steps/s  "
            f"(mean return {mean_return})"
        )
    if res["env_steps"]["ours"] != res["env_steps"]["sb3"]:
        print(f"  WARNING: the sides ran different numbers of env steps: {res['env_steps']}")
    ratio, goal = res["ratio_ours_to_sb3"], res["goal"]
    verdict = "MET" if goal["met"] else "NOT MET"
    print(
        f"  ratio ours / SB3 steps per second: {ratio:.2f}; goal at least {goal['min_ratio']}x: "
        f"{verdict}  (per CPU second: {res['ratio_ours_to_sb3_cpu']:.2f})"
    )


def print_report(res: dict[str, Any]) -> None:
    m, t = res["machine"], res["settings"]
    print(
        f"machine: {m['cpu_count']} cpu(s), {m['platform']}, Python {m['python']}, "
        f"torch {m['torch']}, stable-baselines3 {m['stable_baselines3']}"
    )
    print(
        f"settings: {t['num_envs']} envs x {t['num_steps']} steps x {t['updates']} "
        f"updates = {t['env_steps_per_run']} env steps per run; {t['update_epochs']} epochs, "
        f"minibatch {t['minibatch_size']}, lr {t['lr']}, 64x64 tanh MLPs"
    )
    print(
        f"runs: {res['repeats']} of each side per task, alternating, each in a fresh process; "
        "only the training call is timed"
    )
    for task, task_res in res["tasks"].items():
        print_task(task, task_res)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    if importlib.util.find_spec("stable_baselines3") is None:
        sys.exit(NOT_INSTALLED)
    log(
        f"{args.repeats} repeat(s) of {args.updates} update(s) per side and task; "
        f"SB3 on {args.sb3_threads} torch thread(s)"
    )
    try:
        res = benchmark(args)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_report(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
