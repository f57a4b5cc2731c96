"""``harness dataset``: curate a dataset (create it, add captures, review them, list them), keep
its checksum sheet (write, verify, export as SHA256SUMS) and check its captures' quality."""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.common import (
    DATASET_HELP,
    ENV_KWARGS_HELP,
    Command,
    Groups,
    emit,
    emit_json,
    emit_quality,
    emit_table,
    positive,
)
from harness.envs import EnvSpec, check_spaces
from harness.errors import EXIT_OK, EXIT_PROBLEMS, HarnessError
from harness.formatting import display
from harness.progress import bytes_bar

if TYPE_CHECKING:
    from harness.datasets.manifest import Manifest

# The library is imported inside each command: every run of ``harness``, ``--help`` included,
# builds all the groups' parsers and must not pay for jsonschema, numpy or h5py.

STATUSES = ("accepted", "rejected", "pending")


def _dataset(args: argparse.Namespace) -> tuple[Manifest, Path]:
    """The loaded manifest of ``args.dataset`` and its checksum sheet path.

    A command that writes the manifest or the sheet, or reads both together, calls it inside
    ``_locked``: the read must come after the lock is held.
    """
    from harness.datasets.manifest import load_manifest
    from harness.datasets.registry import resolve

    ref = resolve(args.dataset)
    manifest = load_manifest(ref.manifest)
    sheet = Path(args.checksums) if getattr(args, "checksums", None) else ref.checksums
    return manifest, sheet


def _locked(args: argparse.Namespace, *, write: bool) -> contextlib.AbstractContextManager[None]:
    """The dataset's lock, exclusive to write its manifest or sheet, else shared."""
    from harness.datasets.curation import editing, reading
    from harness.datasets.registry import resolve

    manifest = resolve(args.dataset).manifest
    what = f"harness dataset {args.command} {args.dataset}"
    return editing(manifest, what) if write else reading(manifest)


def _refuse_sheet_overwrite(manifest: Manifest, sheet: Path) -> None:
    """The sheet a command writes must not be another input (``--checksums`` names any file)."""
    from harness.datasets.inputs import inputs_of, refuse_overwrite

    own = inputs_of(manifest.path, sheet)
    refuse_overwrite(sheet, "the checksum sheet", own, own_sheet=True)


def cmd_dataset_create(args: argparse.Namespace) -> int:
    from harness.datasets.checksums import ChecksumSheet
    from harness.datasets.curation import editing
    from harness.datasets.manifest import new_manifest
    from harness.datasets.registry import DATASETS_DIR, project_root

    env = EnvSpec.parse(args.env, args.env_kwargs)
    check_spaces(env)  # an environment that cannot be made, or trained on, is refused now
    if args.base_config:
        from harness.config import load_config

        load_config(args.base_config)  # a config the rehearsal can overlay, or one line now
    root = Path(args.root) if args.root else project_root() / DATASETS_DIR
    manifest_path = root / "manifests" / f"{args.name}.json"
    sheet_path = root / "checksums" / f"{args.name}.json"
    captures = root / "captures" / args.name
    with editing(manifest_path, f"harness dataset create {args.name}"):
        for path in (manifest_path, sheet_path):
            if path.exists():
                raise HarnessError(f"{path}: already exists; dataset '{args.name}' is taken")
        manifest = new_manifest(
            manifest_path, args.name, env.id, captures, args.description, env_kwargs=env.kwargs
        )
        if args.base_config:
            manifest.base_config = _base_config_text(Path(args.base_config), manifest_path)
        captures.mkdir(parents=True, exist_ok=True)
        manifest.save()
        ChecksumSheet(sheet_path, args.name, {}).save()
    emit(
        f"created dataset '{args.name}' for {env}: manifest {display(manifest_path)}, "
        f"checksum sheet {display(sheet_path)}, captures in {display(captures)}/"
    )
    return EXIT_OK


