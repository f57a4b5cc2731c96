"""The wall-clock sections of ``scripts/docs_figures.py``: how long the documented commands and
the trainer's inner steps take on this machine.

``timings`` times the commands of docs/training.md ("The command"), each a fresh process;
``internals`` times the steps behind the design choices the docs explain (no ``torch.optim``,
a NumPy actor for the rollout, ``_foreach`` Adam and clipping, one torch thread); ``startup``
times what docs/acceptance.md ("Speed") took off every rehearsal process. Every figure is the
median of ``repeats`` runs, and varies from run to run with the machine's load.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import docs_figures_training as training

Figures = dict[str, str]
# What constructing the first torch.optim optimiser costs in a fresh process, torch imported.
OPTIM_PROBE = (
    "import time, torch\n"
    "params = [torch.zeros(1, requires_grad=True)]\n"
    "t = time.perf_counter(); torch.optim.Adam(params); print(time.perf_counter() - t)\n"
)


# Checking every JSON Schema of the project against the metaschema, as a fresh process would.
METASCHEMA_PROBE = (
    "import json, pathlib, time\n"
    "from jsonschema import Draft202012Validator\n"
    "t = time.perf_counter()\n"
    "for p in sorted(pathlib.Path('harness/schemas').glob('*.json')):\n"
    "    Draft202012Validator.check_schema(json.loads(p.read_text()))\n"
    "print(time.perf_counter() - t)\n"
)


def wall(args: list[str | Path], repeats: int) -> float:
    """Median wall-clock seconds of a command run from the repository root."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        training.command(args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cpu(args: list[str], repeats: int, env: dict[str, str]) -> float:
    """Median CPU seconds (user + system, every thread) of a fresh ``python`` process run in
    the environment ``env``."""
    times = []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, *args], check=True, env=env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times)


