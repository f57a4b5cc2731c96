"""``harness config``: check a training config (and print it resolved with its hash), and derive
an overlay config from a base with a few keys changed."""

from __future__ import annotations

import argparse
import sys

from harness.cli.common import DATASET_HELP, Groups, emit
from harness.errors import EXIT_OK, HarnessError

# harness.config is imported inside each command: every run of ``harness``, ``--help``
# included, builds this parser and must not pay for yaml and jsonschema.

OVERLAY_DESCRIPTION = """\
Write OUT: a complete, standalone config equal to BASE except for the keys given.

--set KEY=VALUE replaces one key (repeat it for more), e.g.
    --set bc.accuracy_threshold=0.95   --set output.log_dir=runs/strict/logs
KEY is a dotted key the schema knows (bc.epochs, ppo.target_kl, output.checkpoint_dir...).
VALUE is parsed as YAML: 0.95 and 1e-3 are numbers, null is null, [32, 32] is a list, true
is a boolean. A key that takes text (paths, env.id) keeps VALUE as typed, so
output.log_dir=2024 is the folder '2024'. --dataset sets dataset.manifest and
dataset.checksums from a dataset name or manifest path, and env.id and env.kwargs from
that dataset's manifest (the environment its captures were recorded in); --set
dataset.manifest alone also
points dataset.checksums at the sheet of the same file name in ../checksums/ beside the
manifest's folder.

Paths: a relative path in BASE is relative to BASE's folder; a relative path given with --set
is relative to the working folder (what you mean when you type it); an absolute path stays
absolute. In OUT, every path that was relative is written relative to OUT's own folder, so OUT
points at the same files wherever it is written. Everything is validated before anything is written;
on an error nothing is written (exit 2). OUT is overwritten if it exists, but never BASE, nor a
dataset's manifest, checksum sheet or capture, nor anything in a captures folder."""


def cmd_config_overlay(args: argparse.Namespace) -> int:
    from harness.config import changed_keys, write_overlay

    before, after = write_overlay(args.base, args.output, args.set, dataset=args.dataset)
    changed = ", ".join(changed_keys(before, after)) or "nothing"
    emit(f"wrote {args.output} (overlay of {args.base}; changed {changed})")
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    from harness.config import load_config
    from harness.config.dataset_match import check_env_matches
    from harness.datasets.manifest import load_manifest
    from harness.envs import check_spaces

    config = load_config(args.config)
    # A config is only usable with its dataset; outputs are created by the run.
    for key, path in (
        ("dataset.manifest", config.dataset.manifest),
        ("dataset.checksums", config.dataset.checksums),
    ):
        if not path.is_file():
            raise HarnessError(f"{args.config}: {key}: {path} is not a file")
    check_env_matches(config, load_manifest(config.dataset.manifest))
    check_spaces(config.env.spec())  # an env that cannot be made, or learnt, fails here, not later
    sys.stdout.write(config.to_yaml())
    emit(f"# config hash: {config.hash()}")
    return EXIT_OK


def register(groups: Groups) -> None:
    """Add ``config overlay`` and ``config check``."""
    config = groups.add_parser(
        "config",
        help="check training configs and derive overlays",
        description=(
            "Training configs (YAML, checked against harness/schemas/config.schema.json). "
            "Relative paths in a config resolve against the config file's own folder."
        ),
    )
    commands = config.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "overlay",
        help="write a config derived from a base with a few keys changed",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=OVERLAY_DESCRIPTION,
    )
    p.add_argument("base", metavar="BASE", help="the config to derive from")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the config to write")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="replace one key; VALUE is YAML (repeatable)",
    )
    p.add_argument("--dataset", metavar="NAME|PATH", help=DATASET_HELP)
    p.set_defaults(func=cmd_config_overlay)

    p = commands.add_parser(
        "check",
        help="validate a config and print it resolved",
        description=(
            "Validate CONFIG, check that its dataset's manifest and checksum sheet exist and that "
            "its env (env.id, env.kwargs) is the one the dataset was recorded in and can be made "
            "and learnt, and print "
            "the complete config (defaults filled in, absolute paths) as YAML, followed by "
            "'# config hash: <sha256>': the hash of the training recipe, which the output folders "
            "do not change. Exit 0 if valid, else 2 with one line on stderr."
        ),
    )
    p.add_argument("config", metavar="CONFIG", help="config file (YAML)")
    p.set_defaults(func=cmd_config_check)
