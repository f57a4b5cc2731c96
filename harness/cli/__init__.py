"""The ``harness`` command line: thin wiring over the library, one subcommand group per area.

Exit codes: 0 success; 1 the command ran and found problems (integrity or quality); 2 bad
arguments or bad input (one line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from harness import __version__
from harness.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_PROBLEMS, HarnessError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) so that every failure is a single line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 1]")
    return value


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value

    return parse


_positive = _int_at_least(1)
_non_negative = _int_at_least(0)


def _out(text: str = "") -> None:
    print(text, flush=True)


# --- capture -------------------------------------------------------------------------------


def cmd_capture_record(args: argparse.Namespace) -> int:
    from harness.datasets.recording import record_capture

    out = Path(args.output)
    if out.exists() and not args.force:
        raise HarnessError(f"{out}: already exists; pass --force to overwrite it")
    meta = record_capture(
        out, args.env, args.demonstrator, noise=args.noise, episodes=args.episodes, seed=args.seed
    )
    _out(
        f"{out}: {meta.episodes} episodes, {meta.steps} steps of {args.demonstrator} "
        f"(noise {args.noise}) in {meta.env_id}, seed {meta.seed}"
    )
    return EXIT_OK


def cmd_capture_inspect(args: argparse.Namespace) -> int:
    from harness.datasets.quality import inspect_capture

    reports = [inspect_capture(p) for p in args.files]
    _print_quality(reports, args.json, title=None)
    return EXIT_OK if all(r.ok for r in reports) else EXIT_PROBLEMS


# --- dataset -------------------------------------------------------------------------------


def _dataset(args: argparse.Namespace) -> tuple[Any, Path]:
    """The loaded manifest of ``args.dataset`` and its checksum sheet path."""
    from harness.datasets.manifest import load_manifest
    from harness.datasets.registry import resolve

    ref = resolve(args.dataset)
    manifest = load_manifest(ref.manifest)
    sheet = Path(args.checksums) if getattr(args, "checksums", None) else ref.checksums
    return manifest, sheet


def cmd_dataset_create(args: argparse.Namespace) -> int:
    from harness.datasets.checksums import ChecksumSheet
    from harness.datasets.manifest import new_manifest
    from harness.datasets.registry import DATASETS_DIR, project_root
    from harness.envs import make_env
    from harness.formatting import display

    make_env(args.env).close()  # the environment must exist
    root = Path(args.root) if args.root else project_root() / DATASETS_DIR
    manifest_path = root / "manifests" / f"{args.name}.json"
    sheet_path = root / "checksums" / f"{args.name}.json"
    for path in (manifest_path, sheet_path):
        if path.exists():
            raise HarnessError(f"{path}: already exists; dataset '{args.name}' is taken")
    captures = root / "captures" / args.name
    manifest = new_manifest(manifest_path, args.name, args.env, captures, args.description)
    captures.mkdir(parents=True, exist_ok=True)
    manifest.save()
    ChecksumSheet(sheet_path, args.name, {}).save()
    _out(
        f"created dataset '{args.name}' for {args.env}: manifest {display(manifest_path)}, "
        f"checksum sheet {display(sheet_path)}, captures in {display(captures)}/"
    )
    return EXIT_OK


def cmd_dataset_add(args: argparse.Namespace) -> int:
    from harness.datasets.curation import add_capture

    manifest, _ = _dataset(args)
    entries = [add_capture(manifest, c, entry_id=args.id, copy=args.copy) for c in args.captures]
    manifest.save()
    for e in entries:
        _out(
            f"{manifest.dataset}: added '{e.id}' ({e.path}, {e.episodes} episodes, {e.steps} steps) as pending"
        )
    return EXIT_OK


def cmd_dataset_review(args: argparse.Namespace) -> int:
    from harness.datasets.curation import review
    from harness.formatting import display

    manifest, sheet_path = _dataset(args)
    status = "accepted" if args.accept else "rejected" if args.reject else "pending"
    entry, sheet = review(manifest, args.id, status, args.reason or "", sheet_path)
    _out(
        f"{manifest.dataset}: '{entry.id}' is {entry.status}"
        + (f" ({entry.reason})" if entry.reason else "")
        + f"; checksum sheet {display(sheet.path)} lists {len(sheet.entries)} accepted capture(s)"
    )
    return EXIT_OK


def cmd_dataset_list(args: argparse.Namespace) -> int:
    from harness.formatting import display

    manifest, _ = _dataset(args)
    entries = [e for e in manifest.entries if args.status in (None, e.status)]
    if args.json:
        _out(json.dumps([e.to_json() for e in entries], indent=2))
        return EXIT_OK
    rows = [("id", "status", "episodes", "steps", "demonstrator", "path", "reason")]
    for e in entries:
        demo = e.demonstrator.get("name", "?")
        if "noise" in e.demonstrator:
            demo += f" (noise {e.demonstrator['noise']})"
        rows.append((e.id, e.status, str(e.episodes), str(e.steps), demo, e.path, e.reason))
    _out(
        f"{manifest.dataset} ({manifest.env_id}): {len(entries)} of {len(manifest.entries)} entries, "
        f"captures in {display(manifest.captures_dir)}"
    )
    _table(rows)
    return EXIT_OK


def cmd_dataset_sheet(args: argparse.Namespace) -> int:
    from harness.datasets.checksums import build_sheet, save_sheet
    from harness.formatting import display

    manifest, sheet_path = _dataset(args)
    sheet = build_sheet(manifest, sheet_path, jobs=args.jobs)
    save_sheet(sheet, manifest)
    _out(
        f"{display(sheet_path)}: sha256 of {len(sheet.entries)} accepted capture(s) of '{manifest.dataset}'"
    )
    return EXIT_OK


def cmd_dataset_verify(args: argparse.Namespace) -> int:
    from harness.datasets.checksums import load_sheet
    from harness.datasets.integrity import verify
    from harness.formatting import display
    from harness.progress import bytes_bar

    manifest, sheet_path = _dataset(args)
    sheet = load_sheet(sheet_path)
    total = sum(e.bytes for e in sheet.entries.values())
    with bytes_bar(total, f"verify {manifest.dataset}", enabled=not args.json) as bar:
        report = verify(manifest, sheet, jobs=args.jobs, progress=bar.update)
    if args.json:
        _out(json.dumps(report.to_json(), indent=2))
    else:
        for problem in report.problems:
            _out(f"{manifest.dataset}: {problem.message}")
        size = sum(c["bytes"] for c in report.checked)
        if report.ok:
            _out(
                f"{manifest.dataset}: OK: {len(report.checked)} accepted capture(s), {size:,} bytes, "
                f"sha256 match {display(sheet_path)}"
            )
        else:
            _out(
                f"{manifest.dataset}: FAILED: {len(report.problems)} problem(s); "
                f"{len(report.checked)} of {len(manifest.accepted())} accepted capture(s) verified"
            )
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def cmd_dataset_export(args: argparse.Namespace) -> int:
    from harness.datasets.checksums import SUMS_NAME, export_sha256sums, load_sheet
    from harness.formatting import display

    manifest, sheet_path = _dataset(args)
    sheet = load_sheet(sheet_path)
    output = Path(args.output) if args.output else manifest.captures_dir / SUMS_NAME
    export_sha256sums(sheet, manifest, output)
    _out(
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
        q = inspect_capture(manifest.capture_path(e), expected_env=manifest.env_id)
        q.entry, q.status = e.id, e.status
        reports.append(q)
    compare_entries(reports)
    _print_quality(reports, args.json, title=f"{manifest.dataset} ({manifest.env_id})")
    # Only accepted captures must be clean; finding faults in others is the point of reviewing.
    return EXIT_PROBLEMS if any(r.errors and r.status == "accepted" for r in reports) else EXIT_OK


def _print_quality(reports: list[Any], as_json: bool, title: str | None) -> None:
    if as_json:
        _out(json.dumps([r.to_json() for r in reports], indent=2))
        return
    from harness.formatting import display

    if title:
        _out(f"{title}: {len(reports)} capture(s)")
    rows = [
        (
            "entry",
            "status",
            "demonstrator",
            "noise",
            "episodes",
            "steps",
            "return mean [min, max]",
            "actions (count, share)",
            "check",
        )
    ]
    for r in reports:
        data = r.to_json()
        ret = (
            f"{data['return_mean']:.1f} [{data['return_min']:.0f}, {data['return_max']:.0f}]"
            if data["return_mean"] is not None
            else "-"
        )
        shares = r.action_shares()
        acts = (
            "  ".join(f"{a}: {c} ({shares[a]:.0%})" for a, c in sorted(r.action_counts.items()))
            or "-"
        )
        verdict = "ERROR" if r.errors else "warn" if r.warnings else "ok"
        rows.append(
            (
                r.entry or display(r.path),
                r.status or "-",
                r.demonstrator or "-",
                "-" if r.noise is None else f"{r.noise:g}",
                str(r.episodes),
                str(r.steps),
                ret,
                acts,
                verdict,
            )
        )
    _table(rows)
    for r in reports:
        name = r.entry or display(r.path)
        for message in r.errors:
            _out(f"{name}: error: {message}")
        for message in r.warnings:
            _out(f"{name}: warning: {message}")


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        _out("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


# --- preflight -----------------------------------------------------------------------------


def cmd_preflight_generate(args: argparse.Namespace) -> int:
    from harness.datasets.preflight import generate
    from harness.datasets.registry import PREFLIGHT_DIR, project_root
    from harness.formatting import display

    out = Path(args.output) if args.output else project_root() / PREFLIGHT_DIR
    manifest = generate(out)
    _out(f"preflight bundle written under {display(out)} (manifest {display(manifest)})")
    return EXIT_OK


# --- config --------------------------------------------------------------------------------


def cmd_config_overlay(args: argparse.Namespace) -> int:
    from harness.config import changed_keys, load_config, overlay

    before = load_config(args.base)
    after = overlay(args.base, args.output, args.set, dataset=args.dataset)
    changed = ", ".join(changed_keys(before, after)) or "nothing"
    _out(f"wrote {args.output} (overlay of {args.base}; changed {changed})")
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    from harness.config import load_config

    config = load_config(args.config)
    # A config is only usable with its dataset; outputs are created by the run.
    for key, path in (
        ("dataset.manifest", config.dataset.manifest),
        ("dataset.checksums", config.dataset.checksums),
    ):
        if not path.is_file():
            raise HarnessError(f"{args.config}: {key}: {path} is not a file")
    sys.stdout.write(config.to_yaml())
    _out(f"# config hash: {config.hash()}")
    return EXIT_OK


# --- bundle --------------------------------------------------------------------------------


def cmd_bundle_verify(args: argparse.Namespace) -> int:
    from harness.bundle import verify_bundle
    from harness.formatting import display

    report = verify_bundle(args.dir)
    if args.json:
        _out(json.dumps(report.to_json(), indent=2))
        return EXIT_OK if report.ok else EXIT_PROBLEMS
    for name, summary in sorted(report.summaries.items()):
        _out(f"{name}: {_rehearsal_outcome(summary)}")
    for problem in report.problems:
        _out(problem.message)
    shown = display(args.dir)
    if report.ok:
        _out(
            f"bundle {shown}: {report.checked} artefact(s) of {len(report.summaries)} "
            "dataset(s) match their summaries"
        )
    else:
        _out(f"bundle {shown}: {len(report.problems)} problem(s) in {report.checked} artefact(s)")
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def cmd_bundle_compare(args: argparse.Namespace) -> int:
    from harness.bundle import compare_bundles
    from harness.formatting import display

    both, differences = compare_bundles(args.first, args.second)
    for line in differences:
        _out(line)
    shown = f"{display(args.first)} and {display(args.second)}"
    if differences:
        _out(f"bundles {shown}: {len(differences)} difference(s)")
        return EXIT_PROBLEMS
    _out(f"bundles {shown}: same outcomes and metrics for {', '.join(both)}")
    return EXIT_OK


def _rehearsal_outcome(summary: dict[str, Any]) -> str:
    """``rehearsal passed``, or ``rehearsal FAILED (steps: ...)`` naming the steps that did not pass."""
    if summary["passed"]:
        return "rehearsal passed"
    steps = [f"{s['step']} {s['outcome']}" for s in summary["steps"] if s["outcome"] != "passed"]
    return f"rehearsal FAILED (steps: {', '.join(steps) or 'none recorded as failed'})"


# --- train ---------------------------------------------------------------------------------

TRAIN_DESCRIPTION = (
    "Run the training stages of a config. --mode bc trains behaviour cloning on the dataset's "
    "accepted captures (after verifying their checksums), applies the gate (hold-out accuracy >= "
    "bc.accuracy_threshold and above the majority-class baseline), then promotes the checkpoint "
    "or rolls back. --mode mixed then fine-tunes the BC policy with PPO, the BC loss weighted by "
    "a coefficient annealed from anneal.bc_coef_start to 0 (anneal.schedule), and applies the "
    "regression gate: the fine-tuned policy's mean return on seeded evaluation episodes may not "
    "fall below the BC policy's by more than anneal.regression_tolerance. --mode ppo trains PPO "
    "from scratch and gates it against the store's promoted checkpoint, if any. Each stage "
    "appends its record to <log dir>/anneal_results.json."
)
TRAIN_EPILOG = (
    "exit codes: 0 every gate passed; 1 the dataset failed its integrity check (nothing "
    "trained); 2 bad arguments or input (one line on stderr, nothing written); 3 a gate failed "
    'and the run rolled back (promoted checkpoint unchanged, "rolled_back": true logged)'
)
MODES = ("bc", "ppo", "mixed")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
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
        type=_positive,
        metavar="N",
        help="epochs of the last stage: BC epochs with --mode bc, PPO epochs with ppo and mixed "
        "(default: the config's)",
    )
    p.add_argument(
        "--ppo-log",
        metavar="FILE",
        help="write a JSON Lines log with one line per PPO update (ppo and mixed); replaced "
        "whole at the end of the stage",
    )
    p.add_argument(
        "--log-dir",
        metavar="DIR",
        help="folder of anneal_results.json and of rejected checkpoints "
        "(default: the config's output.log_dir)",
    )
    p.add_argument("--seed", type=_non_negative, metavar="S", help="instead of the config's seed")
    p.add_argument("--run", metavar="NAME", help="run name in the records (default: CONFIG's stem)")
    p.add_argument(
        "--unverified",
        action="store_true",
        help="train without verifying the captures' checksums first (logged as verified: false)",
    )
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from harness.errors import EXIT_ROLLED_BACK

    if args.ppo_log and args.mode == "bc":
        raise HarnessError("--ppo-log is for --mode ppo and mixed; --mode bc runs no PPO")
    overrides: dict[str, Any] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.epochs is not None:
        overrides["bc.epochs" if args.mode == "bc" else "ppo.epochs"] = args.epochs
    if args.log_dir:
        overrides["output.log_dir"] = Path(args.log_dir).absolute()

    from harness.training.facade import TrainingHarness

    harness = TrainingHarness(
        args.config, overrides=overrides, verify=not args.unverified, run=args.run
    )
    if args.mode == "bc":
        results: list[Any] = [harness.run_bc_training()]
    elif args.mode == "mixed":
        mixed = harness.run_mixed_training(args.ppo_log)
        results = [mixed.bc] if mixed.ppo is None else [mixed.bc, mixed.ppo]
    else:
        results = [harness.run_ppo_training(args.ppo_log)]
    for result in results:
        (_report_bc if result.record["mode"] == "bc" else _report_ppo)(result, harness)
    _out(f"log: {_shown(results[-1].log)}")
    failed = next((r for r in results if r.rolled_back), None)
    if failed is not None:
        print(
            f"harness: {failed.record['mode']} gate failed, run rolled back "
            f"(exit {EXIT_ROLLED_BACK}): {failed.reasons[0]}",
            file=sys.stderr,
        )
        return EXIT_ROLLED_BACK
    return EXIT_OK


def _shown(path: Path) -> str:
    from harness.formatting import display

    return display(path)


def _rollback_line(stage: str, result: Any) -> str:
    kept = (
        f"promoted {result.promoted_checkpoint} unchanged"
        if result.promoted_checkpoint
        else "nothing promoted"
    )
    return f"{stage}: rolled back ({kept}); failed checkpoint kept at {_shown(result.checkpoint)}"


def _report_bc(r: Any, harness: Any) -> None:
    hold, train = r.holdout_size, r.train_size
    _out(
        f"bc {r.record['dataset']}: hold-out accuracy {r.accuracy:.4f} on {hold['steps']} steps "
        f"of {hold['episodes']} episodes (trained on {train['steps']} steps of "
        f"{train['episodes']} episodes); threshold {r.threshold:g}, majority baseline "
        f"{r.majority_baseline:.4f}"
        + ("" if harness.verify else "; captures NOT verified (--unverified)")
    )
    if r.passed:
        _out(f"bc: gate passed; promoted {r.checkpoint_id} ({_shown(r.checkpoint)})")
    else:
        _out(f"bc: gate FAILED: {'; '.join(r.reasons)}")
        _out(_rollback_line("bc", r))


def _report_ppo(r: Any, harness: Any) -> None:
    rec = r.record
    start = f"from {rec['init_checkpoint']}" if rec["init_checkpoint"] else "from scratch"
    anneal = (
        f", BC coefficient {r.updates[0].bc_coef:g} -> {r.updates[-1].bc_coef:g} "
        f"({rec['schedule']})"
        if rec["bc_coef_start"] is not None
        else ""
    )
    loss = "not finite" if r.loss_total is None else f"{r.loss_total:.4f}"
    _out(
        f"ppo {rec['dataset']}: {rec['updates']} update(s) {start}, {rec['env_steps']} env "
        f"steps at {rec['steps_per_second']:.0f}/s{anneal}; last loss_total {loss}"
    )
    baseline = (
        f"; baseline {r.baseline_checkpoint} {r.baseline_mean_return:.1f}, tolerance "
        f"{rec['regression_tolerance']:g}"
        if r.baseline_checkpoint
        else "; no promoted checkpoint to compare with"
    )
    _out(
        f"ppo: mean return {r.mean_return:.1f} over {rec['eval_episodes']} seeded evaluation "
        f"episodes{baseline}"
    )
    if r.passed:
        _out(f"ppo: gate passed; promoted {r.checkpoint_id} ({_shown(r.checkpoint)})")
    else:
        _out(f"ppo: regression gate FAILED: {'; '.join(r.reasons)}")
        _out(_rollback_line("ppo", r))
    if r.ppo_log:
        _out(f"ppo log: {_shown(r.ppo_log)}")


# --- parser --------------------------------------------------------------------------------

DATASET_HELP = (
    "dataset name (idle_v1, preflight, or a name registered under data/bc_datasets/) "
    "or a path to a manifest file"
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="harness",
        description=(
            "Dataset tooling and training harness for the Phase 5.4 ops rehearsal. "
            "Exit codes: 0 ok, 1 problems found, 2 bad arguments or input."
        ),
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    groups = parser.add_subparsers(
        dest="group", metavar="{capture,dataset,preflight,config,train,bundle}", required=True
    )

    # capture
    capture = groups.add_parser(
        "capture",
        help="record and inspect capture files (HDF5)",
        description="Record and inspect capture files.",
    )
    capture_cmds = capture.add_subparsers(dest="command", required=True)
    p = capture_cmds.add_parser(
        "record",
        help="record one capture with a scripted demonstrator",
        description=(
            "Run a scripted demonstrator in a Gymnasium environment and write one HDF5 capture. "
            "--noise is the probability that a step's action is drawn uniformly at random instead of "
            "the demonstrator's, modelling a human demonstrator's slips. The same arguments give a "
            "byte-identical file."
        ),
    )
    p.add_argument("--env", required=True, help="Gymnasium environment id, e.g. CartPole-v1")
    p.add_argument(
        "--demonstrator",
        default="heuristic",
        help="scripted controller: heuristic (CartPole-v1), idle or random (any discrete "
        "env); default %(default)s",
    )
    p.add_argument(
        "--noise",
        type=_probability,
        default=0.0,
        help="probability of a random action at each step, in [0, 1]; default %(default)s",
    )
    p.add_argument("--episodes", type=_positive, required=True, help="number of episodes")
    p.add_argument("--seed", type=int, required=True, help="seed of the environment and the noise")
    p.add_argument("-o", "--output", required=True, help="capture file to write (.h5)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_capture_record)

    p = capture_cmds.add_parser(
        "inspect",
        help="quality check of capture files",
        description="Quality check of loose capture files (exit 1 if any is malformed).",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(func=cmd_capture_inspect)

    # dataset
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
    dataset_cmds = dataset.add_subparsers(dest="command", required=True)

    def with_dataset(p: argparse.ArgumentParser, sheet: bool = False) -> argparse.ArgumentParser:
        p.add_argument("dataset", metavar="DATASET", help=DATASET_HELP)
        if sheet:
            p.add_argument(
                "--checksums",
                metavar="FILE",
                help="checksum sheet to use (default: ../checksums/<dataset>.json "
                "beside the manifest's folder)",
            )
        return p

    p = dataset_cmds.add_parser(
        "create",
        help="create an empty dataset",
        description="Create an empty manifest, checksum sheet and captures folder.",
    )
    p.add_argument("name", help="dataset name (letters, digits, _ . -)")
    p.add_argument("--env", required=True, help="Gymnasium environment id of its captures")
    p.add_argument("--root", help="datasets folder (default: data/bc_datasets of the project)")
    p.add_argument("--description", help="free text stored in the manifest")
    p.set_defaults(func=cmd_dataset_create)

    p = with_dataset(
        dataset_cmds.add_parser(
            "add",
            help="add captures as pending",
            description="Add capture files to a dataset with status pending.",
        )
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
    p.set_defaults(func=cmd_dataset_add)

    p = with_dataset(
        dataset_cmds.add_parser(
            "review",
            help="accept, reject or reset an entry",
            description="Set an entry's review status and rewrite the checksum sheet of the accepted "
            "captures. Accepting a capture that the quality check finds malformed is refused.",
        ),
        sheet=True,
    )
    p.add_argument("id", help="entry id")
    verdict = p.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--accept", action="store_true")
    verdict.add_argument("--reject", action="store_true", help="needs --reason")
    verdict.add_argument("--pending", action="store_true", help="back to pending")
    p.add_argument("--reason", help="why (required with --reject)")
    p.set_defaults(func=cmd_dataset_review)

    p = with_dataset(
        dataset_cmds.add_parser(
            "list", help="list entries", description="List a dataset's entries."
        )
    )
    p.add_argument("--status", choices=("accepted", "rejected", "pending"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dataset_list)

    p = with_dataset(
        dataset_cmds.add_parser(
            "sheet",
            help="write the checksum sheet",
            description="Hash every accepted capture and write the checksum sheet.",
        ),
        sheet=True,
    )
    p.add_argument("--jobs", type=_positive, help="files hashed in parallel (default: cores)")
    p.set_defaults(func=cmd_dataset_sheet)

    p = with_dataset(
        dataset_cmds.add_parser(
            "verify",
            help="check accepted captures against the checksum sheet",
            description=(
                "Recompute the sha256 of every accepted capture and compare it with the checksum "
                "sheet. Reports every problem, one line each: digest mismatch, size mismatch, missing "
                "file, unreadable file, accepted entry absent from the sheet, sheet entry not accepted, "
                "files in the captures folder that no entry names. Exit 0 only when all match."
            ),
        ),
        sheet=True,
    )
    p.add_argument("--json", action="store_true", help="print a machine-readable report")
    p.add_argument("--jobs", type=_positive, help="files hashed in parallel (default: cores)")
    p.set_defaults(func=cmd_dataset_verify)

    p = with_dataset(
        dataset_cmds.add_parser(
            "export",
            help="write a SHA256SUMS file for coreutils",
            description="Write the checksum sheet as a SHA256SUMS file that 'sha256sum -c' accepts; "
            "paths are relative to the file's folder. A SHA256SUMS in the captures folder is kept "
            "up to date by later reviews.",
        ),
        sheet=True,
    )
    p.add_argument(
        "-o", "--output", help="file to write (default: SHA256SUMS in the captures folder)"
    )
    p.set_defaults(func=cmd_dataset_export)

    p = with_dataset(
        dataset_cmds.add_parser(
            "inspect",
            help="quality check of every entry",
            description=(
                "Per entry: malformed captures (missing datasets, length mismatches, NaN or inf "
                "observations, actions outside the action space), per-action counts and episode "
                "returns, with warnings for one dominant action or episodes ending early. Exit 1 if "
                "an accepted capture is malformed."
            ),
        )
    )
    p.add_argument("--status", choices=("accepted", "rejected", "pending"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dataset_inspect)

    # preflight
    preflight = groups.add_parser(
        "preflight",
        help="the synthetic preflight bundle",
        description="The synthetic preflight bundle.",
    )
    preflight_cmds = preflight.add_subparsers(dest="command", required=True)
    p = preflight_cmds.add_parser(
        "generate",
        help="(re)generate the bundle byte-identically",
        description="Write the synthetic preflight bundle (manifest, "
        "checksum sheet, captures); deterministic.",
    )
    p.add_argument("-o", "--output", help="folder (default: artifacts/m5/preflight of the project)")
    p.set_defaults(func=cmd_preflight_generate)

    # config
    config = groups.add_parser(
        "config",
        help="check training configs and derive overlays",
        description=(
            "Training configs (YAML, checked against harness/schemas/config.schema.json). "
            "Relative paths in a config resolve against the config file's own folder."
        ),
    )
    config_cmds = config.add_subparsers(dest="command", required=True)
    p = config_cmds.add_parser(
        "overlay",
        help="write a config derived from a base with a few keys changed",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Write OUT: a complete, standalone config equal to BASE except for the keys given.

--set KEY=VALUE replaces one key (repeat it for more), e.g.
    --set bc.accuracy_threshold=0.95   --set output.log_dir=runs/strict/logs
KEY is a dotted key the schema knows (bc.epochs, ppo.target_kl, output.checkpoint_dir...).
VALUE is parsed as YAML: 0.95 and 1e-3 are numbers, null is null, [32, 32] is a list, true
is a boolean. A key that takes text (paths, env.id) keeps VALUE as typed, so
output.log_dir=2024 is the folder '2024'. --dataset sets dataset.manifest and
dataset.checksums from a dataset name or manifest path; --set dataset.manifest alone also
points dataset.checksums at that manifest's ../checksums/<name>.json.

Paths: a relative path in BASE is relative to BASE's folder; a relative path given with --set
is relative to the working folder (what you mean when you type it); an absolute path stays
absolute. In OUT, every path that was relative is written relative to OUT's own folder, so OUT
points at the same files wherever it is written. Everything is validated before anything is written;
on an error nothing is written (exit 2). OUT is overwritten if it exists, but never BASE.""",
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

    p = config_cmds.add_parser(
        "check",
        help="validate a config and print it resolved",
        description=(
            "Validate CONFIG, check that its dataset's manifest and checksum sheet exist, and print "
            "the complete config (defaults filled in, absolute paths) as YAML, followed by "
            "'# config hash: <sha256>': the hash of the training recipe, which the output folders "
            "do not change. Exit 0 if valid, else 2 with one line on stderr."
        ),
    )
    p.add_argument("config", metavar="CONFIG", help="config file (YAML)")
    p.set_defaults(func=cmd_config_check)

    # train (also scripts/run_training.py)
    p = groups.add_parser(
        "train",
        help="run the training stages of a config (BC; PPO with part 2)",
        description=TRAIN_DESCRIPTION,
        epilog=TRAIN_EPILOG,
    )
    add_train_arguments(p)

    # bundle
    bundle = groups.add_parser(
        "bundle",
        help="check an acceptance bundle against its summaries",
        description=(
            "The acceptance bundle a rehearsal leaves (artifacts/m5/acceptance/ by default): each "
            "dataset's files, keyed by dataset, the shared run log logs/anneal_results.json, and "
            "summary_<dataset>.json pinning them with their sha256 and size."
        ),
    )
    bundle_cmds = bundle.add_subparsers(dest="command", required=True)
    p = bundle_cmds.add_parser(
        "verify",
        help="recompute the bundle's digests against its summaries",
        description=(
            "Check that a bundle is still what its rehearsal left. For every "
            "summary_<dataset>.json in DIR, recompute the size and sha256 of each artefact it "
            "lists and compare. The shared run log is checked per dataset, on the canonical JSON "
            "of that dataset's records only, so rerunning one dataset never invalidates "
            "another's summary. Reports every problem, one line each: missing (listed but "
            "absent), size, digest, unexpected (a file or run log records that no summary "
            "lists), unreadable, summary (a summary that is not valid JSON, does not match "
            "harness/schemas/summary.schema.json, or lists a path its dataset does not own). "
            "Also prints each dataset's rehearsal outcome as its summary records it. This checks "
            "integrity, not the outcome: the intact bundle of a failed rehearsal verifies "
            "(exit 0)."
        ),
        epilog=(
            "exit codes: 0 every artefact matches its summary, whatever the rehearsals' "
            "outcomes; 1 problems found; 2 DIR is not a folder or holds no "
            "summary_<dataset>.json (one line on stderr)"
        ),
    )
    p.add_argument("dir", metavar="DIR", help="the bundle folder, e.g. artifacts/m5/acceptance")
    p.add_argument("--json", action="store_true", help="print a machine-readable report")
    p.set_defaults(func=cmd_bundle_verify)

    p = bundle_cmds.add_parser(
        "compare",
        help="check that two rehearsals gave the same outcomes and metrics",
        description=(
            "Compare two bundles' rehearsals of the same datasets: every step's outcome, "
            "message and remedial action, every metric except wall-clock (cli_seconds), and "
            "the missing artefacts, with each bundle's own path written <bundle>. The same "
            "code, data and seeds must give the same figures, serial or on xdist workers. "
            "Exit codes: 0 the same, 1 differences (one line each), 2 bad input."
        ),
    )
    p.add_argument("first", metavar="DIR", help="a bundle folder")
    p.add_argument("second", metavar="OTHER", help="another bundle folder")
    p.set_defaults(func=cmd_bundle_compare)
    return parser


def train_main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``scripts/run_training.py``: ``harness train`` as a command of its own."""
    parser = _Parser(prog=prog, description=TRAIN_DESCRIPTION, epilog=TRAIN_EPILOG)
    add_train_arguments(parser)
    return _run(parser.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "id", None) and getattr(args, "captures", None) and len(args.captures) > 1:
        parser.error("--id names one capture; give one CAPTURE with it")
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run a command; a user's mistake is one line on stderr and an exit code, no traceback."""
    try:
        return args.func(args)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"harness: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
