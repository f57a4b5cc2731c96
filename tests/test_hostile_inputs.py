"""Hostile files are refused in seconds, in bounded memory, with one line: FIFOs and devices
where a file is expected, oversized and deeply nested JSON, YAML alias bombs, HDF5 captures
declaring more than they store, NaN or inf in captures, and config sizes beyond their maxima."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from harness.config import config_from_document, load_config
from harness.datasets.capture import Episode, read_capture, write_capture
from harness.datasets.checksums import build_sheet, load_sheet
from harness.datasets.manifest import load_manifest
from harness.datasets.quality import inspect_capture
from harness.errors import HarnessError, SchemaError
from harness.training import storefiles
from harness.training.checkpoints import CheckpointStore
from harness.validation import MAX_DEPTH, load_json

from .conftest import IDLE_V1, REPO, Dataset, assert_one_line_error, call_cli

IDLE_MANIFEST = IDLE_V1 / "manifests" / "idle_v1.json"
MEMORY_CAP = 2 << 30  # address space of a CLI child: a bomb that gets through fails, not the host


def run_bounded(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess with a time limit and a 2 GiB address-space limit, so that a
    hang or a memory bomb that gets through fails the test instead of stalling the machine."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    return subprocess.run(
        [sys.executable, "-m", "harness", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
        preexec_fn=cap,
    )


def within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()`` on a daemon thread: its result or exception, or a failure if it blocks (a FIFO
    opened for reading waits for a writer for ever)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def special(kind: str, tmp_path: Path) -> tuple[Path, str]:
    """A FIFO or ``/dev/zero``, and the word the refusal uses for it."""
    if kind == "fifo":
        os.mkfifo(tmp_path / "special")
        return tmp_path / "special", "a FIFO"
    return Path("/dev/zero"), "a device"


# --- files that are not regular files ------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "devzero"])
@pytest.mark.parametrize("role", ["manifest", "sheet", "config"])
def test_fifo_and_dev_zero_are_refused_as_documents(kind: str, role: str, tmp_path: Path) -> None:
    path, word = special(kind, tmp_path)
    argv = {
        "manifest": ("dataset", "verify", path),
        "sheet": ("dataset", "verify", IDLE_MANIFEST, "--checksums", path),
        "config": ("config", "check", path),
    }[role]
    expected = {"manifest": "manifest", "sheet": "checksum sheet", "config": "config"}[role]
    # A FIFO would block this process's reader for ever: on a thread of its own. /dev/zero
    # would fill memory: in a child with an address-space limit.
    result = within(10, lambda: call_cli(*argv)) if kind == "fifo" else run_bounded(*argv)
    assert_one_line_error(result, str(path), f"is {word}", f"expected a {expected}")


def test_fifo_dev_zero_and_folders_are_refused_as_captures(tmp_path: Path) -> None:
    fifo_path, _ = special("fifo", tmp_path)
    # A path that is not a capture file at all is bad input (exit 2), refused before any read.
    for path in (fifo_path, "/dev/zero", tmp_path):
        result = run_bounded("capture", "inspect", path)
        assert_one_line_error(result, f"{path}: is not a regular file")
    with pytest.raises(HarnessError, match="is a FIFO"):
        within(10, lambda: read_capture(fifo_path))


def test_a_fifo_capture_in_a_dataset_is_unreadable_not_a_hang(idle_v1_copy: Dataset) -> None:
    capture = idle_v1_copy.capture("cap_001")
    capture.unlink()
    os.mkfifo(capture)
    result = within(30, lambda: call_cli("dataset", "verify", idle_v1_copy.manifest_path))
    assert result.returncode == 1
    assert "size mismatch: entry 'cap_001'" in result.stdout
    # A sheet claiming 0 bytes gets past the size check: hashing must not wait on the FIFO. The
    # hashing threads would keep a blocked process from exiting: in children with a time limit.
    doc = json.loads(idle_v1_copy.sheet_path.read_text())
    doc["entries"]["cap_001"]["bytes"] = 0
    idle_v1_copy.sheet_path.write_text(json.dumps(doc))
    result = run_bounded("dataset", "verify", idle_v1_copy.manifest_path, timeout=30)
    assert result.returncode == 1, result
    assert "file unreadable: entry 'cap_001'" in result.stdout
    assert "is a FIFO, not a regular file" in result.stdout
    sheet = run_bounded("dataset", "sheet", idle_v1_copy.manifest_path, timeout=30)
    assert_one_line_error(sheet, "is a FIFO")


def test_a_fifo_as_promoted_json_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "promoted.json")
    with pytest.raises(HarnessError, match=r"promoted\.json: .*not a regular file"):
        within(10, lambda: CheckpointStore(tmp_path).promoted())


def test_a_store_document_is_checked_again_whenever_its_bytes_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes that passed their schema are not checked again (a run log is read many times
    between writes); other bytes of the same file are, and a failure is never remembered."""
    checked: list[str] = []
    check = storefiles.check
    monkeypatch.setattr(
        storefiles,
        "check",
        lambda doc, schema, src: (checked.append(schema), check(doc, schema, src)),
    )
    pointer = tmp_path / "promoted.json"
    good = {
        "schema_version": 1,
        "checkpoint": "bc-0123456789ab",
        "stage": "bc",
        "path": "checkpoints/bc-0123456789ab",
        "promoted_at": "2026-11-28T00:00:00Z",
        "gate": {"test": str(tmp_path)},  # bytes no other test reads
        "previous": None,
    }
    pointer.write_text(json.dumps(good))

    def load() -> Any:
        return storefiles.load_json_regular(pointer, 4096, "checkpoint pointer", "promoted")

    assert load() == good
    assert load() == good
    assert checked == ["promoted"]
    pointer.write_text(json.dumps({**good, "stage": "not a stage name"}))
    for attempt in (1, 2):
        with pytest.raises(HarnessError, match=r"promoted\.json.*stage"):
            load()
        assert checked == ["promoted"] * (1 + attempt)


