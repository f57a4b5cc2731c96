"""``harness train`` and ``scripts/run_training.py`` (``train_main``): one command that runs the
training stages of a config (BC, mixed or PPO) and reports each stage's gate."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cli.common import Groups, OneLineParser, emit, non_negative, positive, run
from harness.errors import EXIT_OK, EXIT_ROLLED_BACK, HarnessError
from harness.formatting import display

if TYPE_CHECKING:
    from harness.training.distributed import World
    from harness.training.facade import BCResult, PPOResult, TrainingHarness

TRAIN_DESCRIPTION = (
    "Run the training stages of a config. --mode bc trains behaviour cloning on the dataset's "
    "accepted captures (after verifying their checksums), applies the gate (hold-out accuracy >= "
    "bc.accuracy_threshold and above the majority-action or mean-action baseline), then promotes the checkpoint "
    "or rolls back. --mode mixed then fine-tunes the BC policy with PPO, the BC loss weighted by "
    "a coefficient annealed from anneal.bc_coef_start to 0 (anneal.schedule), and applies the "
    "regression gate: the fine-tuned policy's mean return on seeded evaluation episodes may not "
    "fall below the BC policy's by more than anneal.regression_tolerance. --mode ppo trains PPO "
    "from scratch and gates it against the store's promoted checkpoint, if any. Each stage "
    "appends its record to <log dir>/anneal_results.json."
)
TRAIN_EPILOG = (
    "exit codes: 0 every gate passed; 1 the dataset failed its integrity check (nothing "
    "trained); 2 bad arguments or input, or outputs that cannot be written (one line on "
    "stderr; the stage it stopped leaves the store and the run log as they were); 3 a gate "
    'failed and the run rolled back (promoted checkpoint unchanged, "rolled_back": true logged); '
    "70 an unexpected error, a bug (one line on stderr naming the file in the log folder that "
    "holds its traceback). Under torchrun (docs/distributed.md) the processes train "
    "data-parallel, rank 0 alone verifies, gates, promotes and logs, and every rank exits with "
    "the same code (torchrun itself exits 1 when it is not 0)"
)
MODES = ("bc", "ppo", "mixed")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``harness train``, which ``scripts/run_training.py`` shares."""
    p.add_argument("config", metavar="CONFIG", help="training config (YAML) or an overlay of it")
    p.add_argument(
        "--mode",
        required=True,
        choices=MODES,
        help="bc: behaviour cloning and its gate; mixed: BC, then PPO from the BC checkpoint "
        "with the BC loss annealed away, and the regression gate; ppo: PPO from scratch",
    )
    p.add_argument(
        "--epochs",
        type=positive,
        metavar="N",
        help="epochs of the last stage: BC epochs with --mode bc, PPO epochs with ppo and mixed "
        "(default: the config's)",
    )
    p.add_argument(
        "--ppo-log",
        metavar="FILE",
        help="write a JSON Lines log with one line per PPO update (ppo and mixed); replaced "
        "whole at the end of the stage; never the config or a dataset's manifest, sheet or "
        "captures folder",
    )
    p.add_argument(
        "--log-dir",
        metavar="DIR",
        help="folder of anneal_results.json and of rejected checkpoints "
        "(default: the config's output.log_dir)",
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files of each stage into the log folder "
        "(events.out.tfevents.bc, events.out.tfevents.ppo), as output.tensorboard: true does",
    )
    p.add_argument("--seed", type=non_negative, metavar="S", help="instead of the config's seed")
    p.add_argument(
        "--run",
        "--run-name",
        dest="run",
        metavar="NAME",
        help="run name in the records (default: CONFIG's stem); under torchrun write "
        "--run-name, as torchrun takes --run for an abbreviation of its own options",
    )
    p.add_argument(
        "--unverified",
        action="store_true",
        help="train without verifying the captures' checksums first (logged as verified: false)",
    )
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    if args.ppo_log and args.mode == "bc":
        raise HarnessError("--ppo-log is for --mode ppo and mixed; --mode bc runs no PPO")
    overrides: dict[str, Any] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.epochs is not None:
        overrides["bc.epochs" if args.mode == "bc" else "ppo.epochs"] = args.epochs
    if args.log_dir:
        overrides["output.log_dir"] = Path(args.log_dir).absolute()
    if args.tensorboard:
        overrides["output.tensorboard"] = True

    # Imported here, not at the top: the training stages bring in torch (~1.7 s), which no
    # other command may pay for.
    from harness.training.facade import TrainingHarness

    harness = TrainingHarness(
        args.config, overrides=overrides, verify=not args.unverified, run=args.run
    )
    # From here on, an unexpected error's traceback goes to the run's own log folder.
    args.traceback_dir = harness.config.output.log_dir
    _refuse_input_outputs(harness, args.ppo_log)
    from harness.training import distributed

    # Under torchrun (docs/distributed.md): bad input fails here, before the process group,
    # on every rank alike; past it, rank 0's outcome is every rank's.
    world = distributed.launched()
    if args.mode != "bc":
        distributed.check_num_envs(harness.config, world)
    with distributed.launch(harness.config.training.device, world) as world, _quiet(world):
        try:
            code = _train(args, harness, world)
        except distributed.PeerFailed as exc:  # rank 0 printed its line
            return exc.exit_code
        return distributed.agree(code)  # the ranks leave together, with one code


@contextlib.contextmanager
def _quiet(world: World) -> Iterator[None]:
    """Rank 0 reports for the job; the other ranks' report lines would repeat it."""
    if world.writer:
        yield
        return
    with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):
        yield