def _base_config_text(config: Path, manifest: Path) -> str:
    """How the manifest names its base config: relative to the manifest's folder when both lie
    in the project (``project_root``: they move together), else absolute (data kept apart from
    its configs must not break when one of them moves)."""
    from harness.datasets.registry import project_root

    config, folder = config.absolute(), manifest.absolute().parent
    root = project_root().absolute()
    if config.is_relative_to(root) and folder.is_relative_to(root):
        return Path(os.path.relpath(config, folder)).as_posix()
    return config.as_posix()


def cmd_dataset_add(args: argparse.Namespace) -> int:
    from harness.datasets.curation import add_capture

    with _locked(args, write=True):
        manifest, _ = _dataset(args)
        entries = [
            add_capture(manifest, c, entry_id=args.id, copy=args.copy) for c in args.captures
        ]
        manifest.save()
    for e in entries:
        emit(
            f"{manifest.dataset}: added '{e.id}' ({e.path}, {e.episodes} episodes, {e.steps} steps) as pending"
        )
    return EXIT_OK


def one_capture_with_id(args: argparse.Namespace) -> str | None:
    """Why ``dataset add``'s arguments do not go together, if they do not."""
    if args.id and len(args.captures) > 1:
        return "--id names one capture; give one CAPTURE with it"
    return None


def cmd_dataset_review(args: argparse.Namespace) -> int:
    from harness.datasets.curation import review

    status = "accepted" if args.accept else "rejected" if args.reject else "pending"
    with _locked(args, write=True):
        manifest, sheet_path = _dataset(args)
        _refuse_sheet_overwrite(manifest, sheet_path)
        entry, sheet = review(manifest, args.id, status, args.reason or "", sheet_path)
    emit(
        f"{manifest.dataset}: '{entry.id}' is {entry.status}"
        + (f" ({entry.reason})" if entry.reason else "")
        + f"; checksum sheet {display(sheet.path)} lists {len(sheet.entries)} accepted capture(s)"
    )
    return EXIT_OK


def cmd_dataset_list(args: argparse.Namespace) -> int:
    manifest, _ = _dataset(args)
    entries = [e for e in manifest.entries if args.status in (None, e.status)]
    if args.json:
        emit_json([e.to_json() for e in entries])
        return EXIT_OK
    rows = [("id", "status", "episodes", "steps", "demonstrator", "path", "reason")]
    for e in entries:
        demo = e.demonstrator.get("name", "?")
        if "noise" in e.demonstrator:
            demo += f" (noise {e.demonstrator['noise']})"
        rows.append((e.id, e.status, str(e.episodes), str(e.steps), demo, e.path, e.reason))
    emit(
        f"{manifest.dataset} ({manifest.env_id}): {len(entries)} of {len(manifest.entries)} entries, "
        f"captures in {display(manifest.captures_dir)}"
    )
    emit_table(rows)
    return EXIT_OK


def cmd_dataset_sheet(args: argparse.Namespace) -> int:
    from harness.datasets.checksums import build_sheet, save_sheet

    with _locked(args, write=True):
        manifest, sheet_path = _dataset(args)
        _refuse_sheet_overwrite(manifest, sheet_path)
        sheet = build_sheet(manifest, sheet_path, jobs=args.jobs)
        save_sheet(sheet, manifest)
    emit(
        f"{display(sheet_path)}: sha256 of {len(sheet.entries)} accepted capture(s) of '{manifest.dataset}'"
    )
    return EXIT_OK


def cmd_dataset_verify(args: argparse.Namespace) -> int:
    from harness.datasets.checksums import load_sheet
    from harness.datasets.integrity import verify

    # Shared: a review between reading the manifest and the sheet would make them disagree.
    with _locked(args, write=False):
        manifest, sheet_path = _dataset(args)
        sheet = load_sheet(sheet_path)
        total = sum(e.bytes for e in sheet.entries.values())
        with bytes_bar(total, f"verify {manifest.dataset}", enabled=not args.json) as bar:
            report = verify(manifest, sheet, jobs=args.jobs, progress=bar.update)
    if args.json:
        emit_json(report.to_json())
        return EXIT_OK if report.ok else EXIT_PROBLEMS
    for problem in report.problems:
        emit(f"{manifest.dataset}: {problem.message}")
    size = sum(c["bytes"] for c in report.checked)
    if report.ok:
        emit(
            f"{manifest.dataset}: OK: {len(report.checked)} accepted capture(s), {size:,} bytes, "
            f"sha256 match {display(sheet_path)}"
        )
        return EXIT_OK
    emit(
        f"{manifest.dataset}: FAILED: {len(report.problems)} problem(s); "
        f"{len(report.checked)} of {len(manifest.accepted())} accepted capture(s) verified"
    )
    return EXIT_PROBLEMS