def test_oversized_documents_are_refused_before_reading(tmp_path: Path) -> None:
    manifest, config = tmp_path / "m.json", tmp_path / "c.yaml"
    for path, size in ((manifest, 33 << 20), (config, 2 << 20)):
        with open(path, "wb") as fh:
            fh.truncate(size)  # sparse: no disk, and a read would find only zeros
    with pytest.raises(HarnessError, match=r"m\.json: larger than the 33,554,432-byte limit"):
        load_manifest(manifest)
    with pytest.raises(HarnessError, match=r"c\.yaml: larger than the 65,536-byte limit"):
        load_config(config)


# --- JSON: depth, repeated keys, constants, size in values ---------------------------------


def test_json_nested_100000_deep_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert_one_line_error(
        run_bounded("dataset", "verify", path), "deep.json", f"deeper than {MAX_DEPTH} levels"
    )


def _load_run_log(path: Path) -> Any:
    return load_json(path, "run log")


@pytest.mark.parametrize(
    "reader", [load_manifest, load_sheet, _load_run_log], ids=["manifest", "sheet", "run log"]
)
def test_every_json_reader_is_strict(reader: Callable[[Path], Any], tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text("[" * MAX_DEPTH + "]" * MAX_DEPTH)  # as deep as allowed: the schema speaks
    try:
        reader(path)
    except HarnessError as exc:
        assert "deeper" not in str(exc) and reader is not _load_run_log
    cases = {
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1): "deeper than 64 levels",
        '{"a": [' * 400 + "1" + "]}" * 400: "deeper than 64 levels",
        '{"dataset": "a", "dataset": "b"}': "duplicate key 'dataset'",
        '{"schema_version": NaN}': "NaN is not a JSON value",
        '{"schema_version": -Infinity}': "-Infinity is not a JSON value",
        "[" + "{}," * 2_100_000 + "{}]": "more than the 4,000,000 a JSON file",
    }
    for text, fragment in cases.items():
        path.write_text(text)
        with pytest.raises(HarnessError) as info:
            reader(path)
        message = str(info.value)
        assert fragment in message and "\n" not in message, message[:600]


