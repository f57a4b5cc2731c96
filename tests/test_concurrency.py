"""Concurrent writers lose nothing: N ``harness`` processes started at once on one dataset, and
rehearsal sessions on one bundle (issue 12, class 1). Real subprocesses, real files."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from harness.bundle import DatasetFiles, verify_bundle
from harness.bundle.layout import bundle_lock
from harness.datasets.curation import add_capture, dataset_lock
from harness.datasets.manifest import load_manifest, new_manifest
from harness.datasets.recording import record_capture
from harness.locking import exclusive

from .conftest import REPO, Dataset, call_cli, run_cli

N = 8  # processes started at once
# The default run forks (cheap); the slow run starts real interpreters, 20 rounds.
ROUNDS = [
    pytest.param(2, "fork", id="2-rounds-fork"),
    pytest.param(20, "exec", marks=pytest.mark.slow, id="20-rounds-exec"),
]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """N different one-episode captures, recorded once for the module."""
    folder = tmp_path_factory.mktemp("recorded")
    paths = [folder / f"c{i}.h5" for i in range(N)]
    for i, path in enumerate(paths):
        record_capture(path, "CartPole-v1", "heuristic", noise=0.1, episodes=1, seed=i)
    return paths


def fresh_dataset(root: Path, recorded: list[Path], *, added: bool) -> Dataset:
    """A dataset under ``root`` holding the recorded captures in its captures folder, added as
    pending (``added``) or not yet in the manifest."""
    ds = Dataset(root, "busy")
    ds.captures.mkdir(parents=True)
    manifest = new_manifest(ds.manifest_path, ds.name, "CartPole-v1", ds.captures)
    for path in recorded:
        shutil.copyfile(path, ds.captures / path.name)
        if added:
            add_capture(manifest, ds.captures / path.name)
    manifest.save()
    ds.sheet_path.parent.mkdir(parents=True)
    ds.sheet_path.write_text(
        json.dumps({"schema_version": 1, "dataset": "busy", "algorithm": "sha256", "entries": {}})
    )
    return ds


def at_once(commands: list[list[str | Path]], how: str) -> list[subprocess.CompletedProcess[str]]:
    """Run every command in a process of its own, all at once; their results in order.

    ``exec``: ``python -m harness`` subprocesses, as a user starts them. ``fork``: forks of this
    process calling ``harness.cli.main``, released together from a barrier; the same command
    code without the interpreter start-up (a tenth of the CPU), for the default run.
    """
    if how == "fork":
        return _forked(commands)
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "harness", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for args in commands
    ]
    results = []
    for args, process in zip(commands, started, strict=True):
        out, err = process.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(args, process.returncode, out, err))
    return results


def _forked(commands: list[list[str | Path]]) -> list[subprocess.CompletedProcess[str]]:
    import harness.datasets.inputs
    import harness.datasets.integrity
    import harness.datasets.quality  # noqa: F401  (imported once here, not in every child)
    from harness.cli import main
    from harness.envs import env_spaces

    env_spaces("CartPole-v1")  # cached: the children's quality checks reuse it

    barrier, release = os.pipe()
    children = []
    for args in commands:
        err_fd, err_name = tempfile.mkstemp(suffix=".stderr")
        pid = os.fork()
        if pid == 0:  # the child: wait for the barrier, run the command, leave
            code = 70
            try:
                os.close(release)
                os.read(barrier, 1)  # returns when the parent closes its end
                with (
                    open(err_fd, "w") as err,
                    contextlib.redirect_stdout(io.StringIO()),
                    contextlib.redirect_stderr(err),
                ):
                    code = main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 2
            finally:
                os._exit(code)
        os.close(err_fd)
        children.append((args, pid, Path(err_name)))
    os.close(barrier)
    os.close(release)  # every child starts now
    results = []
    for args, pid, err_path in children:
        _, status = os.waitpid(pid, 0)
        err = err_path.read_text("utf-8")
        err_path.unlink()
        results.append(
            subprocess.CompletedProcess(args, os.waitstatus_to_exitcode(status), "", err)
        )
    return results


def assert_all_ok(results: list[subprocess.CompletedProcess[str]]) -> None:
    for r in results:
        assert r.returncode == 0, (r.args, r.returncode, r.stderr)


@pytest.mark.parametrize(("rounds", "how"), ROUNDS)
def test_concurrent_adds_all_land(
    tmp_path: Path, recorded: list[Path], rounds: int, how: str
) -> None:
    landed = 0
    for r in range(rounds):
        ds = fresh_dataset(tmp_path / f"round{r}", recorded, added=False)
        results = at_once(
            [["dataset", "add", ds.manifest_path, ds.captures / p.name] for p in recorded], how
        )
        assert_all_ok(results)
        ids = sorted(e.id for e in ds.manifest().entries)
        assert ids == sorted(p.stem for p in recorded), f"round {r}: {ids}"
        landed += len(ids)
    assert landed == rounds * N


@pytest.mark.parametrize(("rounds", "how"), ROUNDS)
def test_concurrent_accepts_all_land_and_verify(
    tmp_path: Path, recorded: list[Path], rounds: int, how: str
) -> None:
    accepted = 0
    for r in range(rounds):
        ds = fresh_dataset(tmp_path / f"round{r}", recorded, added=True)
        reviews = [["dataset", "review", ds.manifest_path, p.stem, "--accept"] for p in recorded]
        # Readers alongside: each must see a manifest and a sheet that agree.
        verifies = [["dataset", "verify", ds.manifest_path]] * 2
        assert_all_ok(at_once(reviews + verifies, how))
        manifest = ds.manifest()
        assert [e.status for e in manifest.entries] == ["accepted"] * N, f"round {r}"
        sheet = json.loads(ds.sheet_path.read_text("utf-8"))
        assert sorted(sheet["entries"]) == sorted(e.id for e in manifest.entries)
        verify = call_cli("dataset", "verify", ds.manifest_path)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        accepted += len(manifest.accepted())
    assert accepted == rounds * N


def test_a_writer_gives_up_naming_the_holder(small_dataset: Dataset) -> None:
    before = small_dataset.manifest_path.read_bytes(), small_dataset.sheet_path.read_bytes()
    lock = dataset_lock(small_dataset.manifest_path)
    with exclusive(lock, "a test holding the dataset"):
        command = ["dataset", "review", small_dataset.manifest_path, "noisy", "--accept"]
        result = subprocess.run(
            [sys.executable, "-m", "harness", *map(str, command)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "HARNESS_LOCK_WAIT_S": "0.5"},
            timeout=120,
        )
    assert result.returncode == 75, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"locked by pid {os.getpid()} on {socket.gethostname()}" in lines[0]
    assert "a test holding the dataset" in lines[0] and "nothing written" in lines[0]
    after = small_dataset.manifest_path.read_bytes(), small_dataset.sheet_path.read_bytes()
    assert after == before
    # Released, the same command goes through.
    assert (
        run_cli("dataset", "review", small_dataset.manifest_path, "noisy", "--pending").returncode
        == 0
    )
    assert load_manifest(small_dataset.manifest_path).entry("noisy").status == "pending"


# --- rehearsal sessions on one bundle ------------------------------------------------------


def rehearsal(bundle: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``pytest acceptance/ -m rehearsal`` on ``bundle`` (not waited for)."""
    pytest_args = ["acceptance/", "-m", "rehearsal", f"--bundle={bundle}", "-p", "no:cacheprovider"]
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", *pytest_args, "-q", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def test_a_second_session_on_a_held_bundle_refuses_naming_the_holder(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "summary_idle_v1.json").write_text("left by the session that holds the bundle")
    with exclusive(bundle_lock(bundle, "idle_v1"), "a test holding the bundle"):
        session = rehearsal(bundle, env={"HARNESS_BUNDLE_WAIT_S": "0.5"})
        out, err = session.communicate(timeout=300)
    assert session.returncode == pytest.ExitCode.USAGE_ERROR, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: --bundle={bundle}: "), err
    assert f"locked by pid {os.getpid()} on {socket.gethostname()}" in lines[0]
    assert "(a test holding the bundle)" in lines[0]
    # Nothing of the holder's was touched.
    assert [p.name for p in bundle.iterdir()] == ["summary_idle_v1.json"]
    assert (
        bundle / "summary_idle_v1.json"
    ).read_text() == "left by the session that holds the bundle"


