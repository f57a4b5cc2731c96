"""Benchmark: data-parallel PPO and BC under torchrun, 2 processes against 1, in the same run.

What it measures
    * PPO: environment steps per second of ``harness.training.ppo.train`` on CartPole-v1 as the
      harness builds it (the ``ppo`` section of ``configs/examples/poc_hybrid.yaml``), with
      ``--envs-per-rank`` environments on every process (default 16: enough to keep a core
      busy) and minibatches scaled with the world size, so that each process does the single
      process's work per update and the job does twice as much (weak scaling).
    * BC: training frames per second of ``harness.training.bc.train`` on idle_v1's training
      split, the config's global batch of 256 shared by the processes (strong scaling: the job
      does the single process's work).

    The scaling efficiency is (throughput with 2 processes) / (2 x throughput with 1). The goal
    is at least 0.8 for PPO.

    Each measurement is a fresh job: ``python bench_ddp.py --worker ...`` for 1 process,
    ``python -m torch.distributed.run --standalone --nproc-per-node=2 bench_ddp.py --worker ...``
    for 2; they alternate (1, 2, 1, 2, ...) so that a drift of the machine's speed affects both.
    A worker times the training call only, and profiles it: the time rank 0 spends in the
    collectives (the gradient all-reduce, the gathers of episode returns and frame layouts;
    waiting there for the slower rank included), collecting rollouts, and the rest (the update's
    forward and backward passes, Adam). The job's start (torchrun, imports, the process group,
    the environments) is its wall-clock minus the training.

How to run
    . .venv/bin/activate
    python benchmarks/bench_ddp.py                       # both tasks, 3 repeats
    python benchmarks/bench_ddp.py --task ppo --repeats 1 --updates 2   # smoke run
    python benchmarks/bench_ddp.py --json

Progress goes to stderr; the results go to stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.config import Config
    from harness.training.distributed import World

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BASE = REPO / "configs" / "examples" / "poc_hybrid.yaml"
TASKS = ("ppo", "bc")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Data-parallel PPO and BC under torchrun: 2 processes against 1."
    )
    parser.add_argument("--task", choices=TASKS, action="append", help="default: both")
    parser.add_argument("--repeats", type=int, default=3, help="timed jobs of each size")
    parser.add_argument("--updates", type=int, default=5, help="PPO updates per job")
    parser.add_argument("--envs-per-rank", type=int, default=16, help="PPO environments a rank")
    parser.add_argument("--bc-epochs", type=int, default=30, help="BC epochs per job")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--worker", choices=TASKS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- the worker: one process of a job ----------------------------------------------------------


class Profile:
    """Seconds spent in the wrapped functions, by phase (this process's)."""

    def __init__(self) -> None:
        self.seconds = {"collectives": 0.0, "rollout": 0.0}

    def wrap(self, owner: object, name: str, phase: str) -> None:
        inner = getattr(owner, name)

        def timed(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - started

        setattr(owner, name, timed)


def worker(args: argparse.Namespace) -> None:
    from harness.config import load_config
    from harness.training import bc, distributed, ppo, rollout

    profile = Profile()
    profile.wrap(ppo, "reduce_gradients", "collectives")
    profile.wrap(bc, "reduce_gradients", "collectives")
    profile.wrap(rollout, "gather", "collectives")
    profile.wrap(rollout.RolloutCollector, "collect", "rollout")
    cfg = load_config(BASE)
    with distributed.launch("cpu") as world:
        run = _ppo if args.worker == "ppo" else _bc
        units, seconds = run(cfg, args, world)
        if world.writer:
            other = seconds - sum(profile.seconds.values())
            print(
                json.dumps(
                    {
                        "world_size": world.size,
                        "units": units,
                        "seconds": seconds,
                        "per_second": units / seconds,
                        "profile": {**profile.seconds, "update_and_rest": other},
                    }
                )
            )


def _ppo(cfg: Config, args: argparse.Namespace, world: World) -> tuple[int, float]:
    from harness.training.policy import MLPPolicy, PolicySpec
    from harness.training.ppo import ActorCritic, train
    from harness.training.rollout import make_envs
    from harness.training.seeding import deterministic
    from harness.training.stages import env_policy

    spec: PolicySpec = env_policy(cfg)[0]
    ppo_cfg = replace(
        cfg.ppo,
        epochs=args.updates,
        num_envs=args.envs_per_rank * world.size,
        minibatch_size=cfg.ppo.minibatch_size * world.size,
    )
    with deterministic(cfg.seed) as generator:
        model = ActorCritic(MLPPolicy(spec), ppo_cfg.hidden_sizes)
        envs = make_envs(cfg.env.spec(), args.envs_per_rank)
        _barrier(world)
        started = time.perf_counter()
        history = train(model, envs, ppo_cfg, cfg.seed, generator)
        seconds = time.perf_counter() - started
        envs.close()
    return history[-1].env_steps, seconds


def _bc(cfg: Config, args: argparse.Namespace, world: World) -> tuple[int, float]:
    from harness.datasets.manifest import load_manifest
    from harness.training.bc import load_demonstrations, split_by_episode, train
    from harness.training.policy import MLPPolicy
    from harness.training.seeding import deterministic
    from harness.training.stages import env_policy

    spec, obs_shape, action_shape = env_policy(cfg)
    demos = load_demonstrations(load_manifest(cfg.dataset.manifest), spec, obs_shape, action_shape)
    train_eps, _ = split_by_episode(len(demos.refs), cfg.bc.holdout, cfg.seed)
    x, y = demos.frames(train_eps)
    bc_cfg = replace(cfg.bc, epochs=args.bc_epochs)
    with deterministic(cfg.seed) as generator:
        policy = MLPPolicy(spec)
        _barrier(world)
        started = time.perf_counter()
        train(policy, x, y, bc_cfg, generator)
        seconds = time.perf_counter() - started
    return len(x) * bc_cfg.epochs, seconds


def _barrier(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()  # every rank starts the clock together


# --- the controller: alternate 1 and 2 processes ----------------------------------------------


def job(task: str, nproc: int, args: argparse.Namespace) -> dict:
    """One job of ``nproc`` processes; its worker's figures plus its wall-clock."""
    flags = [
        f"--worker={task}",
        f"--updates={args.updates}",
        f"--envs-per-rank={args.envs_per_rank}",
        f"--bc-epochs={args.bc_epochs}",
    ]
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    started = time.perf_counter()
    done = subprocess.run(
        [*launcher, str(Path(__file__).resolve()), *flags],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{task} x{nproc} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["start_seconds"] = wall - result["seconds"]
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    results: dict[str, dict] = {}
    for task in args.task or TASKS:
        runs: dict[int, list[dict]] = {1: [], 2: []}
        for repeat in range(args.repeats):
            for nproc in (1, 2):
                runs[nproc].append(job(task, nproc, args))
                print(
                    f"{task} x{nproc} #{repeat + 1}: {runs[nproc][-1]['per_second']:.0f}/s",
                    file=sys.stderr,
                )
        results[task] = summarise(runs)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        report(results, args)
    return 0


def summarise(runs: dict[int, list[dict]]) -> dict:
    median = {n: statistics.median(r["per_second"] for r in rs) for n, rs in runs.items()}

    def profile(n: int) -> dict[str, float]:
        keys = runs[n][0]["profile"]
        share = {
            k: statistics.median(r["profile"][k] / r["seconds"] for r in runs[n]) for k in keys
        }
        return {
            **{k: round(v, 3) for k, v in share.items()},
            "start_seconds": round(statistics.median(r["start_seconds"] for r in runs[n]), 2),
        }

    return {
        "per_second_1": round(median[1], 1),
        "per_second_2": round(median[2], 1),
        "efficiency": round(median[2] / (2 * median[1]), 3),
        "profile_1": profile(1),
        "profile_2": profile(2),
    }


def report(results: dict[str, dict], args: argparse.Namespace) -> None:
    units = {"ppo": "env steps/s", "bc": "samples/s"}
    for task, r in results.items():
        print(
            f"{task}: {r['per_second_1']:.0f} {units[task]} x1, {r['per_second_2']:.0f} x2; "
            f"scaling efficiency {r['efficiency']:.2f} (median of {args.repeats})"
        )
        for n in (1, 2):
            p = r[f"profile_{n}"]
            shares = ", ".join(f"{k} {v:.0%}" for k, v in p.items() if k != "start_seconds")
            print(f"  x{n}: share of training time: {shares}; job start {p['start_seconds']} s")


if __name__ == "__main__":
    sys.exit(main())