def test_duplicate_keys_in_a_manifest_and_a_sheet_are_refused(small_dataset: Dataset) -> None:
    text = small_dataset.manifest_path.read_text()
    small_dataset.manifest_path.write_text(text.replace('"env_id"', '"env_id": "x", "env_id"', 1))
    assert_one_line_error(
        call_cli("dataset", "verify", small_dataset.manifest_path),
        "small.json: not valid JSON: duplicate key 'env_id'",
    )
    small_dataset.manifest_path.write_text(text)
    sheet = small_dataset.sheet_path.read_text()
    small_dataset.sheet_path.write_text(sheet.replace('"a": {', '"a": {"path": "x", ', 1))
    assert_one_line_error(
        call_cli("dataset", "verify", small_dataset.manifest_path), "duplicate key 'path'"
    )


# --- YAML: aliases --------------------------------------------------------------------------


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for k in range(1, levels):
        lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


CONFIG = {
    "seed": 0,
    "dataset": {"manifest": str(IDLE_MANIFEST)},
    "env": {"id": "CartPole-v1"},
    "bc": {"accuracy_threshold": 0.8},
    "output": {"log_dir": "logs", "checkpoint_dir": "ckpt"},
}


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    """Nine levels of nine aliases: 387 million values if expanded; the old reader took minutes
    and gigabytes in the schema check of the value."""
    path = tmp_path / "bomb.yaml"
    body = "\n".join(f"  {line}" for line in billion_laughs().splitlines())
    path.write_text(f"seed: 0\nlaughs:\n{body}\nenv: {{id: *a8}}\n")
    assert_one_line_error(
        run_bounded("config", "check", path), "bomb.yaml", "aliases expand it to more than 10,000"
    )


def test_modest_aliases_still_work_and_recursive_ones_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"seed: 0\ndataset: {{manifest: {IDLE_MANIFEST}}}\nenv: {{id: CartPole-v1}}\n"
        "bc: {accuracy_threshold: 0.8, hidden_sizes: &w [32, 32]}\nppo: {hidden_sizes: *w}\n"
        "output: {log_dir: logs, checkpoint_dir: ckpt}\n"
    )
    config = load_config(path)
    assert config.bc.hidden_sizes == config.ppo.hidden_sizes == (32, 32)
    path.write_text("seed: &s [*s]\n")  # a list that holds itself: endless once expanded
    with pytest.raises(HarnessError, match="deeper than 64 levels"):
        load_config(path)


# --- HDF5 captures that declare more than they hold -----------------------------------------


def gzip_bomb(path: Path, steps: int = 10**8) -> Path:
    """A 9 KB capture whose gzip-compressed datasets declare ``steps`` steps and hold none."""
    with h5py.File(path, "w") as f:
        f.attrs.update(
            env_id="CartPole-v1",
            demonstrator="heuristic",
            demonstrator_params="{}",
            seed=0,
            format_version=1,
            episodes=1,
            steps=steps,
        )
        group = f.create_group("data/demo_0")
        for key, shape, dtype in (
            ("obs", (steps, 4), "f4"),
            ("actions", (steps,), "i8"),
            ("rewards", (steps,), "f4"),
            ("terminated", (steps,), "bool"),
            ("truncated", (steps,), "bool"),
        ):
            chunks = (4096, *shape[1:])
            group.create_dataset(key, shape=shape, dtype=dtype, chunks=chunks, compression="gzip")
    return path


def test_a_gzip_bomb_is_refused_by_inspect_and_review(small_dataset: Dataset) -> None:
    bomb = gzip_bomb(small_dataset.captures / "bomb.h5")
    assert bomb.stat().st_size < 16_000
    declared = "data/demo_0/obs declares 100,000,000 x 4 values (1,600,000,000 bytes)"
    inspect = run_bounded("capture", "inspect", bomb)
    assert inspect.returncode == 1 and declared in inspect.stdout, inspect
    assert call_cli("dataset", "add", small_dataset.manifest_path, bomb).returncode == 0
    review = run_bounded("dataset", "review", small_dataset.manifest_path, "bomb", "--accept")
    assert_one_line_error(review, "bomb.h5", "cannot be accepted", declared)
    assert small_dataset.manifest().entry("bomb").status == "pending"


def _episode(steps: int, obs_dim: int = 4) -> Episode:
    rng = np.random.default_rng(0)
    return Episode(
        obs=rng.normal(size=(steps, obs_dim)).astype(np.float32) * 0.05,
        actions=rng.integers(0, 2, steps),
        rewards=np.ones(steps, dtype=np.float32),
        terminated=np.arange(steps) == steps - 1,
        truncated=np.zeros(steps, dtype=bool),
    )


