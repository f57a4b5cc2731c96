"""The deterministic sections of ``scripts/docs_figures.py``: datasets, BC, learning curves.

Each section runs the real harness (the documented shell commands as subprocesses, or
``TrainingHarness`` in this process) and returns its figures as ``{label: value}``, labelled in
the docs' words. The summaries of PPO logs and seed sweeps are plain functions, tested in
``tests/test_docs_figures.py``. Torch is imported inside the sections that train, so that
importing this module (the tests, ``--help``) stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "examples" / "poc_hybrid.yaml"
FIGURE = REPO / "docs" / "figures" / "learning_curves_cartpole.svg"
SEEDS = range(10)
EPOCHS = 30  # the PPO epochs of "What the BC start buys": 61,440 environment steps
CURVES = (("mixed", "mixed: BC start, BC loss annealed"), ("ppo", "ppo: from scratch"))
TITLE = f"CartPole-v1, idle_v1, seed 0: {EPOCHS} PPO epochs (61,440 env steps)"
ABLATIONS = {
    "anneal.bc_coef_start=0 (BC start, no BC term)": ["anneal.bc_coef_start=0"],
    "anneal.schedule=exponential": ["anneal.schedule=exponential"],
    "ppo.lr=0.003, anneal.bc_coef_start=0": ["ppo.lr=0.003", "anneal.bc_coef_start=0"],
    "ppo.lr=0.003 (with the BC term)": ["ppo.lr=0.003"],
}
# Environment variables that move torch (ATen) and MKL onto other code paths on this CPU, as
# another machine's CPU would; the empty one is the machine as it is.
KERNELS = {
    "native": {},
    "ATEN_CPU_CAPABILITY=default": {"ATEN_CPU_CAPABILITY": "default"},
    "MKL_ENABLE_INSTRUCTIONS=AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
}

Figures = dict[str, str]


class CommandFailed(Exception):
    """A command the figures depend on exited non-zero."""


# --- pure summaries --------------------------------------------------------------------------


def spread(values: Sequence[float], digits: int = 3) -> str:
    """``0.903-0.925 (mean 0.910)``: the range and mean of a seed sweep."""
    return f"{min(values):.{digits}f}-{max(values):.{digits}f} (mean {statistics.mean(values):.{digits}f})"


def returns_by_update(lines: Sequence[Mapping[str, Any]]) -> dict[int, float]:
    """The mean training-episode return of each update in which an episode ended."""
    return {
        line["update"]: line["mean_episode_return"]
        for line in lines
        if line["mean_episode_return"] is not None
    }


def curve_summary(lines: Sequence[Mapping[str, Any]], at: int = 20, last: int = 5) -> Figures:
    """What the docs say of a PPO log: the first return, the one at update ``at``, the last
    ``last`` updates' range and mean, and which updates had no finished episode."""
    returns = returns_by_update(lines)
    if not returns:
        return {"training returns": "no episode ended"}
    first = min(returns)
    tail = [returns[u] for u in range(len(lines) - last + 1, len(lines) + 1) if u in returns]
    values = sorted(set(returns.values()))
    shown = (
        ", ".join(f"{v:g}" for v in values)
        if len(values) <= 3
        else f"{values[0]:.1f}-{values[-1]:.1f}"
    )
    figures = {
        "updates in which an episode ended": f"{len(returns)} of {len(lines)}",
        "training returns (all updates)": shown,
        "first return": f"{returns[first]:.1f} (update {first})",
        f"return at update {at}": f"{returns[at]:.1f}" if at in returns else "no episode ended",
    }
    if tail:
        figures[f"returns over the last {last} updates"] = (
            f"{min(tail):.1f}-{max(tail):.1f} (mean {statistics.mean(tail):.1f}, {len(tail)} with an episode)"
        )
    figures["environment steps"] = f"{lines[-1]['env_steps']:,}"
    return figures


def dips(lines: Sequence[Mapping[str, Any]], full: float = 500.0) -> str:
    """The updates whose training return fell below ``full``: ``none`` or ``489.0 at update 7``."""
    low = {u: r for u, r in returns_by_update(lines).items() if r < full}
    return ", ".join(f"{r:.1f} at update {u}" for u, r in sorted(low.items())) or "none"


# --- running the harness ---------------------------------------------------------------------


