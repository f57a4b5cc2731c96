"""The checkpoint store: promotion moves one pointer atomically, a failed gate writes nothing.

Payloads are arbitrary bytes here: the store never looks inside them (and never imports torch).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
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
    checkpoint_document,
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
    assert list(document)[:4] == ["schema_version", "id", "stage", "files"]
    assert document["id"] == checkpoint_id(document) == ckpt.id
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


def _id(stage: str, files: dict[str, bytes], meta: dict[str, Any] = META) -> str:
    return checkpoint_document(stage, files, meta)["id"]


def test_same_content_gives_the_same_id_and_readding_changes_nothing(
    store: CheckpointStore,
) -> None:
    first = store.add("bc", WEIGHTS, META)
    before = store.snapshot()
    again = store.add("bc", dict(reversed(WEIGHTS.items())), dict(reversed(META.items())))
    assert again == first  # the same payloads and metadata, in any order: the same checkpoint
    assert store.snapshot() == before
    assert _id("bc", WEIGHTS) == first.id
    assert re.fullmatch(r"bc-[0-9a-f]{12}", first.id)
    # The same weights with other metadata are another checkpoint: the id covers both.
    other = store.add("bc", WEIGHTS, {**META, "seed": 7})
    assert other.id != first.id and load_checkpoint(first.path) == first


@pytest.mark.parametrize(
    ("other", "meta"),
    [
        (("bc", {"policy.pt": b"\x80\x02weights-onE", "optim.pt": b"optimiser state"}), META),
        (("bc", {"model.pt": WEIGHTS["policy.pt"], "optim.pt": WEIGHTS["optim.pt"]}), META),
        (("bc", {"policy.pt": WEIGHTS["policy.pt"]}), META),
        (("ppo", WEIGHTS), META),
        (("bc", WEIGHTS), {**META, "metrics": {"accuracy": 0.91}}),
        (("bc", WEIGHTS), {**META, "dataset": "other"}),
        (("bc", WEIGHTS), {**META, "parent": "bc-0123456789ab"}),
        (("bc", WEIGHTS), {**META, "policy": {"obs_dim": 4, "n_actions": 2}}),
    ],
    ids=["bytes", "name", "files", "stage", "metrics", "dataset", "parent", "policy"],
)
def test_different_content_gives_a_different_id(
    other: tuple[str, dict[str, bytes]], meta: dict[str, Any]
) -> None:
    assert _id(*other, meta) != _id("bc", WEIGHTS)


def test_names_and_bytes_are_framed_unambiguously() -> None:
    assert _id("bc", {"ab": b"c"}) != _id("bc", {"a": b"bc"})
    assert _id("bc", {"a": b"", "b": b"x"}) != _id("bc", {"a": b"b", "x": b""})


def test_a_damaged_checkpoint_with_the_same_id_is_not_reused(store: CheckpointStore) -> None:
    ckpt = store.add("bc", WEIGHTS, META)
    ckpt.file("policy.pt").write_bytes(b"\x80\x02weights-onE")
    with pytest.raises(CheckpointError) as info:
        store.add("bc", WEIGHTS, META)
    _one_line(info, f"{ckpt.file('policy.pt')}: sha256 mismatch")


# --- rollback: a failed gate never writes into the store --------------------------------------


def test_a_reader_waits_while_the_store_is_held_and_then_reads_what_was_put_in(
    tmp_path: Path, promoted_store: CheckpointStore
) -> None:
    # The rehearsal starts its drill with an empty, held store and seeds it afterwards: the
    # drill's process must read the seeded pointer, never the empty store it found first.
    held = CheckpointStore(tmp_path / "held")
    held.root.mkdir()
    code = textwrap.dedent(
        f"""
        import sys
        from harness.training.checkpoints import CheckpointStore
        print("reading", flush=True)
        promoted = CheckpointStore({str(held.root)!r}).promoted()
        print(promoted.id if promoted else None, flush=True)
        """
    )
    with held.hold():
        reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert reader.stdout is not None
        assert reader.stdout.readline() == "reading\n"
        time.sleep(0.5)  # time enough to have read an empty store, were it not held
        assert reader.poll() is None  # still waiting on the lock
        shutil.copytree(promoted_store.root, held.root, dirs_exist_ok=True)
    out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0
    assert out.strip() == promoted_store.promoted().id


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
    assert not (promoted_store.checkpoints_dir / _id("bc", OTHER)).exists()
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
        (lambda p: (p.unlink(), p.symlink_to("/etc/hostname")), "payload file is a link"),
        (lambda p: (p.unlink(), os.mkfifo(p)), "cannot read payload file: not a regular file"),
    ],
    ids=["truncated", "missing", "folder", "link", "fifo"],
)
def test_damaged_payloads_are_named(store: CheckpointStore, damage, message: str) -> None:
    ckpt = store.add("bc", WEIGHTS, META)
    damage(ckpt.file("policy.pt"))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(ckpt.path)
    assert message in _one_line(info, f"{ckpt.file('policy.pt')}: ")


def test_rewritten_metadata_is_caught_by_the_id(store: CheckpointStore) -> None:
    """Swapping the weights and fixing up their sha256 still fails: the id covers them."""
    ckpt = store.add("bc", WEIGHTS, META)
    ckpt.file("policy.pt").write_bytes(b"swapped weights")
    document = copy.deepcopy(ckpt.meta)
    swapped = {"sha256": hashlib.sha256(b"swapped weights").hexdigest(), "bytes": 15}
    document["files"]["policy.pt"] = swapped
    (ckpt.path / "checkpoint.json").write_text(json.dumps(document))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(ckpt.path)
    assert "does not match its content" in _one_line(info, f"{ckpt.path}/checkpoint.json: ")


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
        (lambda d: d.pop("files"), "(top level)"),
        (lambda d: d.update(schema_version=1), "schema_version"),
        (lambda d: d.update(config_hash="abc"), "config_hash"),
        (lambda d: d.update(metrics=[0.9]), "metrics"),
        (lambda d: d.update(id="bc-XYZ"), "id"),
        (lambda d: d["files"]["policy.pt"].update(extra=1), "files.policy.pt.extra"),
        (lambda d: d["files"]["policy.pt"].update(bytes=-1), "files.policy.pt.bytes"),
        (lambda d: d["files"]["policy.pt"].update(bytes=1 << 40), "files.policy.pt.bytes"),
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


def test_list_is_oldest_first_then_by_id(store: CheckpointStore) -> None:
    added = [store.add("bc", {"policy.pt": bytes([i])}, {}) for i in range(3)]
    now = time.time()
    for checkpoint, age in zip(added, (100, 200, 200), strict=True):
        os.utime(checkpoint.path / "checkpoint.json", (now - age, now - age))
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


# --- the id covers the metadata; links, FIFOs and huge files are refused unread -----------------


def _rewrite_meta(ckpt: Checkpoint, change, fix_id: bool = False) -> None:
    """Edit ``checkpoint.json`` by hand; with ``fix_id``, as a forger would: id recomputed."""
    document = copy.deepcopy(ckpt.meta)
    change(document)
    if fix_id:
        document["id"] = checkpoint_id(document)
    (ckpt.path / "checkpoint.json").write_text(json.dumps(document, indent=2))


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(policy={"obs_dim": 4, "n_actions": 3, "hidden_sizes": [64]}),
        lambda d: d["metrics"].update(accuracy=0.99),
        lambda d: d.update(dataset="idle_v1"),
        lambda d: d.update(parent="bc-0123456789ab"),
        lambda d: d.update(seed=1),
        lambda d: d.update(note="added"),
        lambda d: d.pop("config_hash"),
    ],
    ids=["policy", "metrics", "dataset", "parent", "seed", "added-key", "removed-key"],
)
def test_an_edited_checkpoint_json_is_refused(promoted_store: CheckpointStore, change) -> None:
    ckpt = promoted_store.promoted()
    _rewrite_meta(ckpt, change)
    meta_path = ckpt.path / "checkpoint.json"
    for read in (lambda: load_checkpoint(ckpt.path, verify=False), promoted_store.promoted):
        with pytest.raises(CheckpointError) as info:
            read()
        message = _one_line(info, f"{meta_path}: id '{ckpt.id}' does not match its content")
        assert message.endswith("the file was edited")


def test_a_forged_id_no_longer_names_the_folder(promoted_store: CheckpointStore) -> None:
    """Recomputing the id after an edit gives another id: the folder, the pointer and the
    records still name the old one."""
    ckpt = promoted_store.promoted()
    _rewrite_meta(ckpt, lambda d: d["metrics"].update(accuracy=0.99), fix_id=True)
    with pytest.raises(CheckpointError, match="does not match its folder name"):
        promoted_store.promoted()


@pytest.mark.parametrize("where", ["folder", "checkpoint.json", "promoted.json", "checkpoints"])
def test_links_in_the_store_are_refused(
    promoted_store: CheckpointStore, tmp_path: Path, where: str
) -> None:
    """A link is refused wherever it leads, here to an exact copy outside the store."""
    ckpt = promoted_store.promoted()
    outside = tmp_path / "outside"
    shutil.copytree(promoted_store.root, outside)
    place = {
        "folder": ckpt.path,
        "checkpoint.json": ckpt.path / "checkpoint.json",
        "promoted.json": promoted_store.pointer,
        "checkpoints": promoted_store.root / "checkpoints",
    }[where]
    target = outside / place.relative_to(promoted_store.root)
    (shutil.rmtree if place.is_dir() else os.unlink)(place)
    place.symlink_to(target, target_is_directory=target.is_dir())
    with pytest.raises(CheckpointError) as info:
        promoted_store.promoted()
    assert "is a link" in _one_line(info, "")


def test_a_fifo_or_dev_zero_in_place_of_promoted_json_is_refused(
    promoted_store: CheckpointStore,
) -> None:
    signal.alarm(20)  # a reader that blocked on the FIFO would fail here, not hang the suite
    try:
        promoted_store.pointer.unlink()
        os.mkfifo(promoted_store.pointer)
        with pytest.raises(CheckpointError, match="not a regular file"):
            promoted_store.promoted()
        promoted_store.pointer.unlink()
        promoted_store.pointer.symlink_to("/dev/zero")
        with pytest.raises(CheckpointError, match="is a link"):
            promoted_store.promoted()
    finally:
        signal.alarm(0)


def test_a_huge_sparse_payload_is_refused_by_its_size_before_it_is_read(
    promoted_store: CheckpointStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = promoted_store.promoted()
    payload = ckpt.file("policy.pt")
    with open(payload, "r+b") as fh:
        fh.truncate(8 << 30)  # 8 GiB, sparse: nothing on disk

    real_fdopen = os.fdopen

    def no_reading(fd: int, *args: Any, **kwargs: Any) -> Any:
        if os.readlink(f"/proc/self/fd/{fd}") == str(payload):
            raise AssertionError("the payload was opened for reading before its size was checked")
        return real_fdopen(fd, *args, **kwargs)

    with monkeypatch.context() as patch, pytest.raises(CheckpointError) as info:
        patch.setattr(os, "fdopen", no_reading)
        promoted_store.promoted()
    assert _one_line(info, f"{payload}: size mismatch (expected 13 bytes, found 8589934592)")
    # A forged checkpoint.json that records the huge size is refused by its schema.
    _rewrite_meta(ckpt, lambda d: d["files"]["policy.pt"].update(bytes=8 << 30), fix_id=True)
    with pytest.raises(SchemaError, match=r"files\.policy\.pt\.bytes"):
        load_checkpoint(ckpt.path)


def test_checkpoint_payload_reads_after_its_checks(store: CheckpointStore) -> None:
    ckpt = store.add("bc", WEIGHTS, META)
    assert ckpt.payload("policy.pt") == WEIGHTS["policy.pt"]
    ckpt.file("policy.pt").write_bytes(b"\x80\x02weights-onE")  # same size, other bytes
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        ckpt.payload("policy.pt")
