"""The committed preflight dataset is exactly what 'harness preflight generate' writes."""

from __future__ import annotations

from pathlib import Path

from harness.datasets.registry import resolve

from .conftest import PREFLIGHT, run_cli


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_generate_reproduces_the_committed_dataset(tmp_path: Path) -> None:
    out = tmp_path / "preflight"
    result = run_cli("preflight", "generate", "-o", out)
    assert result.returncode == 0, result.stderr
    assert _files(out) == _files(PREFLIGHT)
    assert run_cli("dataset", "verify", out / "manifests" / "preflight.json").returncode == 0


def test_preflight_is_tiny() -> None:
    assert sum(len(b) for b in _files(PREFLIGHT).values()) < 512 * 1024


def test_name_resolution(tmp_path: Path) -> None:
    assert resolve("preflight").manifest == PREFLIGHT / "manifests" / "preflight.json"
    idle = resolve("idle_v1")
    assert idle.manifest.name == "idle_v1.json" and idle.checksums.parent.name == "checksums"
    # A manifest path: the sheet is found by the layout convention, the name read from the file.
    by_path = resolve(str(PREFLIGHT / "manifests" / "preflight.json"))
    assert (
        by_path.name == "preflight"
        and by_path.checksums == PREFLIGHT / "checksums" / "preflight.json"
    )