def cmd_dataset_export(args: argparse.Namespace) -> int:
    from harness.datasets.checksums import SUMS_NAME, export_sha256sums, load_sheet
    from harness.datasets.inputs import inputs_of, refuse_overwrite

    # Exclusive: reviews rewrite the SHA256SUMS in the captures folder; this must not undo one.
    with _locked(args, write=True):
        manifest, sheet_path = _dataset(args)
        output = Path(args.output) if args.output else manifest.captures_dir / SUMS_NAME
        if output.is_dir():
            raise HarnessError(f"{output}: is a folder; give the SHA256SUMS file's name")
        refuse_overwrite(output, "SHA256SUMS", inputs_of(manifest.path, sheet_path), own_sums=True)
        sheet = load_sheet(sheet_path)
        export_sha256sums(sheet, manifest, output)
    emit(
        f"{display(output)}: {len(sheet.entries)} line(s); check with: "
        f"cd {display(output.parent)} && sha256sum -c {output.name}"
    )
    return EXIT_OK


def cmd_dataset_inspect(args: argparse.Namespace) -> int:
    from harness.datasets.quality import compare_entries, inspect_capture

    manifest, _ = _dataset(args)
    reports = []
    for e in manifest.entries:
        if args.status not in (None, e.status):
            continue
        q = inspect_capture(manifest.capture_path(e), expected_env=manifest.env_spec())
        q.entry, q.status = e.id, e.status
        reports.append(q)
    compare_entries(reports)
    emit_quality(reports, args.json, title=f"{manifest.dataset} ({manifest.env_id})")
    # Only accepted captures must be clean; finding faults in others is the point of reviewing.
    return EXIT_PROBLEMS if any(r.errors and r.status == "accepted" for r in reports) else EXIT_OK


def register(groups: Groups) -> None:
    """Add the ``dataset`` commands."""
    dataset = groups.add_parser(
        "dataset",
        help="manifests, reviews, checksum sheets, integrity",
        description=(
            "Curate datasets: create a manifest, add captures (pending), review them (accept/reject), "
            "list them, write the checksum sheet of the accepted ones, verify integrity, export "
            "SHA256SUMS and inspect capture quality. "
            + DATASET_HELP[0].upper()
            + DATASET_HELP[1:]
            + "."
        ),
    )
    commands = dataset.add_subparsers(dest="command", required=True)
    _register_curation(commands)
    _register_checksums(commands)

    p = _with_dataset(
        commands.add_parser(
            "inspect",
            help="quality check of every entry",
            description=(
                "Per entry: malformed captures (missing datasets, length mismatches, NaN or inf "
                "observations, actions outside the action space), per-action counts and episode "
                "returns, with warnings for one dominant action or episodes ending early. Exit 1 if "
                "an accepted capture is malformed."
            ),
        ),
        cmd_dataset_inspect,
    )
    _add_listing_arguments(p)


def _with_dataset(
    p: argparse.ArgumentParser, command: Command, sheet: bool = False
) -> argparse.ArgumentParser:
    """``p`` runs ``command`` on a DATASET; with ``sheet``, its checksum sheet may be named."""
    p.add_argument("dataset", metavar="DATASET", help=DATASET_HELP)
    if sheet:
        p.add_argument(
            "--checksums",
            metavar="FILE",
            help="checksum sheet to use (default: ../checksums/<manifest file name> "
            "beside the manifest's folder)",
        )
    p.set_defaults(func=command)
    return p


def _add_listing_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--json", action="store_true")


def _add_jobs_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=positive, help="files hashed in parallel (default: cores)")