def _write(path: Path, episode: Episode, env_id: str = "CartPole-v1") -> Path:
    write_capture(path, [episode], env_id=env_id, demonstrator="t", demonstrator_params={}, seed=0)
    return path


def test_episodes_longer_than_the_env_allows_are_refused(tmp_path: Path) -> None:
    ok = _write(tmp_path / "ok.h5", _episode(500))  # CartPole-v1's limit
    assert inspect_capture(ok).ok
    long = _write(tmp_path / "long.h5", _episode(501))
    limit = (
        "data/demo_0/obs: 501 steps, longer than the environment's limit of 500 steps per episode"
    )
    assert inspect_capture(long).errors == [limit]
    with pytest.raises(HarnessError, match=limit):
        read_capture(long)


def test_oversized_chunks_and_external_storage_are_refused(tmp_path: Path) -> None:
    chunky = _write(tmp_path / "chunky.h5", _episode(10))
    external = _write(tmp_path / "external.h5", _episode(10))
    (tmp_path / "raw.bin").write_bytes(bytes(160))
    with h5py.File(chunky, "r+") as f:
        del f["data/demo_0/obs"]
        group = f["data/demo_0"]
        group.create_dataset(
            "obs", shape=(10, 4), maxshape=(None, 4), chunks=(2**23, 4), dtype="f4"
        )
    with h5py.File(external, "r+") as f:
        del f["data/demo_0/obs"]
        raw = [(str(tmp_path / "raw.bin"), 0, 160)]
        f["data/demo_0"].create_dataset("obs", shape=(10, 4), dtype="f4", external=raw)
    assert inspect_capture(chunky).errors == [
        "data/demo_0/obs: chunks of 134,217,728 bytes, over the limit of 67,108,864"
    ]
    assert inspect_capture(external).errors == [
        "data/demo_0/obs is stored outside the capture file (external or virtual dataset)"
    ]
    for path in (chunky, external):
        with pytest.raises(HarnessError, match=r"data/demo_0/obs"):
            read_capture(path)


def test_nan_and_inf_are_refused_in_observations_actions_and_rewards(tmp_path: Path) -> None:
    nan_obs, inf_rewards = _episode(20), _episode(20)
    nan_obs.obs[3, 1] = np.nan
    inf_rewards.rewards[5] = np.inf
    box = _episode(20, obs_dim=3)  # Pendulum-v1: continuous actions of shape (T, 1)
    box = Episode(
        box.obs, np.zeros((20, 1), np.float32), box.rewards, box.terminated, box.truncated
    )
    box.actions[7, 0] = np.nan
    cases = [
        (nan_obs, "CartPole-v1", "NaN in 1 observation(s)", "NaN or inf in obs"),
        (inf_rewards, "CartPole-v1", "non-finite rewards", "NaN or inf in rewards"),
        (box, "Pendulum-v1", "NaN or inf in actions", "NaN or inf in actions"),
    ]
    for k, (episode, env_id, quality, training) in enumerate(cases):
        path = _write(tmp_path / f"c{k}.h5", episode, env_id)
        assert any(quality in e for e in inspect_capture(path).errors), (k, path)
        with pytest.raises(HarnessError, match=f"c{k}.h5: data/demo_0: {training}"):
            read_capture(path)


@pytest.mark.parametrize("damage", ["gzip bomb", "NaN observations"])
def test_training_refuses_an_accepted_bomb_or_nan_capture(
    damage: str, small_dataset: Dataset, tmp_path: Path
) -> None:
    """An accepted capture that was damaged after its review: training stops with one line
    naming it, before anything is trained or written."""
    path = small_dataset.captures / "bad.h5"
    if damage == "gzip bomb":
        gzip_bomb(path)
    else:
        episode = _episode(30)
        episode.obs[4, 2] = np.nan
        _write(path, episode)
    assert call_cli("dataset", "add", small_dataset.manifest_path, path).returncode == 0
    manifest = small_dataset.manifest()
    manifest.with_status("bad", "accepted", "accepted before it was damaged")
    manifest.save()
    build_sheet(manifest, small_dataset.sheet_path).save()
    config = tmp_path / "c.yaml"
    out = tmp_path / "out"
    doc = {
        **CONFIG,
        "dataset": {"manifest": str(small_dataset.manifest_path)},
        "bc": {"accuracy_threshold": 0.5, "epochs": 1},
        "output": {"log_dir": str(out / "logs"), "checkpoint_dir": str(out / "ckpt")},
    }
    config.write_text(json.dumps(doc))
    result = call_cli("train", config, "--mode", "bc")
    expected = "declares 100,000,000 x 4 values" if damage == "gzip bomb" else "NaN or inf in obs"
    assert_one_line_error(result, "bad.h5", expected)
    assert not out.exists()


