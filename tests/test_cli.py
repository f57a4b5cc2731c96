"""The harness CLI as a user runs it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.validation import schema_problems

from .conftest import Dataset, assert_one_line_error, call_cli, run_cli


def record(*extra: str | Path) -> tuple[str | Path, ...]:
    """``harness capture record`` on CartPole-v1 for one episode, plus ``extra`` arguments."""
    return ("capture", "record", "--env", "CartPole-v1", "--episodes", "1", *extra)


@pytest.mark.parametrize("name", ["idle_v1", "preflight"])
def test_committed_datasets_verify(name: str) -> None:
    result = run_cli("dataset", "verify", name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith(f"{name}: OK: 2 accepted capture(s)")


def test_flipped_byte_fails_naming_the_capture(idle_v1_copy: Dataset) -> None:
    path = idle_v1_copy.capture("cap_002")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = run_cli("dataset", "verify", idle_v1_copy.manifest_path)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("idle_v1: digest mismatch: entry 'cap_002' (")
    assert "cap_002.h5" in lines[0]
    assert lines[-1].startswith("idle_v1: FAILED: 1 problem(s)")
    assert "cap_001" not in result.stdout.replace(lines[-1], "")


def test_verify_json_report(idle_v1_copy: Dataset) -> None:
    idle_v1_copy.capture("cap_001").unlink()
    result = run_cli("dataset", "verify", idle_v1_copy.manifest_path, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert schema_problems(report, "verify_report") == []
    assert report["ok"] is False
    assert [(p["kind"], p["entry"]) for p in report["problems"]] == [("file_missing", "cap_001")]
    assert [c["id"] for c in report["checked"]] == ["cap_002"]


def test_sha256sums_export_is_accepted_by_coreutils(idle_v1_copy: Dataset, tmp_path: Path) -> None:
    result = run_cli("dataset", "export", idle_v1_copy.manifest_path)
    assert result.returncode == 0, result.stderr
    sums = idle_v1_copy.captures / "SHA256SUMS"
    check = subprocess.run(
        ["sha256sum", "-c", sums.name], cwd=sums.parent, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 2
    # Written elsewhere, paths are relative to that file's folder.
    other = tmp_path / "elsewhere" / "SUMS"
    assert run_cli("dataset", "export", idle_v1_copy.manifest_path, "-o", other).returncode == 0
    assert (
        subprocess.run(
            ["sha256sum", "-c", "SUMS"], cwd=other.parent, capture_output=True
        ).returncode
        == 0
    )
    # And coreutils sees the same damage as verify.
    with open(idle_v1_copy.capture("cap_001"), "r+b") as fh:
        fh.seek(100)
        fh.write(b"\xff")
    check = subprocess.run(
        ["sha256sum", "-c", sums.name], cwd=sums.parent, capture_output=True, text=True
    )
    assert check.returncode != 0 and "cap_001.h5: FAILED" in check.stdout


def test_curation_flow(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    assert (
        call_cli("dataset", "create", "demo", "--env", "CartPole-v1", "--root", root).returncode
        == 0
    )
    manifest = root / "manifests" / "demo.json"
    captures = root / "captures" / "demo"
    for cid, demo, noise in (("good", "heuristic", "0.1"), ("lazy", "idle", "0")):
        r = call_cli(
            *record(
                "--demonstrator",
                demo,
                "--noise",
                noise,
                "--seed",
                "3",
                "-o",
                captures / f"{cid}.h5",
            )
        )
        assert r.returncode == 0, r.stderr
    loose = tmp_path / "loose.h5"
    assert call_cli(*record("--seed", "4", "-o", loose)).returncode == 0
    assert (
        call_cli("dataset", "add", manifest, captures / "good.h5", captures / "lazy.h5").returncode
        == 0
    )
    assert_one_line_error(
        call_cli("dataset", "add", manifest, loose), "not inside the captures folder", "--copy"
    )
    assert call_cli("dataset", "add", manifest, loose, "--copy", "--id", "copied").returncode == 0
    assert (captures / "loose.h5").read_bytes() == loose.read_bytes()
    assert_one_line_error(
        call_cli("dataset", "add", manifest, captures / "good.h5"), "'good' already exists"
    )

    assert call_cli("dataset", "review", manifest, "good", "--accept").returncode == 0
    assert_one_line_error(call_cli("dataset", "review", manifest, "lazy", "--reject"), "--reason")
    assert (
        call_cli("dataset", "review", manifest, "lazy", "--reject", "--reason", "idle").returncode
        == 0
    )
    assert_one_line_error(
        call_cli("dataset", "review", manifest, "ghost", "--accept"), "no entry 'ghost'"
    )

    listing = call_cli("dataset", "list", manifest, "--json")
    entries = {e["id"]: e for e in json.loads(listing.stdout)}
    assert {k: e["status"] for k, e in entries.items()} == {
        "good": "accepted",
        "lazy": "rejected",
        "copied": "pending",
    }
    assert entries["lazy"]["review"]["reason"] == "idle"
    assert entries["good"]["demonstrator"] == {"name": "heuristic", "noise": 0.1, "seed": 3}
    text = call_cli("dataset", "list", manifest, "--status", "pending").stdout
    assert "copied" in text and "good" not in text.split("\n", 1)[1]

    sheet = json.loads((root / "checksums" / "demo.json").read_text())
    assert list(sheet["entries"]) == ["good"]
    assert call_cli("dataset", "verify", manifest).returncode == 0
    inspect = call_cli("dataset", "inspect", manifest)
    assert inspect.returncode == 0
    assert "lazy: warning: one action dominates: action 0 is 100% of steps" in inspect.stdout

    # An exported SHA256SUMS follows later reviews.
    assert call_cli("dataset", "export", manifest).returncode == 0
    assert (captures / "SHA256SUMS").read_text().endswith("  good.h5\n")

    # Un-accepting removes the capture from the sheet again.
    assert call_cli("dataset", "review", manifest, "good", "--pending").returncode == 0
    assert json.loads((root / "checksums" / "demo.json").read_text())["entries"] == {}
    assert (captures / "SHA256SUMS").read_text() == ""
    assert_one_line_error(
        call_cli("dataset", "create", "demo", "--env", "CartPole-v1", "--root", root),
        "already exists",
    )


def test_accepting_a_malformed_capture_is_refused(small_dataset: Dataset) -> None:
    import h5py

    with h5py.File(small_dataset.capture("noisy"), "r+") as f:
        f["data/demo_0/obs"][0, 0] = float("nan")
    before = small_dataset.manifest_path.read_bytes()
    result = run_cli("dataset", "review", small_dataset.manifest_path, "noisy", "--accept")
    assert_one_line_error(result, "'noisy' cannot be accepted", "NaN")
    assert small_dataset.manifest_path.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ("dataset", "verify", "no_such_dataset"),
            ("unknown dataset 'no_such_dataset'", "idle_v1"),
        ),
        (
            ("dataset", "verify", "missing/manifest.json"),
            ("missing/manifest.json", "manifest not found"),
        ),
        (("dataset", "verify"), ("required", "DATASET")),
        (record("--seed", "1", "--noise", "2", "-o", "x.h5"), ("--noise", "outside [0, 1]")),
        (record("--seed", "1", "-o", "x.h5", "--env", "Nope-v9"), ("Nope-v9", "registry")),
        (
            record("--seed", "1", "-o", "x.h5", "--episodes", "zero"),
            ("--episodes", "not an integer"),
        ),
        (("frobnicate",), ("invalid choice",)),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    assert_one_line_error(run_cli(*args, cwd=tmp_path), *fragments)
    assert not (tmp_path / "x.h5").exists()


def test_broken_manifest_is_one_line(small_dataset: Dataset) -> None:
    small_dataset.manifest_path.write_text('{"schema_version": 1, "dataset": "small"')
    assert_one_line_error(
        run_cli("dataset", "verify", small_dataset.manifest_path), "not valid JSON"
    )
    small_dataset.manifest_path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "dataset": "small",
                "env_id": "CartPole-v1",
                "captures_dir": ".",
                "entries": [{"id": "a"}],
            }
        )
    )
    assert_one_line_error(run_cli("dataset", "verify", small_dataset.manifest_path), "entries[0]")


def test_missing_sheet_is_one_line(small_dataset: Dataset) -> None:
    small_dataset.sheet_path.unlink()
    assert_one_line_error(
        run_cli("dataset", "verify", small_dataset.manifest_path),
        "checksum sheet not found",
        small_dataset.sheet_path.name,
    )


def test_record_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "c.h5"
    args = record("--seed", "1", "-o", out)
    assert run_cli(*args).returncode == 0
    before = out.read_bytes()
    assert_one_line_error(run_cli(*args), "already exists", "--force")
    assert run_cli(*args, "--force").returncode == 0
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.h5"]  # no temporary files left


def test_inspect_exit_code_follows_accepted_entries(small_dataset: Dataset) -> None:
    assert call_cli("dataset", "inspect", small_dataset.manifest_path).returncode == 0
    import h5py

    with h5py.File(small_dataset.capture("a"), "r+") as f:
        f["data/demo_0/actions"][0] = 7
    result = call_cli("dataset", "inspect", small_dataset.manifest_path, "--json")
    assert result.returncode == 1
    reports = {r["entry"]: r for r in json.loads(result.stdout)}
    assert reports["a"]["errors"] == [
        "data/demo_0: 1 action(s) outside the action space [0, 1], first 7 at step 0"
    ]
    loose = call_cli("capture", "inspect", small_dataset.capture("a"))
    assert loose.returncode == 1 and "outside the action space" in loose.stdout


@pytest.mark.parametrize(
    "args",
    [(), ("dataset",), ("capture",), ("preflight",), ("dataset", "verify"), ("capture", "record")],
)
def test_help_answers(args: tuple[str, ...]) -> None:
    result = run_cli(*args, "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: harness")


def test_python_dash_m_and_console_script_agree() -> None:
    script = shutil.which("harness")
    if script is None:
        pytest.fail("the 'harness' console script is not installed (pip install -e .)")
    r = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == run_cli("--version").stdout


def _commands() -> list[tuple[str, ...]]:
    """Every command of the assembled parser: ``(group,)`` or ``(group, command)``."""
    import argparse

    from harness.cli import build_parser

    def below(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return dict(subs[0].choices) if subs else {}

    return [
        (group, *((command,) if command else ()))
        for group, group_parser in below(build_parser()).items()
        for command in below(group_parser) or [None]
    ]


def test_every_group_registers_its_commands() -> None:
    assert _commands() == [
        ("capture", "record"),
        ("capture", "inspect"),
        ("capture", "import"),
        ("capture", "export"),
        *[
            ("dataset", c)
            for c in ("create", "add", "review", "list", "sheet", "verify", "export", "inspect")
        ],
        ("preflight", "generate"),
        ("config", "overlay"),
        ("config", "check"),
        ("train",),
        ("bundle", "verify"),
        ("bundle", "compare"),
        ("bundle", "clear"),
    ]


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_every_command_answers_help(command: tuple[str, ...]) -> None:
    result = call_cli(*command, "--help")
    assert result.returncode == 0 and result.stdout.startswith(
        f"usage: harness {' '.join(command)}"
    )


def test_the_preflight_data_is_a_dataset_not_a_bundle(tmp_path: Path) -> None:
    # "bundle" names what a rehearsal leaves; the preflight data is a dataset like idle_v1.
    for command in (("preflight",), ("preflight", "generate")):
        assert "bundle" not in call_cli(*command, "--help").stdout
    result = call_cli("preflight", "generate", "-o", tmp_path / "preflight")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("preflight dataset written under ")


def test_building_the_parser_imports_no_heavy_library() -> None:
    # Every command, --help included, builds the whole parser; only `harness train` may load
    # torch, and a dataset listing needs neither yaml nor torch.
    code = (
        "import sys; from harness.cli import build_parser, main; build_parser(); "
        "print(sorted({n.split('.')[0] for n in sys.modules} & "
        "{'torch', 'numpy', 'h5py', 'jsonschema', 'yaml', 'gymnasium'})); "
        "main(['dataset', 'list', 'idle_v1']); "
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'torch', 'yaml'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "[]" and lines[-1] == "[]", lines


@pytest.mark.parametrize(("given", "seen"), [(None, "1"), ("3", "3")])
def test_the_cli_runs_numpy_s_blas_on_one_thread_unless_told(given: str | None, seen: str) -> None:
    """OpenBLAS starts a thread per core that spins for about 0.1 s of CPU per process; the
    ``harness`` command (and run_training.py) asks for one before numpy is imported."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    code = "import os, harness.cli, numpy; print(os.environ['OPENBLAS_NUM_THREADS'])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == seen