def _register_curation(commands: Groups) -> None:
    """``create``, ``add``, ``review`` and ``list``."""
    p = commands.add_parser(
        "create",
        help="create an empty dataset",
        description="Create an empty manifest, checksum sheet and captures folder.",
    )
    p.add_argument("name", help="dataset name (letters, digits, _ . -)")
    p.add_argument(
        "--env",
        required=True,
        help="Gymnasium environment id of its captures, or module:EnvId for an environment "
        "that a module registers",
    )
    p.add_argument("--env-kwargs", metavar="JSON", help=ENV_KWARGS_HELP)
    p.add_argument("--root", help="datasets folder (default: data/bc_datasets of the project)")
    p.add_argument("--description", help="free text stored in the manifest")
    p.add_argument(
        "--base-config",
        metavar="CONFIG",
        help="the training config the rehearsal overlays for this dataset (default: "
        "configs/examples/poc_hybrid.yaml)",
    )
    p.set_defaults(func=cmd_dataset_create)

    p = _with_dataset(
        commands.add_parser(
            "add",
            help="add captures as pending",
            description="Add capture files to a dataset with status pending.",
        ),
        cmd_dataset_add,
    )
    p.add_argument(
        "captures", nargs="+", metavar="CAPTURE", help="capture file(s) in the captures folder"
    )
    p.add_argument("--id", help="entry id (default: the file name without .h5); one capture only")
    p.add_argument(
        "--copy",
        action="store_true",
        help="copy captures that lie outside the captures folder into it",
    )
    p.set_defaults(argument_problem=one_capture_with_id)

    p = _with_dataset(
        commands.add_parser(
            "review",
            help="accept, reject or reset an entry",
            description="Set an entry's review status and rewrite the checksum sheet of the accepted "
            "captures. Accepting a capture that the quality check finds malformed is refused.",
        ),
        cmd_dataset_review,
        sheet=True,
    )
    p.add_argument("id", help="entry id")
    verdict = p.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--accept", action="store_true")
    verdict.add_argument("--reject", action="store_true", help="needs --reason")
    verdict.add_argument("--pending", action="store_true", help="back to pending")
    p.add_argument("--reason", help="why (required with --reject)")

    p = _with_dataset(
        commands.add_parser("list", help="list entries", description="List a dataset's entries."),
        cmd_dataset_list,
    )
    _add_listing_arguments(p)


def _register_checksums(commands: Groups) -> None:
    """``sheet``, ``verify`` and ``export``."""
    p = _with_dataset(
        commands.add_parser(
            "sheet",
            help="write the checksum sheet",
            description="Hash every accepted capture and write the checksum sheet.",
        ),
        cmd_dataset_sheet,
        sheet=True,
    )
    _add_jobs_argument(p)

    p = _with_dataset(
        commands.add_parser(
            "verify",
            help="check accepted captures against the checksum sheet",
            description=(
                "Recompute the sha256 of every accepted capture and compare it with the checksum "
                "sheet. Reports every problem, one line each: a sheet of another dataset, digest "
                "mismatch, size mismatch, missing file, unreadable file, accepted entry absent from "
                "the sheet, sheet and manifest naming different paths, sheet entry not accepted, "
                "files in the captures folder that no entry names. Exit 0 only when all match."
            ),
        ),
        cmd_dataset_verify,
        sheet=True,
    )
    p.add_argument("--json", action="store_true", help="print a machine-readable report")
    _add_jobs_argument(p)

    p = _with_dataset(
        commands.add_parser(
            "export",
            help="write a SHA256SUMS file for coreutils",
            description="Write the checksum sheet as a SHA256SUMS file that 'sha256sum -c' accepts; "
            "paths are relative to the file's folder. A SHA256SUMS in the captures folder is kept "
            "up to date by later reviews.",
        ),
        cmd_dataset_export,
        sheet=True,
    )
    p.add_argument(
        "-o",
        "--output",
        help="file to write (default: SHA256SUMS in the captures folder); never a manifest, a "
        "sheet, or another file in a captures folder",
    )
