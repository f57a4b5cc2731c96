"""The checkpoint store: promotion moves one pointer atomically, a failed gate writes nothing.

Payloads are arbitrary bytes here: the store never looks inside them (and never imports torch).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError, SchemaError
from harness.training import checkpoints
from harness.training.checkpoints import (
    Checkpoint,
    CheckpointError,
    CheckpointStore,
    checkpoint_id,
    load_checkpoint,
    write_checkpoint,
)
from harness.validation import schema_problems

WEIGHTS = {"policy.pt": b"\x80\x02weights-one", "optim.pt": b"optimiser state"}
OTHER = {"policy.pt": b"\x80\x02weights-two"}
META: dict[str, Any] = {
    "dataset": "small",
    "seed": 0,
    "config_hash": "ab" * 32,
    "metrics": {"accuracy": 0.9},
    "parent": None,
}
GATE = {"stage": "bc", "accuracy": 0.9, "threshold": 0.8}


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "store")


@pytest.fixture
def promoted_store(store: CheckpointStore) -> CheckpointStore:
    """A store that already holds a promoted checkpoint, as the rollback drill needs."""
    store.promote(store.add("bc", WEIGHTS, META), GATE)
    return store


def _pointer(store: CheckpointStore) -> dict[str, Any]:
    return json.loads(store.pointer.read_text())


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def _one_line(exc: pytest.ExceptionInfo[BaseException], prefix: str) -> str:
    message = str(exc.value)
    assert "\n" not in message and message.startswith(prefix), message
    return message


# --- promotion -------------------------------------------------------------------------------


def test_add_then_promote_writes_a_valid_pointer(store: CheckpointStore) -> None:
    assert store.promoted() is None
    ckpt = store.add("bc", WEIGHTS, META)
    assert store.promoted() is None  # adding is not promoting
    store.promote(ckpt, GATE)

    pointer = _pointer(store)
    assert schema_problems(pointer, "promoted") == []
    assert pointer["checkpoint"] == ckpt.id and pointer["stage"] == "bc"
    assert pointer["path"] == f"checkpoints/{ckpt.id}"
    assert pointer["gate"] == GATE and pointer["previous"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", pointer["promoted_at"])
    assert store.promoted() == ckpt
    assert (store.root / pointer["path"]) == ckpt.path


def test_promotions_chain_their_previous(store: CheckpointStore) -> None:
    first, second = store.add("bc", WEIGHTS, META), store.add("bc", OTHER, META)
    store.promote(first, GATE)
    store.promote(second, GATE)
    assert _pointer(store)["previous"] == first.id
    assert store.promoted() == second
    store.promote(first, GATE)
    assert _pointer(store)["previous"] == second.id
    # Promoting the promoted checkpoint again writes nothing (a deterministic rerun leaves the
    # store as it was) and never makes the chain point at itself.
    before = store.snapshot()
    store.promote(first, {"stage": "bc", "rerun": True})
    assert store.snapshot() == before
    assert _pointer(store)["previous"] == second.id
    assert _pointer(store)["gate"] == GATE


def test_checkpoint_json_layout(store: CheckpointStore) -> None:
    ckpt = store.add("bc", WEIGHTS, META)
    assert ckpt.path == store.root / "checkpoints" / ckpt.id
    assert sorted(os.listdir(ckpt.path)) == ["checkpoint.json", "optim.pt", "policy.pt"]
    document = json.loads((ckpt.path / "checkpoint.json").read_text())
    assert document == ckpt.meta
    assert list(document)[:5] == ["schema_version", "id", "stage", "created", "files"]
    assert document["files"] == {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for name, data in WEIGHTS.items()
    }
    assert {k: document[k] for k in META} == META
    assert schema_problems(document, "checkpoint") == []
    assert ckpt.stage == "bc" and ckpt.file("policy.pt").read_bytes() == WEIGHTS["policy.pt"]
    with pytest.raises(KeyError, match=r"model\.pt"):
        ckpt.file("model.pt")


def test_promote_refuses_a_checkpoint_from_elsewhere(
    promoted_store: CheckpointStore, tmp_path: Path
) -> None:
    before = promoted_store.snapshot()
    outside = write_checkpoint(tmp_path / "elsewhere", "bc", OTHER, META)
    with pytest.raises(ValueError, match="not in the store"):
        promoted_store.promote(outside, GATE)
    assert promoted_store.snapshot() == before


# --- content addressing ----------------------------------------------------------------------


def test_same_bytes_give_the_same_id_and_readding_changes_nothing(store: CheckpointStore) -> None:
    first = store.add("bc", WEIGHTS, META)
    before = store.snapshot()
    again = store.add("bc", dict(reversed(WEIGHTS.items())), {**META, "seed": 7})
    assert again == first  # the first write's metadata is kept, not rewritten
    assert store.snapshot() == before
    assert checkpoint_id("bc", WEIGHTS) == first.id
    assert re.fullmatch(r"bc-[0-9a-f]{12}", first.id)


@pytest.mark.parametrize(
    "other",
    [
        ("bc", {"policy.pt": b"\x80\x02weights-onE", "optim.pt": b"optimiser state"}),
        ("bc", {"model.pt": WEIGHTS["policy.pt"], "optim.pt": WEIGHTS["optim.pt"]}),
        ("bc", {"policy.pt": WEIGHTS["policy.pt"]}),
        ("ppo", WEIGHTS),
    ],
    ids=["bytes", "name", "files", "stage"],
)
def test_different_content_gives_a_different_id(other: tuple[str, dict[str, bytes]]) -> None:
    assert checkpoint_id(*other) != checkpoint_id("bc", WEIGHTS)


def test_names_and_bytes_are_framed_unambiguously() -> None:
    assert checkpoint_id("bc", {"ab": b"c"}) != checkpoint_id("bc", {"a": b"bc"})
    assert checkpoint_id("bc", {"a": b"", "b": b"x"}) != checkpoint_id("bc", {"a": b"b", "x": b""})


def test_a_damaged_checkpoint_with_the_same_id_is_not_reused(store: CheckpointStore) -> None:
    ckpt = store.add("bc", WEIGHTS, META)
    ckpt.file("policy.pt").write_bytes(b"\x80\x02weights-onE")
    with pytest.raises(CheckpointError) as info:
        store.add("bc", WEIGHTS, META)
    _one_line(info, f"{ckpt.file('policy.pt')}: sha256 mismatch")


# --- rollback: a failed gate never writes into the store --------------------------------------


def test_set_aside_leaves_every_byte_of_the_store_unchanged(
    promoted_store: CheckpointStore, tmp_path: Path
) -> None:
    before = promoted_store.snapshot()
    pointer_before = promoted_store.pointer.read_bytes()
    assert len(before) == 4  # promoted.json + checkpoint.json + two payloads

    quarantine = tmp_path / "logs" / "rejected"
    rejected = promoted_store.set_aside(quarantine, "bc", OTHER, {**META, "metrics": {"a": 0.1}})

    assert promoted_store.snapshot() == before
    assert promoted_store.pointer.read_bytes() == pointer_before
    assert rejected.path == quarantine / rejected.id
    assert load_checkpoint(rejected.path) == rejected
    assert rejected.meta["metrics"] == {"a": 0.1}
    assert [c.id for c in promoted_store.list()] == [promoted_store.promoted().id]


def test_set_aside_on_an_empty_store_creates_nothing(
    store: CheckpointStore, tmp_path: Path
) -> None:
    store.set_aside(tmp_path / "rejected", "bc", WEIGHTS, META)
    assert not store.root.exists() and store.snapshot() == {}


def test_set_aside_refuses_a_quarantine_inside_the_store(promoted_store: CheckpointStore) -> None:
    before = promoted_store.snapshot()
    with pytest.raises(ValueError, match="inside the store"):
        promoted_store.set_aside(promoted_store.root / "rejected", "bc", OTHER, META)
    assert promoted_store.snapshot() == before


def test_reading_a_store_never_writes(promoted_store: CheckpointStore, tmp_path: Path) -> None:
    missing = CheckpointStore(tmp_path / "nowhere")
    assert missing.promoted() is None and missing.list() == [] and missing.snapshot() == {}
    assert not missing.root.exists()

    def tree() -> list[tuple[str, int]]:
        paths = [promoted_store.root, *promoted_store.root.rglob("*")]
        return sorted((str(p), p.lstat().st_mtime_ns) for p in paths)

    # Back-date everything, so that any write (even one creating nothing) would show in mtimes.
    for path in [promoted_store.root, *promoted_store.root.rglob("*")]:
        _age(path, 100)
    before = tree()
    again = CheckpointStore(promoted_store.root)
    assert again.promoted() is not None and again.list(verify=True) and again.snapshot()
    assert tree() == before


# --- crash safety ------------------------------------------------------------------------------


def test_a_crash_while_promoting_keeps_the_old_pointer(
    promoted_store: CheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = promoted_store.promoted()
    candidate = promoted_store.add("bc", OTHER, META)
    before = promoted_store.snapshot()
    pointer_before = promoted_store.pointer.read_bytes()

    def crash(*_args: Any) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        promoted_store.promote(candidate, GATE)
    monkeypatch.undo()

    assert promoted_store.pointer.read_bytes() == pointer_before
    assert promoted_store.snapshot() == before  # no temp file left either
    assert sorted(os.listdir(promoted_store.root)) == ["checkpoints", "promoted.json"]
    assert promoted_store.promoted() == old


def test_a_crash_while_writing_a_checkpoint_leaves_no_folder(
    promoted_store: CheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = promoted_store.snapshot()
    listing = sorted(os.listdir(promoted_store.checkpoints_dir))

    def crash(*_args: Any) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(OSError, match="simulated crash"):
        promoted_store.add("bc", OTHER, META)
    monkeypatch.undo()

    assert sorted(os.listdir(promoted_store.checkpoints_dir)) == listing
    assert not (promoted_store.checkpoints_dir / checkpoint_id("bc", OTHER)).exists()
    assert promoted_store.snapshot() == before


def test_unserialisable_metadata_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_checkpoint(tmp_path / "ckpts", "bc", WEIGHTS, {"metrics": {"loss": float("nan")}})
    with pytest.raises(SchemaError, match="config_hash"):
        write_checkpoint(tmp_path / "ckpts", "bc", WEIGHTS, {"config_hash": "abc"})
    assert not (tmp_path / "ckpts").exists()


def test_a_killed_writer_leaves_only_a_hidden_temp_folder(store: CheckpointStore) -> None:
    """SIGKILL at the worst moment: every file written and fsynced, the folder not yet renamed."""
    code = textwrap.dedent(f"""
        import os, signal
        from harness.training.checkpoints import CheckpointStore
        os.rename = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
        CheckpointStore({str(store.root)!r}).add("bc", {{"policy.pt": b"w"}}, {{}})
    """)
    proc = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == -signal.SIGKILL

    (leftover,) = store.checkpoints_dir.iterdir()
    assert leftover.name.startswith(".tmp-bc-") and (leftover / "checkpoint.json").is_file()
    assert store.list() == [] and store.promoted() is None


def test_stale_temp_folders_are_ignored_then_cleaned_by_the_next_add(
    promoted_store: CheckpointStore,
) -> None:
    stale = promoted_store.checkpoints_dir / ".tmp-bc-0123456789ab-dead"
    stale.mkdir()
    (stale / "policy.pt").write_bytes(b"half")
    _age(stale, checkpoints.STALE_TEMP_SECONDS + 60)
    fresh = promoted_store.checkpoints_dir / ".tmp-bc-ba9876543210-live"
    fresh.mkdir()  # a writer that may still be running: left alone

    promoted = promoted_store.promoted()
    assert [c.id for c in promoted_store.list()] == [promoted.id]
    assert "checkpoints/.tmp-bc-0123456789ab-dead/policy.pt" in promoted_store.snapshot()

    added = promoted_store.add("bc", OTHER, META)
    assert not stale.exists() and fresh.is_dir()
    assert sorted(p.name for p in promoted_store.checkpoints_dir.iterdir()) == sorted(
        [fresh.name, promoted.id, added.id]
    )


# --- corruption and bad input ----------------------------------------------------------------


def test_a_flipped_byte_is_named_in_one_line(store: CheckpointStore) -> None:
    ckpt = store.add("bc", WEIGHTS, META)
    payload = ckpt.file("policy.pt")
    data = bytearray(payload.read_bytes())
    data[3] ^= 0x01
    payload.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(ckpt.path)
    message = _one_line(info, f"{payload}: sha256 mismatch (expected ")
    assert re.fullmatch(
        rf"{re.escape(str(payload))}: sha256 mismatch \(expected [0-9a-f]{{64}}, found [0-9a-f]{{64}}\)",
        message,
    )
    assert load_checkpoint(ckpt.path, verify=False).id == ckpt.id  # metadata alone still reads


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(b"short"), "size mismatch (expected 13 bytes, found 5)"),
        (lambda p: p.unlink(), "payload file missing"),
        (lambda p: (p.unlink(), p.mkdir()), "cannot read payload"),
        (lambda p: (p.unlink(), p.symlink_to("/etc/hostname")), "payload is a link"),
    ],
    ids=["truncated", "missing", "folder", "link"],
)
def test_damaged_payloads_are_named(store: CheckpointStore, damage, message: str) -> None:
    ckpt = store.add("bc", WEIGHTS, META)
    damage(ckpt.file("policy.pt"))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(ckpt.path)
    assert message in _one_line(info, f"{ckpt.file('policy.pt')}: ")


def test_rewritten_metadata_is_caught_by_the_id(store: CheckpointStore) -> None:
    """Swapping the weights and fixing up their sha256 still fails: the id is over the bytes."""
    ckpt = store.add("bc", WEIGHTS, META)
    ckpt.file("policy.pt").write_bytes(b"swapped weights")
    document = copy.deepcopy(ckpt.meta)
    swapped = {"sha256": hashlib.sha256(b"swapped weights").hexdigest(), "bytes": 15}
    document["files"]["policy.pt"] = swapped
    (ckpt.path / "checkpoint.json").write_text(json.dumps(document))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(ckpt.path)
    assert "does not match its payload files" in _one_line(info, f"{ckpt.path}/checkpoint.json: ")


def test_a_renamed_checkpoint_folder_is_refused(store: CheckpointStore) -> None:
    ckpt = store.add("bc", WEIGHTS, META)
    moved = ckpt.path.with_name("bc-000000000000")
    ckpt.path.rename(moved)
    with pytest.raises(CheckpointError, match="does not match its folder name"):
        load_checkpoint(moved)


def test_a_damaged_promoted_checkpoint_is_refused(promoted_store: CheckpointStore) -> None:
    payload = promoted_store.promoted().file("policy.pt")
    payload.write_bytes(payload.read_bytes()[::-1])
    with pytest.raises(CheckpointError) as info:
        promoted_store.promoted()
    _one_line(info, f"{payload}: sha256 mismatch")


def test_a_pointer_to_a_missing_checkpoint_names_promoted_json(
    promoted_store: CheckpointStore,
) -> None:
    ckpt = promoted_store.promoted()
    for path in sorted(ckpt.path.iterdir()):
        path.unlink()
    ckpt.path.rmdir()
    with pytest.raises(CheckpointError) as info:
        promoted_store.promoted()
    assert f"'{ckpt.id}' is missing" in _one_line(info, f"{promoted_store.pointer}: ")


@pytest.mark.parametrize(
    ("text", "error", "fragment"),
    [
        ("{not json", HarnessError, "not valid JSON"),
        ("", HarnessError, "not valid JSON"),
        ('{"schema_version": 1}', SchemaError, "(top level)"),
    ],
)
def test_an_unreadable_pointer_is_one_line_naming_it(
    promoted_store: CheckpointStore, text: str, error: type[Exception], fragment: str
) -> None:
    promoted_store.pointer.write_text(text)
    with pytest.raises(error) as info:
        promoted_store.promoted()
    assert fragment in _one_line(info, f"{promoted_store.pointer}: ")
    with pytest.raises(error):  # nor does a new promotion paper over it
        promoted_store.promote(promoted_store.add("bc", OTHER, META), GATE)
    assert promoted_store.pointer.read_text() == text


def test_an_inconsistent_pointer_is_refused(promoted_store: CheckpointStore) -> None:
    pointer = _pointer(promoted_store)
    other = promoted_store.add("bc", OTHER, META)
    promoted_store.pointer.write_text(json.dumps({**pointer, "path": f"checkpoints/{other.id}"}))
    with pytest.raises(CheckpointError, match=r"path 'checkpoints/bc-\w+' does not match"):
        promoted_store.promoted()
    promoted_store.pointer.write_text(json.dumps({**pointer, "stage": "ppo"}))
    with pytest.raises(CheckpointError, match="stage 'ppo' does not match"):
        promoted_store.promoted()


@pytest.mark.parametrize(
    ("stage", "files", "meta", "message"),
    [
        ("b/c", WEIGHTS, {}, "invalid checkpoint stage"),
        (".bc", WEIGHTS, {}, "invalid checkpoint stage"),
        ("bc", {}, {}, "at least one payload"),
        ("bc", {"checkpoint.json": b"x"}, {}, "invalid payload file name"),
        ("bc", {"../policy.pt": b"x"}, {}, "invalid payload file name"),
        ("bc", {".hidden": b"x"}, {}, "invalid payload file name"),
        ("bc", WEIGHTS, {"id": "mine", "files": {}}, "may not set id, files"),
    ],
)
def test_misuse_is_a_value_error_and_writes_nothing(
    tmp_path: Path, stage: str, files: dict[str, bytes], meta: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        write_checkpoint(tmp_path / "ckpts", stage, files, meta)
    assert not (tmp_path / "ckpts").exists()


# --- schemas and listing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d.pop("created"), "(top level)"),
        (lambda d: d.update(created="2024-01-01 10:00"), "created"),
        (lambda d: d.update(config_hash="abc"), "config_hash"),
        (lambda d: d.update(metrics=[0.9]), "metrics"),
        (lambda d: d.update(id="bc-XYZ"), "id"),
        (lambda d: d["files"]["policy.pt"].update(extra=1), "files.policy.pt.extra"),
        (lambda d: d["files"]["policy.pt"].update(bytes=-1), "files.policy.pt.bytes"),
        (lambda d: d["files"].update({"../x": d["files"]["policy.pt"]}), "files"),
        (lambda d: d["files"].update({"checkpoint.json": d["files"]["policy.pt"]}), "files"),
    ],
)
def test_checkpoint_schema_rejects(store: CheckpointStore, change, key: str) -> None:
    document = copy.deepcopy(store.add("bc", WEIGHTS, META).meta)
    change(document)
    problems = schema_problems(document, "checkpoint")
    assert problems and problems[0].startswith(f"{key}:"), problems


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d.update(surprise=True), "surprise"),
        (lambda d: d.pop("previous"), "(top level)"),
        (lambda d: d.update(path="../../elsewhere"), "path"),
        (lambda d: d.update(gate="passed"), "gate"),
        (lambda d: d.update(previous="latest"), "previous"),
        (lambda d: d.update(schema_version=2), "schema_version"),
    ],
)
def test_pointer_schema_rejects(promoted_store: CheckpointStore, change, key: str) -> None:
    document = _pointer(promoted_store)
    change(document)
    problems = schema_problems(document, "promoted")
    assert problems and problems[0].startswith(f"{key}:"), problems


def test_list_is_oldest_first_then_by_id(
    store: CheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamps = iter(["2024-05-02T00:00:00Z", "2024-05-01T00:00:00Z", "2024-05-01T00:00:00Z"])
    monkeypatch.setattr(checkpoints, "utc_now", lambda: next(stamps))
    added = [store.add("bc", {"policy.pt": bytes([i])}, {}) for i in range(3)]
    later, *same_time = added
    expected = [*sorted(same_time, key=lambda c: c.id), later]
    assert store.list() == expected == store.list(verify=True)
    assert all(isinstance(c, Checkpoint) for c in expected)


def test_snapshot_keys_are_sorted_posix_paths_and_include_hidden_files(
    promoted_store: CheckpointStore,
) -> None:
    (promoted_store.root / ".hidden").write_text("x")
    snap = promoted_store.snapshot()
    assert list(snap) == sorted(snap) and ".hidden" in snap and "promoted.json" in snap
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in snap.values())
    ckpt = promoted_store.promoted()
    assert f"checkpoints/{ckpt.id}/policy.pt" in snap


def test_the_store_does_not_import_torch() -> None:
    """Payloads arrive as bytes: reading and writing the store must not pull in the trainer."""
    code = "import sys, harness.training.checkpoints; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
