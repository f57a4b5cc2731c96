"""Exit codes that say what happened (issue 12, class 7): an unexpected error is one line naming
the file its traceback went to, with exit 70 (never a traceback with exit 1, which means
"problems found"); bad input that used to pass for something else is exit 2 in words."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import overlay

from .conftest import REPO, Dataset, assert_one_line_error, call_cli

BASE = REPO / "configs" / "examples" / "poc_hybrid.yaml"


def with_fault(target: str, argv: list[str | Path], tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run ``harness argv`` in a subprocess in which ``target`` (``module:attribute``) raises
    ``RuntimeError``: a bug injected where a real one could be."""
    module, attribute = target.split(":")
    code = (
        "import sys, importlib\n"
        f"m = importlib.import_module({module!r})\n"
        "def broken(*args, **kwargs):\n"
        "    raise RuntimeError('injected fault\\nsecond line of the message')\n"
        f"setattr(m, {attribute!r}, broken)\n"
        "from harness.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmp)},
        timeout=120,
    )


def assert_internal_error(result: subprocess.CompletedProcess[str], folder: Path) -> Path:
    """Exit 70, one line naming a traceback file in ``folder`` that holds the traceback."""
    assert result.returncode == 70, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    line = lines[0]
    assert line.startswith("harness: internal error"), line
    assert "RuntimeError: injected fault second line of the message" in line
    written = Path(line.rsplit("traceback written to ", 1)[1])
    assert written.parent == folder, (written, folder)
    text = written.read_text("utf-8")
    assert "Traceback (most recent call last)" in text and "injected fault" in text
    return written


def test_an_unexpected_error_names_its_traceback_file_in_the_temp_folder(
    small_dataset: Dataset, tmp_path: Path
) -> None:
    result = with_fault(
        "harness.datasets.integrity:verify",
        ["dataset", "verify", small_dataset.manifest_path],
        tmp_path,
    )
    written = assert_internal_error(result, tmp_path)
    assert written.name.startswith("harness-traceback-")


def test_an_unexpected_error_in_training_writes_its_traceback_in_the_log_folder(
    small_dataset: Dataset, tmp_path: Path
) -> None:
    config = tmp_path / "small.yaml"
    logs = tmp_path / "run" / "logs"
    overlay(
        BASE,
        config,
        [f"output.log_dir={logs}", f"output.checkpoint_dir={tmp_path / 'run/ckpt'}"],
        dataset=str(small_dataset.manifest_path),
    )
    result = with_fault(
        "harness.cli.train:_refuse_input_outputs", ["train", config, "--mode", "bc"], tmp_path
    )
    written = assert_internal_error(result, logs)
    assert written.name.startswith("traceback-")
    assert not (logs / "anneal_results.json").exists()


def test_exit_codes_are_listed_in_help() -> None:
    for argv in (["--help"], ["train", "--help"]):
        text = " ".join(call_cli(*argv).stdout.split())
        assert "70 an unexpected error" in text, argv
    assert "75 another process held the dataset's lock" in " ".join(
        call_cli("--help").stdout.split()
    )


def test_inspecting_a_missing_capture_is_bad_input(tmp_path: Path) -> None:
    assert_one_line_error(
        call_cli("capture", "inspect", tmp_path / "nosuch.h5"), "nosuch.h5: no such file"
    )
    assert_one_line_error(call_cli("capture", "inspect", tmp_path), "is not a regular file")


def test_a_file_where_a_folder_is_needed_is_worded(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("a file, not a folder\n")
    record = ("capture", "record", "--env", "CartPole-v1", "--episodes", "1", "--seed", "1")
    line = assert_one_line_error(call_cli(*record, "-o", blocker / "x.h5"))
    assert line == f"harness: error: {blocker}: is a file where a folder is needed"
    line = assert_one_line_error(call_cli(*record, "-o", blocker / "sub" / "x.h5"))
    assert line == f"harness: error: {blocker / 'sub'}: {blocker} is a file, not a folder"
    line = assert_one_line_error(
        call_cli("dataset", "create", "d", "--env", "CartPole-v1", "--root", blocker)
    )
    assert "File exists" not in line and f"{blocker} is a file, not a folder" in line


def test_a_folder_given_as_an_output_file_is_named_not_a_temporary_file(
    small_dataset: Dataset, tmp_path: Path
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    for command in (
        ("dataset", "export", small_dataset.manifest_path, "-o", folder),
        ("dataset", "sheet", small_dataset.manifest_path, "--checksums", folder),
    ):
        line = assert_one_line_error(call_cli(*command))
        assert line.startswith(f"harness: error: {folder}: is a folder"), line
        assert ".tmp" not in line
    assert list(folder.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_empty_dataset_option_is_a_usage_error(tmp_path: Path) -> None:
    options = ["--dataset=", f"--bundle={tmp_path / 'bundle'}", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "acceptance/", "-m", "rehearsal", *options],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR: --dataset=: no dataset named"), lines
    assert not (tmp_path / "bundle").exists()
