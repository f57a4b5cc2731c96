"""A checkpoint's weights loaded as a policy: forged checkpoints that are self-consistent (their
sha256 and id recomputed) but hold garbage are refused with one line naming the payload, by
BC and PPO alike, before any training."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from harness import TrainingHarness
from harness.training import stages
from harness.training.checkpoints import Checkpoint, CheckpointError, CheckpointStore
from harness.training.policy import MLPPolicy, PolicySpec, policy_bytes
from harness.training.runlog import log_path, read_log
from harness.training.weights import checkpoint_policy

from .conftest import assert_one_line_error, call_cli
from .test_training import preflight

SPEC = PolicySpec(4, 2, (64, 64))


def forged(
    store: CheckpointStore, payload: bytes, spec: dict[str, Any] | None = None
) -> Checkpoint:
    """A checkpoint written the way the store writes one (sha256 and id consistent), promoted."""
    meta = {"dataset": "preflight", "seed": 0, "policy": spec or SPEC.to_json(), "parent": None}
    checkpoint = store.add("bc", {"policy.pt": payload}, meta)
    store.promote(checkpoint, {"stage": "bc"})
    return checkpoint


def _state_dict_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _compressed(payload: bytes) -> bytes:
    """The same archive with every entry deflated (torch.save stores them)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(payload)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


class _Code:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("pickled code ran",))


def _with_nan() -> bytes:
    policy = MLPPolicy(SPEC)
    with torch.no_grad():
        policy.net[0].weight[0, 0] = float("nan")
    return policy_bytes(policy)


def _pickle_archive() -> bytes:
    """A torch.save archive whose data.pkl would run code if unpickled without weights_only."""
    payload = policy_bytes(MLPPolicy(SPEC))
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(payload)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                data = pickle.dumps(_Code(), protocol=2)
            dst.writestr(info, data)
    return out.getvalue()


GARBAGE = {
    "random-bytes": (lambda: bytes(range(256)) * 8, "not a torch.save archive"),
    "wrong-shapes": (lambda: policy_bytes(MLPPolicy(PolicySpec(4, 2, (8,)))), "size mismatch"),
    "wrong-keys": (lambda: _state_dict_bytes({"w": torch.zeros(3)}), "Missing key(s)"),
    "compressed": (lambda: _compressed(policy_bytes(MLPPolicy(SPEC))), "compressed entries"),
    "pickled-code": (_pickle_archive, "not the weights of the checkpoint's policy"),
    "nan-weights": (_with_nan, "NaN or infinite"),
}


@pytest.mark.parametrize("kind", list(GARBAGE))
def test_a_forged_payload_is_one_line_naming_it(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make, fragment = GARBAGE[kind]
    checkpoint = forged(CheckpointStore(tmp_path / "ckpt"), make())
    with pytest.raises(CheckpointError) as info:
        checkpoint_policy(checkpoint)
    message = str(info.value)
    assert message.startswith(f"{checkpoint.file('policy.pt')}: ") and "\n" not in message
    assert fragment in message, message
    assert len(message) < 600
    assert "pickled code ran" not in capsys.readouterr().out


def test_a_spec_of_a_huge_network_is_refused_without_building_it(tmp_path: Path) -> None:
    """10^9 hidden units would need 16 GB: the shapes are checked on the meta device first."""
    huge = {"obs_dim": 4, "n_actions": 2, "hidden_sizes": [10**9]}
    checkpoint = forged(CheckpointStore(tmp_path / "ckpt"), policy_bytes(MLPPolicy(SPEC)), huge)
    with pytest.raises(CheckpointError, match="size mismatch"):
        checkpoint_policy(checkpoint)


def test_a_checkpoint_without_a_usable_spec_is_one_line(tmp_path: Path) -> None:
    checkpoint = forged(CheckpointStore(tmp_path / "ckpt"), b"x", {"obs_dim": "four"})
    with pytest.raises(CheckpointError, match=r"checkpoint\.json: no usable policy spec"):
        checkpoint_policy(checkpoint)


def test_an_honest_checkpoint_loads(tmp_path: Path) -> None:
    policy = MLPPolicy(SPEC)
    checkpoint = forged(CheckpointStore(tmp_path / "ckpt"), policy_bytes(policy))
    loaded = checkpoint_policy(checkpoint)
    for key, tensor in policy.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor)


@pytest.mark.parametrize("kind", ["random-bytes", "wrong-shapes"])
def test_ppo_refuses_a_forged_start_or_baseline_in_one_line(tmp_path: Path, kind: str) -> None:
    """PPO reads a checkpoint as its start (mixed mode) or its baseline (ppo mode) through
    ``_checkpoint_policy``: a forged one is a one-line error, not a traceback."""
    checkpoint = forged(CheckpointStore(tmp_path / "ckpt"), GARBAGE[kind][0]())
    with pytest.raises(CheckpointError) as info:
        stages._checkpoint_policy(checkpoint, SPEC)
    assert str(info.value).startswith(f"{checkpoint.file('policy.pt')}: ")


@pytest.mark.parametrize("mode", ["bc", "ppo"])
def test_training_refuses_a_forged_promoted_checkpoint_before_training(
    tmp_path: Path, mode: str
) -> None:
    config = preflight(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    store = CheckpointStore(tmp_path / "ckpt")
    checkpoint = forged(store, GARBAGE["wrong-shapes"][0]())
    before = store.snapshot()

    result = call_cli("train", path, "--mode", mode, "--epochs", "1")

    assert_one_line_error(result, f"{checkpoint.file('policy.pt')}: not the weights")
    assert store.snapshot() == before
    assert read_log(log_path(tmp_path / "logs")) == [] and result.stdout == ""


def test_an_honest_promoted_checkpoint_is_trained_over(tmp_path: Path) -> None:
    first = TrainingHarness(preflight(tmp_path)).run_bc_training()
    store = CheckpointStore(tmp_path / "ckpt")
    before = store.snapshot()
    # A deterministic rerun keeps the promoted checkpoint: the store is byte for byte the same.
    again = TrainingHarness(preflight(tmp_path)).run_bc_training()
    assert again.passed and again.checkpoint_id == first.checkpoint_id
    assert store.snapshot() == before
    # Another recipe is another checkpoint, whose parent is the one it replaced.
    other = TrainingHarness(preflight(tmp_path, bc__epochs=2)).run_bc_training()
    assert other.passed and other.checkpoint_id != first.checkpoint_id
    assert store.promoted().meta["parent"] == first.checkpoint_id
