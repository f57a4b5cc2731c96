"""Fixtures for the unit tests: small real datasets built with the project's own tooling."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.datasets.checksums import build_sheet
from harness.datasets.curation import add_capture
from harness.datasets.manifest import Manifest, load_manifest, new_manifest
from harness.datasets.recording import record_capture

REPO = Path(__file__).resolve().parents[1]


IDLE_V1 = REPO / "data" / "bc_datasets"
PREFLIGHT = REPO / "artifacts" / "m5" / "preflight"


@dataclass
class Dataset:
    """A dataset laid out like data/bc_datasets under ``root``."""

    root: Path
    name: str

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifests" / f"{self.name}.json"

    @property
    def sheet_path(self) -> Path:
        return self.root / "checksums" / f"{self.name}.json"

    @property
    def captures(self) -> Path:
        return self.root / "captures" / self.name

    def manifest(self) -> Manifest:
        return load_manifest(self.manifest_path)

    def capture(self, entry_id: str) -> Path:
        m = self.manifest()
        return m.capture_path(m.entry(entry_id))


@pytest.fixture(scope="session")
def _small_dataset_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Recorded once per session: two accepted captures and one rejected, one episode each."""
    root = tmp_path_factory.mktemp("template")
    ds = Dataset(root, "small")
    manifest = new_manifest(ds.manifest_path, "small", "CartPole-v1", ds.captures)
    for cid, noise, seed in (("a", 0.15, 1), ("b", 0.15, 2), ("noisy", 0.9, 3)):
        record_capture(
            ds.captures / f"{cid}.h5",
            "CartPole-v1",
            "heuristic",
            noise=noise,
            episodes=1,
            seed=seed,
        )
        add_capture(manifest, ds.captures / f"{cid}.h5")
    manifest.with_status("a", "accepted", "ok")
    manifest.with_status("b", "accepted", "ok")
    manifest.with_status("noisy", "rejected", "too noisy")
    manifest.save()
    build_sheet(manifest, ds.sheet_path).save()
    return root


@pytest.fixture
def small_dataset(_small_dataset_template: Path, tmp_path: Path) -> Dataset:
    """A fresh copy of the small dataset that a test may damage."""
    root = tmp_path / "datasets"
    shutil.copytree(_small_dataset_template, root)
    return Dataset(root, "small")


def copy_dataset(source: Dataset, root: Path) -> Dataset:
    """A copy of one dataset's manifest, sheet and captures folder under ``root``: only its own
    files, whatever else is registered beside it."""
    copy = Dataset(root, source.name)
    for path in (copy.manifest_path, copy.sheet_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source.manifest_path, copy.manifest_path)
    shutil.copyfile(source.sheet_path, copy.sheet_path)
    shutil.copytree(source.captures, copy.captures)
    return copy


@pytest.fixture
def idle_v1_copy(tmp_path: Path) -> Dataset:
    """A copy of the committed production dataset."""
    return copy_dataset(Dataset(IDLE_V1, "idle_v1"), tmp_path / "bc_datasets")


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``harness`` CLI in a subprocess (``python -m harness``)."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=120,
    )


def call_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``harness.cli.main`` in this process (fast); same result shape as ``run_cli``.

    An exception escaping ``main`` fails the test, as a traceback would fail a user.
    """
    from harness.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse: --help and usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(list(map(str, args)), code, out.getvalue(), err.getvalue())


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """A bad-input failure: exit 2, exactly one line on stderr, no traceback, fragments in it."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