def _train(args: argparse.Namespace, harness: TrainingHarness, world: World) -> int:
    """Run the mode's stages and report them; the exit code."""
    if world.distributed:
        emit(f"data-parallel: {world.size} processes (torchrun), rank 0 reporting")
    if args.mode == "bc":
        results: list[BCResult | PPOResult] = [harness.run_bc_training()]
    elif args.mode == "mixed":
        mixed = harness.run_mixed_training(args.ppo_log)
        results = [mixed.bc] if mixed.ppo is None else [mixed.bc, mixed.ppo]
    else:
        results = [harness.run_ppo_training(args.ppo_log)]
    for result in results:
        (_report_bc if result.record["mode"] == "bc" else _report_ppo)(result, harness)
    emit(f"log: {display(results[-1].log)}")
    if harness.config.output.tensorboard:
        emit(f"tensorboard: events in {display(harness.config.output.log_dir)}")
    failed = next((r for r in results if r.rolled_back), None)
    if failed is not None:
        print(
            f"harness: {failed.record['mode']} gate failed, run rolled back "
            f"(exit {EXIT_ROLLED_BACK}): {failed.reasons[0]}",
            file=sys.stderr,
        )
        return EXIT_ROLLED_BACK
    return EXIT_OK


def _refuse_input_outputs(harness: TrainingHarness, ppo_log: str | None) -> None:
    """No file the run writes may be an input: the config, or its dataset's manifest, checksum
    sheet or captures (the run log and the store would land in the captures folder)."""
    from harness.datasets.inputs import inputs_of, refuse_overwrite
    from harness.training.runlog import log_path

    cfg = harness.config
    own = inputs_of(cfg.dataset.manifest, cfg.dataset.checksums)
    config = {cfg.source: "is the run's config"} if cfg.source is not None else {}
    outputs = [
        (log_path(cfg.output.log_dir), "the run log"),
        (cfg.output.checkpoint_dir / "promoted.json", "the checkpoint store"),
    ]
    if ppo_log:
        outputs.append((Path(ppo_log), "the PPO log"))
    for path, what in outputs:
        refuse_overwrite(path, what, own, also=config)


def _report_bc(r: BCResult, harness: TrainingHarness) -> None:
    hold, train = r.holdout_size, r.train_size
    emit(
        f"bc {r.record['dataset']}: hold-out accuracy {r.accuracy:.4f} on {hold['steps']} steps "
        f"of {hold['episodes']} episodes (trained on {train['steps']} steps of "
        f"{train['episodes']} episodes); threshold {r.threshold:g}, "
        f"{r.baseline_rule.replace('_', '-')} baseline {r.baseline:.4f}"
        + ("" if harness.verify else "; captures NOT verified (--unverified)")
    )
    _report_gate("bc", "gate", r)


def _report_ppo(r: PPOResult, harness: TrainingHarness) -> None:
    rec = r.record
    start = f"from {rec['init_checkpoint']}" if rec["init_checkpoint"] else "from scratch"
    anneal = (
        f", BC coefficient {r.updates[0].bc_coef:g} -> {r.updates[-1].bc_coef_end:g} "
        f"({rec['schedule']})"
        if rec["bc_coef_start"] is not None
        else ""
    )
    loss = "not finite" if r.loss_total is None else f"{r.loss_total:.4f}"
    emit(
        f"ppo {rec['dataset']}: {rec['updates']} update(s) {start}, {rec['env_steps']} env "
        f"steps at {rec['steps_per_second']:.0f}/s{anneal}; last loss_total {loss}"
    )
    baseline = (
        f"; baseline {r.baseline_checkpoint} {r.baseline_mean_return:.1f}, tolerance "
        f"{rec['regression_tolerance']:g}"
        if r.baseline_checkpoint
        else "; no promoted checkpoint to compare with"
    )
    emit(
        f"ppo: mean return {r.mean_return:.1f} over {rec['eval_episodes']} seeded evaluation "
        f"episodes{baseline}"
    )
    _report_gate("ppo", "regression gate", r)
    if r.ppo_log:
        emit(f"ppo log: {display(r.ppo_log)}")


def _report_gate(stage: str, gate: str, r: BCResult | PPOResult) -> None:
    """A stage's gate: the promoted checkpoint, or why it failed and what the rollback kept."""
    if r.passed:
        emit(f"{stage}: gate passed; promoted {r.checkpoint_id} ({display(r.checkpoint)})")
        return
    emit(f"{stage}: {gate} FAILED: {'; '.join(r.reasons)}")
    kept = (
        f"promoted {r.promoted_checkpoint} unchanged"
        if r.promoted_checkpoint
        else "nothing promoted"
    )
    emit(f"{stage}: rolled back ({kept}); failed checkpoint kept at {display(r.checkpoint)}")


def register(groups: Groups) -> None:
    """Add ``train``, a command without sub-commands."""
    p = groups.add_parser(
        "train",
        help="run a config's training: BC, mixed (BC then PPO, BC loss annealed) or PPO",
        description=TRAIN_DESCRIPTION,
        epilog=TRAIN_EPILOG,
    )
    add_train_arguments(p)


def train_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``scripts/run_training.py``: ``harness train`` as a command of its own."""
    parser = OneLineParser(prog=prog, description=TRAIN_DESCRIPTION, epilog=TRAIN_EPILOG)
    add_train_arguments(parser)
    return run(parser.parse_args(argv))