@pytest.mark.slow
def test_two_sessions_started_together_one_passes_the_other_waits_or_refuses(
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "bundle"
    sessions = [rehearsal(bundle), rehearsal(bundle)]
    results = [(s.wait(timeout=900), *s.communicate()) for s in sessions]
    codes = sorted(code for code, _, _ in results)
    assert codes[0] == 0, results
    for code, _, err in results:
        if code != 0:  # refused after waiting: one line, naming the holder
            assert code == pytest.ExitCode.USAGE_ERROR, err
            lines = [line for line in err.splitlines() if line.strip()]
            assert len(lines) == 1 and "locked by pid" in lines[0], err
    report = verify_bundle(bundle)
    assert report.ok, [p.message for p in report.problems]
    assert json.loads(DatasetFiles(bundle, "idle_v1").summary.read_text("utf-8"))["passed"]


def session_processes(tag: str) -> list[int]:
    """Processes whose environment carries ``tag`` (a session and everything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if tag.encode() in environ.split(b"\0"):
                found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    ("after_s", "extra"),
    [(1, ()), (2, ()), (3, ()), (4, ("-n", "2", "--dataset=idle_v1,preflight"))],
    ids=["1s", "2s", "3s", "4s-two-workers"],
)
def test_a_session_killed_leaves_nothing_running_and_the_rerun_passes(
    tmp_path: Path, after_s: float, extra: tuple[str, ...]
) -> None:
    bundle = tmp_path / "bundle"
    tag = f"HARNESS_TEST_SESSION={uuid.uuid4().hex}"
    key, value = tag.split("=")
    session = rehearsal(bundle, *extra, env={key: value})
    time.sleep(after_s)
    session.send_signal(signal.SIGKILL)
    session.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while (left := session_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], f"processes of the killed session still running: {left}"

    rerun = rehearsal(bundle, *extra)
    out, err = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, out[-3000:] + err
    report = verify_bundle(bundle)
    assert report.ok, [p.message for p in report.problems]