def per_call(fn: Callable[[], object], number: int, repeats: int) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` batches of ``number`` calls."""
    return statistics.median(t / number for t in timeit.repeat(fn, number=number, repeat=repeats))


def timings_section(out: Path, repeats: int) -> Figures:
    """``import torch``, a ``--mode bc`` run and a ``--mode mixed --epochs 1`` run, and their parts."""
    bc_config = training.overlay(out / "bc.yaml", out / "bc")
    mixed_config = training.overlay(out / "mixed.yaml", out / "mixed")
    run_bc = ["scripts/run_training.py", bc_config, "--mode", "bc"]
    run_mixed = ["scripts/run_training.py", mixed_config, "--mode", "mixed", "--epochs", "1"]
    figures = {
        "python -c 'import torch'": f"{wall(['-c', 'import torch'], repeats):.2f} s",
        "run_training.py --mode bc (idle_v1)": f"{wall(run_bc, repeats):.2f} s",
        "run_training.py --mode mixed --epochs 1": f"{wall(run_mixed, repeats):.2f} s",
    }
    bc = training.last_record(out / "bc", "bc")
    ppo = training.last_record(out / "mixed", "ppo")
    training_s = ppo["env_steps"] / ppo["steps_per_second"]
    figures |= {
        "BC stage, 30 epochs (duration_s of the last bc record)": f"{bc['duration_s']:.2f} s",
        f"one PPO epoch ({ppo['env_steps']:,} steps, last mixed run)": f"{training_s:.2f} s",
        "PPO stage apart from its epoch: the two evaluations, the checkpoint": f"{ppo['duration_s'] - training_s:.2f} s",
        "one greedy evaluation, 10 episodes of a 500-return policy (BC, seed 0)": f"{evaluation_seconds(out / 'bc', repeats):.2f} s",
    }
    return figures


def evaluation_seconds(folder: Path, repeats: int) -> float:
    """Median seconds of the regression gate's evaluation of the store's promoted policy."""
    from harness.training.checkpoints import CheckpointStore
    from harness.training.evaluation import EVAL_SEED_OFFSET, evaluate
    from harness.training.policy import PolicySpec, load_policy

    checkpoint = CheckpointStore(folder / "ckpt").promoted()
    assert checkpoint is not None, "the bc runs promoted a checkpoint"
    spec = PolicySpec.from_json(checkpoint.meta["policy"])
    policy = load_policy(spec, checkpoint.file("policy.pt").read_bytes())
    return per_call(lambda: evaluate(policy, "CartPole-v1", 10, EVAL_SEED_OFFSET), 1, repeats)


def internals_section(repeats: int) -> Figures:
    """The costs behind docs/training.md's design notes, measured in and out of this process."""
    probe = [subprocess.run([sys.executable, "-c", OPTIM_PROBE], capture_output=True, text=True, check=True) for _ in range(repeats)]  # fmt: skip
    optim_s = statistics.median(float(p.stdout) for p in probe)
    from harness.training.seeding import deterministic

    with deterministic(0):
        figures = {
            "first torch.optim.Adam(...) in a fresh process (imports torch._dynamo)": f"{optim_s:.2f} s"
        }
        figures |= actor_costs(repeats)
        figures |= update_costs(repeats)
    return figures | thread_costs(repeats)


def thread_costs(repeats: int) -> Figures:
    """30 BC epochs on idle_v1's training frames on one torch thread and on two: why training
    runs on one (``harness.training.seeding``)."""
    from harness.config import load_config
    from harness.datasets.manifest import load_manifest
    from harness.training.bc import load_demonstrations, split_by_episode, train
    from harness.training.policy import MLPPolicy, PolicySpec
    from harness.training.seeding import deterministic

    cfg = load_config(training.CONFIG)
    demos = load_demonstrations(load_manifest(cfg.dataset.manifest), 4, 2)
    x, y = demos.frames(split_by_episode(len(demos.refs), cfg.bc.holdout, cfg.seed)[0])

    def epochs(threads: int) -> Callable[[], object]:
        def run() -> object:
            with deterministic(cfg.seed, threads) as generator:
                return train(
                    MLPPolicy(PolicySpec(4, 2, cfg.bc.hidden_sizes)), x, y, cfg.bc, generator
                )

        return run

    one, two = (per_call(epochs(n), 1, repeats) for n in (1, 2))
    return {"30 BC epochs on idle_v1: one torch thread / two": f"{one:.2f} s / {two:.2f} s"}


def startup_section(repeats: int) -> Figures:
    """What a rehearsal process no longer pays (docs/acceptance.md, Speed), each measured as the
    difference between two fresh processes."""
    bare = wall(["-c", "pass"], repeats)
    torch_exit = wall(["-c", "import torch"], repeats)
    torch_frozen = wall(["-c", "import torch, gc; gc.freeze()"], repeats)
    # CPU, not wall-clock: OpenBLAS's threads spin on the other cores.
    no_blas_env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    blas = cpu(["-c", "import numpy"], repeats, no_blas_env) - cpu(
        ["-c", "import numpy"], repeats, {**no_blas_env, "OPENBLAS_NUM_THREADS": "1"}
    )
    probe = [subprocess.run([sys.executable, "-c", METASCHEMA_PROBE], capture_output=True, text=True, check=True, cwd=training.REPO) for _ in range(repeats)]  # fmt: skip
    return {
        "import hypothesis (what its pytest plugin's terminal summary loads)": f"{wall(['-c', 'import hypothesis'], repeats) - bare:.2f} s",
        "checking every harness/schemas file against the metaschema": f"{statistics.median(float(p.stdout) for p in probe):.2f} s",
        "exit of a process that imported torch: its garbage collections (without gc.freeze)": f"{torch_exit - torch_frozen:.2f} s",
        "CPU of numpy's OpenBLAS threads after its import (without OPENBLAS_NUM_THREADS=1)": f"{blas:.2f} s",
    }


def actor_costs(repeats: int) -> Figures:
    """One rollout step's forward pass (64x64 actor, 8 observations): NumPy copy against nn.Module."""
    import numpy as np
    import torch

    from harness.training.policy import MLPPolicy, PolicySpec
    from harness.training.rollout import NumpyActor

    policy = MLPPolicy(PolicySpec(4, 2, (64, 64)))
    obs = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    fast = NumpyActor(policy)

    def through_module() -> object:
        with torch.no_grad():
            return policy(torch.as_tensor(obs))

    numpy_s = per_call(lambda: fast.logits(obs), 2000, max(repeats, 5))
    module_s = per_call(through_module, 2000, max(repeats, 5))
    return {
        "actor forward on 8 observations: NumPy copy / nn.Module": f"{numpy_s * 1e6:.0f} us / {module_s * 1e6:.0f} us"
    }


def update_costs(repeats: int) -> Figures:
    """A PPO minibatch step of 256 frames, and its Adam step and clipping, ours against a loop
    over the parameter tensors and ``torch.nn.utils.clip_grad_norm_``."""
    import torch

    from harness.config import load_config
    from harness.training.optim import Adam, clip_grad_norm
    from harness.training.policy import MLPPolicy, PolicySpec
    from harness.training.ppo import ActorCritic, ppo_loss

    cfg = load_config(training.CONFIG).ppo
    model = ActorCritic(MLPPolicy(PolicySpec(4, 2, (64, 64))), cfg.hidden_sizes)
    params = list(model.parameters())
    optimiser = Adam(params, lr=cfg.lr, eps=1e-5)
    n = cfg.minibatch_size
    obs, actions = torch.randn(n, 4), torch.randint(2, (n,))
    old_logp, advantages, returns = torch.full((n,), -0.69), torch.randn(n), torch.randn(n)

    def minibatch_step() -> None:
        terms = ppo_loss(
            model.actor(obs), actions, old_logp, advantages, model.value(obs), returns, cfg
        )
        optimiser.zero_grad()
        terms.total.backward()
        clip_grad_norm(params, cfg.max_grad_norm)
        optimiser.step()

    step_s = per_call(minibatch_step, 200, max(repeats, 5))
    loop = LoopAdam(params, cfg.lr)
    return {
        "PPO minibatch step, 256 frames (forward, loss, backward, clipping, Adam)": f"{step_s * 1e3:.2f} ms",
        f"Adam step over the {len(params)} parameter tensors: _foreach / Python loop": f"{per_call(optimiser.step, 500, max(repeats, 5)) * 1e3:.2f} ms / {per_call(loop.step, 500, max(repeats, 5)) * 1e3:.2f} ms",
        "gradient clipping: ours / torch.nn.utils.clip_grad_norm_": f"{per_call(lambda: clip_grad_norm(params, 0.5), 500, max(repeats, 5)) * 1e3:.2f} ms / {per_call(lambda: torch.nn.utils.clip_grad_norm_(params, 0.5), 500, max(repeats, 5)) * 1e3:.2f} ms",
    }


class LoopAdam:
    """``harness.training.optim.Adam``'s rule with a Python loop over the tensors: the cost
    its ``_foreach`` ops avoid."""

    def __init__(self, params: list, lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> None:
        import torch

        self.params, self.lr, (self.beta1, self.beta2), self.steps = params, lr, betas, 0
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]

    def step(self) -> None:
        import torch

        self.steps += 1
        correction1 = 1 - self.beta1**self.steps
        correction2_sqrt = (1 - self.beta2**self.steps) ** 0.5
        with torch.no_grad():
            for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
                m.lerp_(p.grad, 1 - self.beta1)
                v.mul_(self.beta2).addcmul_(p.grad, p.grad, value=1 - self.beta2)
                denominator = (v.sqrt() / correction2_sqrt).add_(1e-5)
                p.addcdiv_(m, denominator, value=-self.lr / correction1)