def command(args: Sequence[str | os.PathLike[str]], env: Mapping[str, str] | None = None) -> str:
    """Run one command from the repository root, as the docs do; its stdout, or CommandFailed."""
    argv = [sys.executable, *map(str, args)]
    done = subprocess.run(
        argv, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    if done.returncode != 0:
        shown = " ".join(str(a) for a in args)
        raise CommandFailed(f"'{shown}' exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def overlay(out: Path, folder: Path, sets: Sequence[str] = (), dataset: str | None = None) -> Path:
    """``harness config overlay`` of the base config, with its outputs under ``folder``."""
    extra = ["--dataset", dataset] if dataset else []
    outputs = [f"output.log_dir={folder}/logs", f"output.checkpoint_dir={folder}/ckpt"]
    sets_args = [a for s in [*outputs, *sets] for a in ("--set", s)]
    command(["-m", "harness", "config", "overlay", CONFIG, "-o", out, *sets_args, *extra])
    return out


def train(config: Path, mode: str, *args: str | Path, env: Mapping[str, str] | None = None) -> None:
    command(["scripts/run_training.py", config, "--mode", mode, *args], env)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def last_record(folder: Path, mode: str) -> dict[str, Any]:
    """The last ``mode`` record of the run log under ``folder/logs``."""
    records = json.loads((folder / "logs" / "anneal_results.json").read_text(encoding="utf-8"))
    return [r for r in records if r["mode"] == mode][-1]


def machine() -> Figures:
    """Where and from what the figures came: platform, CPU, core count, versions, commit."""
    import torch  # the CPU capability torch dispatches to is part of the machine

    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0].partition(":")[2].strip() if names else cpu
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run(
        [*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    return {
        "platform": platform.platform(),
        "CPU": f"{cpu}, {os.cpu_count()} cores, torch CPU capability {torch.backends.cpu.get_cpu_capability()}",
        "Python": platform.python_version(),
        "torch": f"{torch.__version__} (BLAS: MKL)"
        if torch.backends.mkl.is_available()
        else torch.__version__,
        "numpy, gymnasium": ", ".join(_versions("numpy", "gymnasium")),
        "commit": commit.stdout.strip()
        + (" with uncommitted changes" if dirty.stdout.strip() else ""),
    }


def _versions(*names: str) -> list[str]:
    from importlib.metadata import version

    return [version(name) for name in names]


# --- the sections ----------------------------------------------------------------------------


def dataset_section() -> Figures:
    """The capture table of docs/datasets.md, from ``harness dataset inspect --json``."""
    figures: Figures = {}
    for dataset in ("idle_v1", "preflight"):
        for entry in json.loads(
            command(["-m", "harness", "dataset", "inspect", dataset, "--json"])
        ):
            counts = entry["action_counts"]
            top, share = max(counts, key=counts.get), max(counts.values()) / entry["steps"]
            problems = "; ".join(entry["errors"]) or "no errors"
            noise = f" noise {entry['noise']:g}" if entry["noise"] is not None else ""
            figures[f"{dataset} {entry['entry']}"] = (
                f"{entry['status']}, {entry['demonstrator']}{noise}, "
                f"{entry['episodes']} episodes, {entry['steps']:,} steps, mean return "
                f"{entry['return_mean']:.1f}, action {top} on {share:.0%} of steps, {problems}"
            )
    return figures


def bc_section(out: Path) -> Figures:
    """Hold-out accuracy over seeds 0-9 on idle_v1 and preflight, and the label ceiling."""
    figures: Figures = {}
    for dataset in ("idle_v1", "preflight"):
        results = [bc_run(out / dataset / f"seed{seed}", dataset, seed) for seed in SEEDS]
        accuracies = [r.accuracy for r in results]
        seed0 = results[0]
        figures |= {
            f"{dataset} hold-out accuracy, seed 0": f"{seed0.accuracy:.4f}",
            f"{dataset} hold-out, seed 0": f"{seed0.holdout_size['episodes']} episodes, {seed0.holdout_size['steps']:,} frames",
            f"{dataset} majority-class baseline, seed 0": f"{seed0.baseline:.4f}",
            f"{dataset} BC checkpoint, seed 0": seed0.checkpoint_id,
            f"{dataset} hold-out accuracy over seeds 0-9": spread(accuracies),
            f"{dataset} seeds passing the 0.8 gate": f"{sum(r.passed for r in results)} of {len(results)}",
            f"{dataset} seeds reaching 0.95": f"{sum(a >= 0.95 for a in accuracies)} of {len(results)}",
        }
        figures |= ceiling(dataset, seed0)
    return figures


def bc_run(folder: Path, dataset: str, seed: int) -> Any:
    """``TrainingHarness(...).run_bc_training()`` on the base config, for one dataset and seed."""
    from harness import TrainingHarness  # imports torch on first training
    from harness.datasets.registry import resolve

    ref = resolve(dataset)
    overrides = {
        "seed": seed,
        "dataset.manifest": ref.manifest,
        "dataset.checksums": ref.checksums,
        "output.log_dir": folder / "logs",
        "output.checkpoint_dir": folder / "ckpt",
    }
    return TrainingHarness(CONFIG, overrides=overrides, progress=False).run_bc_training()


def ceiling(dataset: str, result: Any) -> Figures:
    """How often the labels, and the trained policy, agree with the noise-free controller."""
    import numpy as np

    from harness.datasets.demonstrators import cartpole_heuristic
    from harness.datasets.manifest import load_manifest
    from harness.datasets.registry import resolve
    from harness.training.bc import load_demonstrations
    from harness.training.checkpoints import load_checkpoint
    from harness.training.policy import PolicySpec, load_policy

    checkpoint = load_checkpoint(result.checkpoint)
    spec = PolicySpec.from_json(checkpoint.meta["policy"])
    policy = load_policy(spec, checkpoint.file("policy.pt").read_bytes())
    demos = load_demonstrations(load_manifest(resolve(dataset).manifest), spec)
    held_out = set(result.record["holdout"]["names"])
    every = range(len(demos.refs))
    obs, labels = demos.frames([i for i in every if demos.refs[i].name in held_out])
    all_obs, all_labels = demos.frames(every)
    controller = np.array([cartpole_heuristic(o) for o in obs])
    all_controller = np.array([cartpole_heuristic(o) for o in all_obs])
    return {
        f"{dataset} labels that differ from the noise-free controller, all accepted frames": f"{np.mean(all_labels != all_controller):.1%}",
        f"{dataset} labels that agree with the noise-free controller, hold-out, seed 0 (the ceiling)": f"{np.mean(labels == controller):.1%}",
        f"{dataset} policy agrees with the noise-free controller, hold-out, seed 0": f"{np.mean(policy.act(obs) == controller):.1%}",
    }


def curves_section(out: Path, svg: Path) -> Figures:
    """ "What the BC start buys": the docs' commands, then the plot, then their figures."""
    figures: Figures = {}
    logs = []
    for mode, label in CURVES:
        config = overlay(out / f"{mode}.yaml", out / mode)
        train(config, mode, "--epochs", str(EPOCHS), "--ppo-log", out / f"{mode}.jsonl")
        logs.append(f"{out / mode}.jsonl={label}")
    svg.parent.mkdir(parents=True, exist_ok=True)
    command(["scripts/plot_ppo_logs.py", *logs, "-o", svg, "--ymax", "500", "--title", TITLE])
    for mode, _ in CURVES:
        ppo = last_record(out / mode, "ppo")
        figures |= {
            f"{mode} {k}": v for k, v in curve_summary(read_jsonl(out / f"{mode}.jsonl")).items()
        }
        figures[f"{mode} greedy evaluation ({ppo['eval_episodes']} episodes)"] = (
            f"{ppo['mean_return']:.1f}"
        )
        if ppo["baseline_mean_return"] is not None:
            figures[f"{mode} baseline {ppo['baseline_checkpoint']}"] = (
                f"{ppo['baseline_mean_return']:.1f}"
            )
        outcome = "passed" if ppo["passed"] else "rolled back"
        figures[f"{mode} gate"] = (
            f"{outcome}, {ppo['checkpoint']['id']} {ppo['checkpoint']['status']}"
        )
    bc = last_record(out / "mixed", "bc")
    figures["mixed BC stage"] = f"accuracy {bc['accuracy']:.4f}, {bc['checkpoint']['id']}"
    # The SVG's digest, not its path, so that --compare sees whether the bytes changed.
    figures["learning-curve SVG, sha256"] = hashlib.sha256(svg.read_bytes()).hexdigest()
    return figures


def ablation_section(out: Path) -> Figures:
    """ "What the annealed BC term adds here": mixed runs with the BC term or the rate changed."""
    figures: Figures = {}
    for index, (label, sets) in enumerate(ABLATIONS.items()):
        folder = out / f"variant{index}"
        config = overlay(out / f"variant{index}.yaml", folder, sets)
        log = out / f"variant{index}.jsonl"
        train(config, "mixed", "--epochs", str(EPOCHS), "--ppo-log", log)
        ppo = last_record(folder, "ppo")
        figures[label] = (
            f"training returns below 500: {dips(read_jsonl(log))}; greedy evaluation "
            f"{ppo['mean_return']:.1f}; gate {'passed' if ppo['passed'] else 'rolled back'}"
        )
    return figures


def kernels_section(out: Path) -> Figures:
    """The curves' two runs with torch and MKL forced onto other code paths of this CPU."""
    figures: Figures = {}
    for index, (label, env) in enumerate(KERNELS.items()):
        found = []
        for mode, _ in CURVES:
            folder = out / f"kernel{index}" / mode
            config = overlay(out / f"kernel{index}-{mode}.yaml", folder)
            train(config, mode, "--epochs", str(EPOCHS), env=env)
            ppo = last_record(folder, "ppo")
            found.append(f"{mode} {ppo['mean_return']:.1f} ({ppo['checkpoint']['id']})")
        bc = last_record(out / f"kernel{index}" / "mixed", "bc")
        found.insert(0, f"BC {bc['accuracy']:.4f} ({bc['checkpoint']['id']})")
        figures[label] = "; ".join(found)
    return figures
