"""``harness capture``: record a capture file with a scripted demonstrator, and check the quality
of loose capture files."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.common import (
    ENV_KWARGS_HELP,
    Groups,
    emit,
    emit_quality,
    non_negative,
    positive,
    probability,
)
from harness.errors import EXIT_OK, EXIT_PROBLEMS, HarnessError

# The library is imported inside each command: every run of ``harness``, ``--help`` included,
# builds all the groups' parsers and must not pay for numpy, h5py or gymnasium.


def cmd_capture_record(args: argparse.Namespace) -> int:
    from harness.datasets.inputs import refuse_overwrite
    from harness.datasets.recording import record_capture
    from harness.envs import EnvSpec

    out = Path(args.output)
    # Recording into a captures folder is how a dataset grows; over a reviewed capture, never.
    refuse_overwrite(out, "a new capture", into_captures=True)
    if out.is_dir():
        raise HarnessError(f"{out}: is a folder; give the capture's file name (.h5)")
    if out.exists() and not args.force:
        raise HarnessError(f"{out}: already exists; pass --force to overwrite it")
    env = EnvSpec.parse(args.env, args.env_kwargs)
    meta = record_capture(
        out, env, args.demonstrator, noise=args.noise, episodes=args.episodes, seed=args.seed
    )
    emit(
        f"{out}: {meta.episodes} episodes, {meta.steps} steps of {args.demonstrator} "
        f"(noise {args.noise}) in {meta.env_spec()}, seed {meta.seed}"
    )
    return EXIT_OK


def cmd_capture_inspect(args: argparse.Namespace) -> int:
    from harness.datasets.quality import inspect_capture

    for path in args.files:  # a file that is not there is bad input, not a faulty capture
        if not path.is_file():
            why = "is not a regular file" if path.exists() else "no such file"
            raise HarnessError(f"{path}: {why}; give capture files (.h5)")
    reports = [inspect_capture(p) for p in args.files]
    emit_quality(reports, args.json, title=None)
    return EXIT_OK if all(r.ok for r in reports) else EXIT_PROBLEMS


def register(groups: Groups) -> None:
    """Add ``capture record`` and ``capture inspect``."""
    capture = groups.add_parser(
        "capture",
        help="record and inspect capture files (HDF5)",
        description="Record and inspect capture files.",
    )
    commands = capture.add_subparsers(dest="command", required=True)
    _register_record(commands)

    p = commands.add_parser(
        "inspect",
        help="quality check of capture files",
        description="Quality check of loose capture files (exit 1 if any is malformed).",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(func=cmd_capture_inspect)


def _register_record(commands: Groups) -> None:
    p = commands.add_parser(
        "record",
        help="record one capture with a scripted demonstrator",
        description=(
            "Run a demonstrator in a Gymnasium environment (discrete or continuous actions) and "
            "write one HDF5 capture. --noise is the probability that a step's action is drawn "
            "uniformly from the action space instead of the demonstrator's, modelling a human "
            "demonstrator's slips. The same arguments give a byte-identical file."
        ),
    )
    p.add_argument(
        "--env",
        required=True,
        help="Gymnasium environment id, e.g. CartPole-v1, or module:EnvId (Gymnasium imports "
        "module, which registers EnvId)",
    )
    p.add_argument("--env-kwargs", metavar="JSON", help=ENV_KWARGS_HELP)
    p.add_argument(
        "--demonstrator",
        default="heuristic",
        help="heuristic (CartPole-v1, LunarLander-v3), idle (no input) or random (any env), or "
        "module:callable, called as callable(unwrapped_env, observation) -> action; "
        "default %(default)s",
    )
    p.add_argument(
        "--noise",
        type=probability,
        default=0.0,
        help="probability of a random action at each step, in [0, 1]; default %(default)s",
    )
    p.add_argument("--episodes", type=positive, required=True, help="number of episodes")
    p.add_argument(
        "--seed", type=non_negative, required=True, help="seed of the environment and the noise"
    )
    p.add_argument("-o", "--output", required=True, help="capture file to write (.h5)")
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing file (never a capture a manifest names, nor a manifest)",
    )
    p.set_defaults(func=cmd_capture_record)
