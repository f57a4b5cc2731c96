"""``harness capture``: record a capture file with a scripted demonstrator, check the quality
of loose capture files, import demonstrations from Minari, D4RL-style and robomimic files, and
export captures as a Minari dataset."""

from __future__ import annotations

import argparse
import os
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
    from harness.datasets.recording import record_capture
    from harness.envs import EnvSpec

    out = Path(args.output)
    _output_capture(out, args.force, "a new capture")
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


def _output_capture(out: Path, force: bool, what: str) -> None:
    from harness.datasets.inputs import refuse_overwrite

    # Writing into a captures folder is how a dataset grows; over a reviewed capture, never.
    refuse_overwrite(out, what, into_captures=True)
    if out.is_dir():
        raise HarnessError(f"{out}: is a folder; give the capture's file name (.h5)")
    if out.exists() and not force:
        raise HarnessError(f"{out}: already exists; pass --force to overwrite it")


def _import_env(args: argparse.Namespace, source_env: object, src: str) -> object:
    from harness.envs import EnvSpec

    if args.env:
        return EnvSpec.parse(args.env, args.env_kwargs)
    if source_env is None:
        raise HarnessError(
            f"{src}: the {args.format} source names no Gymnasium environment; give --env"
        )
    if args.env_kwargs:
        return EnvSpec.parse(source_env.id, args.env_kwargs)  # type: ignore[attr-defined]
    return source_env


def cmd_capture_import(args: argparse.Namespace) -> int:
    from harness.datasets.inputs import Target
    from harness.datasets.interchange import open_source
    from harness.datasets.interchange.episodes import parse_episodes
    from harness.datasets.interchange.writer import import_source

    out = Path(args.output)
    _output_capture(out, args.force, "an imported capture")
    wanted = parse_episodes(args.episodes) if args.episodes else None
    keys = [k.strip() for k in args.obs_keys.split(",")] if args.obs_keys is not None else None
    source = open_source(args.format, args.source, keys)
    try:
        for read in (source.file, *source.also_read):
            if Target.of(out).is_(Path(os.path.realpath(read)), _inode(read)):
                raise HarnessError(
                    f"{out}: is a source file; give another output (nothing written)"
                )
        env = _import_env(args, source.env, args.source)
        done = import_source(source, out, env, wanted)  # type: ignore[arg-type]
    finally:
        source.close()
    emit(
        f"{out}: {done.meta.episodes} episodes, {done.meta.steps} steps imported from "
        f"{args.format} {source.file} (episodes {done.source_episodes}) in {env}"
    )
    for note in source.notes:
        emit(f"{source.file}: {note}")
    return EXIT_OK


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def cmd_capture_export(args: argparse.Namespace) -> int:
    from harness.datasets.interchange.minari_export import export_minari

    for path in args.files:
        if not path.is_file():
            why = "is not a regular file" if path.exists() else "no such file"
            raise HarnessError(f"{path}: {why}; give capture files (.h5)")
    done = export_minari(args.files, args.output)
    emit(
        f"{done.folder}: Minari dataset '{done.dataset_id}', {done.episodes} episodes, "
        f"{done.steps} steps (open it with MINARI_DATASETS_PATH={done.folder.parent.resolve()})"
    )
    return EXIT_OK


def register(groups: Groups) -> None:
    """Add ``capture record``, ``inspect``, ``import`` and ``export``."""
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
    _register_import(commands)
    _register_export(commands)


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


IMPORT_DESCRIPTION = """\
Import demonstrations kept in another library's format as one capture, episode by episode.
minari: a Minari dataset folder (data/main_data.hdf5 and data/metadata.json); its env_spec
gives the environment unless --env is given. d4rl: one HDF5 file with flat observations,
actions, rewards, terminals and timeouts, split into episodes after each terminal or timeout;
it names no environment, so --env is required. robomimic: data/demo_<k>/{obs/<key>, actions,
rewards, dones}; the environment is env_args' env_name when its env_type is Gym (2), else give
--env. The capture's demonstrator is imported:<format>; it records the source's format, file
name, sha256 and the episodes taken, and the same source gives the same bytes. A source that
does not fit the environment (observation shape, action space or range) or is malformed is
refused with one line naming the episode and the field, and nothing is written."""


def _register_import(commands: Groups) -> None:
    p = commands.add_parser(
        "import",
        help="import demonstrations from a Minari, D4RL-style or robomimic file",
        description=IMPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="SRC", help="the source file (Minari: the dataset folder)")
    p.add_argument(
        "--format",
        required=True,
        choices=("minari", "d4rl", "robomimic"),
        help="the source's format",
    )
    p.add_argument("-o", "--output", required=True, help="capture file to write (.h5)")
    p.add_argument(
        "--env",
        help="Gymnasium environment id (or module:EnvId) the demonstrations were recorded in; "
        "default: the one the source names (Minari, robomimic's Gym type)",
    )
    p.add_argument("--env-kwargs", metavar="JSON", help=ENV_KWARGS_HELP)
    p.add_argument(
        "--episodes",
        metavar="SPEC",
        help="episodes to take, by number: comma-separated numbers and inclusive ranges, e.g. "
        "0-9,12 (Minari: k of episode_<k>; robomimic: k of demo_<k>; d4rl: 0, 1, ... in file "
        "order); taken in the source's order; default all",
    )
    p.add_argument(
        "--obs-keys",
        metavar="K1,K2",
        help="robomimic only: the obs/<key> datasets to concatenate, in this order (needed when "
        "a demo has more than one)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing file (never a capture a manifest names, nor the source)",
    )
    p.set_defaults(func=cmd_capture_import)


def _register_export(commands: Groups) -> None:
    p = commands.add_parser(
        "export",
        help="export captures as a Minari dataset folder",
        description=(
            "Write the episodes of the captures, in order, as a Minari dataset folder DIR "
            "(DIR/data/main_data.hdf5 and metadata.json) that minari.load_dataset opens with "
            "MINARI_DATASETS_PATH set to DIR's parent; DIR's name is the dataset id, name-v<N>, "
            "and DIR must not exist. All captures must share one environment. Captures keep no "
            "observation after an episode's last action: the export repeats the last one there. "
            "Minari is not needed to export."
        ),
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="capture files (.h5)")
    p.add_argument("--format", required=True, choices=("minari",), help="the format to write")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="DIR", help="dataset folder")
    p.set_defaults(func=cmd_capture_export)
