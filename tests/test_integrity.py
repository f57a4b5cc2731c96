"""Integrity verification: every kind of damage is found, named, and reported together."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.datasets.checksums import load_sheet
from harness.datasets.integrity import verify
from harness.hashing import hash_files, sha256_file
from harness.validation import schema_problems

from .conftest import Dataset


def _verify(ds: Dataset):
    return verify(ds.manifest(), load_sheet(ds.sheet_path))


def _kinds(report) -> list[tuple[str, str | None]]:
    return [(p.kind, p.entry) for p in report.problems]


def test_intact_dataset_verifies(small_dataset: Dataset) -> None:
    report = _verify(small_dataset)
    assert report.ok, report.problems
    assert sorted(c["id"] for c in report.checked) == ["a", "b"]
    assert schema_problems(report.to_json(), "verify_report") == []


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_single_byte_change_is_detected(small_dataset: Dataset, data: st.DataObject) -> None:
    entry = data.draw(st.sampled_from(["a", "b"]), label="entry")
    path = small_dataset.capture(entry)
    original = path.read_bytes()
    offset = data.draw(st.integers(0, len(original) - 1), label="offset")
    xor = data.draw(st.integers(1, 255), label="xor")
    damaged = bytearray(original)
    damaged[offset] ^= xor
    path.write_bytes(bytes(damaged))
    try:
        report = _verify(small_dataset)
        assert _kinds(report) == [("digest_mismatch", entry)]
        assert f"'{entry}'" in report.problems[0].message
        assert path.name in report.problems[0].message
    finally:
        path.write_bytes(original)


def test_truncated_capture_is_a_size_mismatch(small_dataset: Dataset) -> None:
    path = small_dataset.capture("a")
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - 100)
    report = _verify(small_dataset)
    assert _kinds(report) == [("size_mismatch", "a")]
    assert report.problems[0].expected == size and report.problems[0].found == size - 100


def test_missing_capture_is_reported(small_dataset: Dataset) -> None:
    small_dataset.capture("b").unlink()
    report = _verify(small_dataset)
    assert _kinds(report) == [("file_missing", "b")]
    assert [c["id"] for c in report.checked] == ["a"]


def test_extra_file_in_captures_folder_is_reported(small_dataset: Dataset) -> None:
    shutil.copy(small_dataset.capture("a"), small_dataset.captures / "stray.h5")
    report = _verify(small_dataset)
    assert [p.kind for p in report.problems] == ["unexpected_file"]
    assert "stray.h5" in report.problems[0].message


def test_every_problem_is_reported_at_once(small_dataset: Dataset) -> None:
    small_dataset.capture("a").unlink()
    with open(small_dataset.capture("b"), "ab") as fh:
        fh.write(b"x")
    (small_dataset.captures / "stray.bin").write_bytes(b"junk")
    report = _verify(small_dataset)
    assert sorted(p.kind for p in report.problems) == [
        "file_missing",
        "size_mismatch",
        "unexpected_file",
    ]


def test_accepted_entry_absent_from_sheet(small_dataset: Dataset) -> None:
    doc = json.loads(small_dataset.sheet_path.read_text())
    del doc["entries"]["b"]
    small_dataset.sheet_path.write_text(json.dumps(doc))
    assert _kinds(_verify(small_dataset)) == [("not_in_sheet", "b")]


def test_sheet_entry_that_is_not_accepted(small_dataset: Dataset) -> None:
    doc = json.loads(small_dataset.sheet_path.read_text())
    noisy = small_dataset.capture("noisy")
    doc["entries"]["noisy"] = {
        "path": "noisy.h5",
        "sha256": sha256_file(noisy).sha256,
        "bytes": noisy.stat().st_size,
    }
    small_dataset.sheet_path.write_text(json.dumps(doc))
    report = _verify(small_dataset)
    assert _kinds(report) == [("not_accepted", "noisy")]
    assert "rejected" in report.problems[0].message


def test_sheet_digest_case_is_normalised(small_dataset: Dataset) -> None:
    doc = json.loads(small_dataset.sheet_path.read_text())
    for e in doc["entries"].values():
        e["sha256"] = e["sha256"].upper()
    small_dataset.sheet_path.write_text(json.dumps(doc))
    assert _verify(small_dataset).ok


def test_read_error_is_unreadable_not_a_mismatch(tmp_path: Path) -> None:
    folder = tmp_path / "a_folder"
    folder.mkdir()
    good = tmp_path / "good"
    good.write_bytes(b"abc")
    results = hash_files([folder, good], jobs=2)
    assert isinstance(results[0], OSError)
    assert results[1].sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("jobs", [1, 2, 4])
def test_parallel_hashing_matches_serial(tmp_path: Path, jobs: int) -> None:
    paths = []
    for i in range(5):
        p = tmp_path / f"f{i}"
        p.write_bytes(os.urandom(1 << 20) * (i + 1) + bytes([i]))
        paths.append(p)
    serial = hash_files(paths, jobs=1)
    assert hash_files(paths, jobs=jobs) == serial
    assert [d.bytes for d in serial] == [(1 << 20) * (i + 1) + 1 for i in range(5)]


def test_sheet_of_another_dataset_and_unknown_sheet_entry(small_dataset: Dataset) -> None:
    doc = json.loads(small_dataset.sheet_path.read_text())
    doc["dataset"] = "other"
    doc["entries"]["ghost"] = dict(doc["entries"]["a"], path="ghost.h5")
    small_dataset.sheet_path.write_text(json.dumps(doc))
    report = _verify(small_dataset)
    assert _kinds(report) == [("dataset_mismatch", None), ("not_accepted", "ghost")]
    assert "the manifest has no such entry" in report.problems[1].message
    assert schema_problems(report.to_json(), "verify_report") == []
