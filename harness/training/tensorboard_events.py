"""TensorBoard event files of the training stages (``output.tensorboard``, ``--tensorboard``).

Each stage writes one file into the run's log folder when it has trained, replacing the one a
previous run of that stage left there (as the PPO log is replaced):

- ``events.out.tfevents.bc``, one event per BC epoch (step: the epoch, from 1):
  ``bc/train_loss`` and ``bc/holdout_accuracy`` (the run log's ``epoch_history``);
- ``events.out.tfevents.ppo``, one event per PPO update at the environment steps so far (the
  step Stable-Baselines3 logs at), under Stable-Baselines3's tag names: ``rollout/ep_rew_mean``,
  ``train/loss``, ``train/policy_gradient_loss``, ``train/value_loss``, ``train/entropy_loss``
  (minus the mean entropy, as SB3 logs it), ``train/approx_kl``, ``train/clip_fraction``; and
  the harness's own ``train/bc_loss`` and ``train/bc_coef`` (mixed mode only). As in SB3,
  ``rollout/ep_rew_mean`` is only logged once an episode has ended: a rollout in which every
  episode is still running (the smoke's single one on CartPole) has none. After training, the
  greedy evaluation's mean return at the last step, under the name of SB3's ``EvalCallback``:
  ``eval/mean_reward``.

The file is written here, by hand: a TFRecord frame (length, masked CRC-32C of the length, the
record, masked CRC-32C of the record) around an ``Event`` protobuf whose ``Summary`` holds
``simple_value`` scalars, five fields in all. Measured on the development machine (2 cores, under
load), on top of ``import torch``, which a training process has already paid:
``torch.utils.tensorboard`` 0.15-0.25 s to import and the ``tensorboard`` package with grpcio,
protobuf, Markdown and Werkzeug to install; ``tensorboardX`` 0.03-0.05 s and protobuf; this
module under 1 ms (``struct`` only) and no dependency. ``tests/test_tensorboard.py`` reads the
files with TensorBoard's own reader.

Every byte of a file is a function of the figures except each event's ``wall_time``, the clock
time the figure was taken at (TensorBoard's "relative" and "wall" axes): a rerun gives the same
file name, tags, steps and values, and the same bytes only with a fixed ``clock``.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from harness.atomic import write_bytes_atomic

if TYPE_CHECKING:  # torch-backed; this module imports nothing heavy
    from harness.training.ppo import UpdateStats

FILE_PREFIX = "events.out.tfevents."  # TensorBoard reads the files whose name holds "tfevents"
FILE_VERSION = b"brain.Event:2"  # version 2: TensorBoard purges data only on a restart event


def event_file(log_dir: str | Path, stage: str) -> Path:
    """The event file of a stage (``bc`` or ``ppo``) in a run's log folder."""
    return Path(log_dir) / f"{FILE_PREFIX}{stage}"


class StageEvents:
    """The scalars of one stage, kept as they come and written as one file by ``write``."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._records = [_frame(_event(clock(), 0, _field(3, FILE_VERSION)))]

    def scalars(self, step: int, values: Mapping[str, float | None]) -> None:
        """One event at ``step`` holding each value that is not None (NaN stays NaN)."""
        summary = b"".join(_field(1, _scalar(tag, v)) for tag, v in values.items() if v is not None)
        if summary:
            self._records.append(_frame(_event(self._clock(), step, _field(5, summary))))

    def bc_epoch(self, epoch: int, train_loss: float, holdout_accuracy: float) -> None:
        self.scalars(epoch, {"bc/train_loss": train_loss, "bc/holdout_accuracy": holdout_accuracy})

    def ppo_update(self, stats: UpdateStats) -> None:
        mixed = stats.loss_bc is not None
        self.scalars(
            stats.env_steps,
            {
                "rollout/ep_rew_mean": stats.mean_episode_return,
                "train/loss": stats.loss_total,
                "train/policy_gradient_loss": stats.loss_policy,
                "train/value_loss": stats.loss_value,
                "train/entropy_loss": -stats.entropy,
                "train/approx_kl": stats.approx_kl,
                "train/clip_fraction": stats.clip_fraction,
                "train/bc_loss": stats.loss_bc,
                "train/bc_coef": stats.bc_coef if mixed else None,
            },
        )

    def ppo_evaluation(self, env_steps: int, mean_return: float) -> None:
        self.scalars(env_steps, {"eval/mean_reward": mean_return})

    def write(self) -> Path:
        """Write the file whole (atomically), replacing a previous one."""
        write_bytes_atomic(self.path, b"".join(self._records))
        return self.path


# --- the wire format: protobuf fields and TFRecord frames --------------------------------------


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64: a negative number takes ten bytes, as protobuf encodes it
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _scalar(tag: str, value: float) -> bytes:
    """``Summary.Value{tag = 1, simple_value = 2 (float)}``."""
    try:
        packed = struct.pack("<f", value)
    except OverflowError:  # finite, beyond float32: TensorBoard shows it as infinite
        packed = struct.pack("<f", math.copysign(math.inf, value))
    return _field(1, tag.encode("utf-8")) + b"\x15" + packed


def _event(wall_time: float, step: int, body: bytes) -> bytes:
    """``Event{wall_time = 1 (double), step = 2 (int64), ...}`` followed by ``body``
    (``file_version = 3`` or ``summary = 5``)."""
    return b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step) + body


def _frame(record: bytes) -> bytes:
    length = struct.pack("<Q", len(record))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + record
        + struct.pack("<I", masked_crc32c(record))
    )


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        for _ in range(8):
            n = (n >> 1) ^ (0x82F63B78 if n & 1 else 0)  # Castagnoli, reflected
        table.append(n)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord frames use; bytewise, for records of tens of bytes."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
