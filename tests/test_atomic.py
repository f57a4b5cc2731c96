"""Atomic writes: a failure leaves the previous file intact and no temporary file behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.atomic import atomic_path, write_json_atomic


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "doc.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"v": 2, "half')
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["doc.json"]


def test_unserialisable_document_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "doc.json"
    with pytest.raises(ValueError):
        write_json_atomic(target, {"x": float("nan")})
    assert os.listdir(tmp_path) == []


def test_killed_writer_never_leaves_half_a_file(tmp_path: Path) -> None:
    """A process killed while writing leaves the old complete file."""
    target = tmp_path / "doc.json"
    write_json_atomic(target, {"v": 1})
    code = textwrap.dedent(f"""
        import sys, time
        from harness.atomic import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "w") as fh:
                fh.write('{{"v": 2, "partial')
                fh.flush()
                print("writing", flush=True)
                time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert json.loads(target.read_text()) == {"v": 1}