# --- config sizes and long values -------------------------------------------------------------


MAXIMA = {
    "bc.epochs": 100_000,
    "bc.batch_size": 65_536,
    "ppo.epochs": 100_000,
    "ppo.num_envs": 1024,
    "ppo.num_steps": 65_536,
    "ppo.update_epochs": 1000,
    "ppo.minibatch_size": 65_536,
    "anneal.eval_episodes": 1000,
}


def _config_with(key: str, value: Any) -> dict[str, Any]:
    section, name = key.split(".")
    doc = json.loads(json.dumps(CONFIG))
    doc.setdefault(section, {})[name] = value
    if section == "ppo" and name not in ("num_envs", "num_steps"):
        # The largest rollout one env gives: the minibatch may be as large as the maximum.
        doc["ppo"].update(num_envs=1, num_steps=65_536)
    elif name == "num_steps":
        doc["ppo"]["num_envs"] = 1  # so that the rollout stays under its own maximum
    return doc


@pytest.mark.parametrize("key", sorted(MAXIMA))
def test_every_size_has_a_maximum(key: str, tmp_path: Path) -> None:
    config_from_document(_config_with(key, MAXIMA[key]), tmp_path)
    with pytest.raises(SchemaError, match=f"{key}: {MAXIMA[key] + 1} is greater than the maximum"):
        config_from_document(_config_with(key, MAXIMA[key] + 1), tmp_path)


def test_network_and_rollout_sizes_have_maxima(tmp_path: Path) -> None:
    config_from_document(_config_with("bc.hidden_sizes", [4096] * 4), tmp_path)
    for key in ("bc.hidden_sizes", "ppo.hidden_sizes"):
        with pytest.raises(SchemaError, match=r"\[0\]: 4097 is greater than the maximum of 4096"):
            config_from_document(_config_with(key, [4097]), tmp_path)
        with pytest.raises(SchemaError, match="is too long"):
            config_from_document(_config_with(key, [8] * 5), tmp_path)
    doc = _config_with("ppo.num_envs", 1024)
    doc["ppo"]["num_steps"] = 1024
    config_from_document(doc, tmp_path)  # 1,048,576 frames: the most a rollout may hold
    doc["ppo"]["num_steps"] = 1025
    with pytest.raises(SchemaError, match="1,049,600 frames is more than the maximum"):
        config_from_document(doc, tmp_path)


def test_no_error_echoes_a_whole_hostile_value(small_dataset: Dataset, tmp_path: Path) -> None:
    """Values as long as a config allows (64 KiB; a YAML key, 1024 characters), and a
    manifest value of a megabyte, are quoted clipped."""
    long, key = "x" * 50_000, "k" * 1000
    config = tmp_path / "c.yaml"
    for doc in (
        _config_with("bc.epochs", long),
        _config_with("bc.epochs", list(range(5000))),
        {**CONFIG, key: 1},
        {**CONFIG, "bc": {"accuracy_threshold": 0.8, key: 1}},
    ):
        config.write_text(json.dumps(doc))
        line = assert_one_line_error(call_cli("config", "check", config), "c.yaml")
        assert "more characters" in line and len(line) < 800, line[:800]
    config.write_text(f"{key}: 1\n{key}: 2\n")
    line = assert_one_line_error(call_cli("config", "check", config), "duplicate key")
    assert len(line) < 800, len(line)
    manifest = json.loads(small_dataset.manifest_path.read_text())
    manifest["entries"][0]["status"] = "x" * 1_000_000
    small_dataset.manifest_path.write_text(json.dumps(manifest))
    line = assert_one_line_error(call_cli("dataset", "verify", small_dataset.manifest_path))
    assert "is not one of" in line and len(line) < 800, line[:800]
