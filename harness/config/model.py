"""The training config as frozen dataclasses: one per section, one field per key.

These classes declare the config's keys, their order and their Python types; ``keys.py`` derives
the key tables from them, and ``tests/test_config.py`` holds ``config.schema.json`` (which
declares the ranges, defaults and messages) equal to them, so neither is a hand-kept copy of the
other. A ``Config`` is complete and validated, with absolute paths; it is built by ``pipeline.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from harness.config.yaml_text import dump_yaml
from harness.envs import EnvSpec


@dataclass(frozen=True)
class DatasetConfig:
    """Which dataset to train on."""

    manifest: Path
    """the dataset's manifest; only its accepted captures are used"""
    checksums: Path
    """the checksum sheet the accepted captures must match before training starts"""


@dataclass(frozen=True)
class EnvConfig:
    """The environment of the captures and of PPO's rollouts."""

    id: str
    """Gymnasium environment id, e.g. CartPole-v1, or module:EnvId for an environment a module
    registers"""
    kwargs: dict[str, Any]
    """keyword arguments of gymnasium.make, e.g. {continuous: true}; must match the dataset's"""

    def spec(self) -> EnvSpec:
        """The environment as ``harness.envs`` makes it."""
        return EnvSpec.of(self.id, self.kwargs)


@dataclass(frozen=True)
class BCConfig:
    """Behaviour cloning and its accuracy gate."""

    epochs: int
    """passes over the training frames"""
    batch_size: int
    """frames per optimiser step"""
    lr: float
    """Adam learning rate"""
    holdout: float
    """fraction of episodes held out for the gate (split by episode, never by frame)"""
    hidden_sizes: tuple[int, ...]
    """widths of the policy network's hidden layers"""
    accuracy_threshold: float
    """the gate: holdout accuracy below this rolls the run back"""
    action_tolerance: float
    """continuous actions only: a predicted action counts as right when every dimension is
    within this fraction of the dimension's range of the demonstrated one"""


@dataclass(frozen=True)
class PPOConfig:
    """PPO fine-tuning from the promoted BC weights."""

    epochs: int
    """PPO epochs; one epoch is one rollout collection and its update"""
    num_envs: int
    """environments stepped in parallel"""
    num_steps: int
    """steps per environment per rollout"""
    update_epochs: int
    """passes over each rollout"""
    minibatch_size: int
    """frames per optimiser step (at most num_envs * num_steps)"""
    lr: float
    """Adam learning rate"""
    gamma: float
    """discount factor"""
    gae_lambda: float
    """lambda of generalised advantage estimation"""
    clip_coef: float
    """surrogate clipping coefficient"""
    ent_coef: float
    """weight of the entropy bonus"""
    vf_coef: float
    """weight of the value loss"""
    max_grad_norm: float
    """gradient clipping norm"""
    target_kl: float | None
    """stop an update early above this approximate KL; None never stops"""
    hidden_sizes: tuple[int, ...]
    """widths of the hidden layers of the value network"""


@dataclass(frozen=True)
class AnnealConfig:
    """How the BC loss is annealed away during PPO, and the regression guard."""

    bc_coef_start: float
    """weight of the BC loss at the first PPO update; annealed to 0 by the last"""
    schedule: Literal["linear", "exponential"]
    """shape of the annealing: linear or exponential"""
    regression_tolerance: float
    """mean-return units the fine-tuned policy may lose against BC (negative forces a failure)"""
    eval_episodes: int
    """episodes per evaluation of a policy's mean return"""


@dataclass(frozen=True)
class OutputConfig:
    """Where a run writes."""

    log_dir: Path
    """run logs (anneal_results.json) and set-aside checkpoints"""
    checkpoint_dir: Path
    """the checkpoint store, with its promoted checkpoint"""
    tensorboard: bool = False
    """also write TensorBoard event files of each stage's figures into log_dir"""


@dataclass(frozen=True)
class Config:
    """A complete, validated training config; every path in it is absolute."""

    seed: int
    """seeds the holdout split, network initialisation, shuffling and the environments"""
    dataset: DatasetConfig
    env: EnvConfig
    bc: BCConfig
    ppo: PPOConfig
    anneal: AnnealConfig
    output: OutputConfig
    source: Path | None = field(default=None, compare=False)
    """the file it was loaded from (absolute), if any; not part of equality or the hash"""

    def to_document(self, relative_to: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The complete config as plain data, in the base file's key order, defaults included.

        Paths are absolute, or relative to the folder ``relative_to`` if given.
        """
        start = None if relative_to is None else os.path.abspath(relative_to)
        document: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "source":
                continue
            value = getattr(self, f.name)
            if hasattr(value, "__dataclass_fields__"):
                document[f.name] = {
                    g.name: _plain(getattr(value, g.name), start) for g in fields(value)
                }
            else:
                document[f.name] = _plain(value, start)
        return document

    def to_yaml(self, relative_to: str | os.PathLike[str] | None = None) -> str:
        """``to_document`` as YAML text, as overlays and ``harness config check`` write it."""
        return dump_yaml(self.to_document(relative_to))

    def hash(self) -> str:
        """sha256 (hex) of the training recipe: the canonical JSON of ``to_document()`` (sorted
        keys, compact, absolute paths) without the ``output`` section.

        Where a run writes does not change what it trains, so two configs that differ only in
        their output folders have the same hash; any other change (seed, threshold, dataset
        path) gives another.
        """
        document = self.to_document()
        del document["output"]
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def override(self, changes: Mapping[str, Any]) -> Config:
        """A copy with dotted keys replaced, validated like a config file.

        ``config.override({"seed": 3, "bc.epochs": 5, "output.log_dir": Path("runs/x")})``.
        Paths may be ``str`` or ``Path``; a relative one resolves against the working folder,
        as a user typing ``--log-dir runs/x`` means. Replacing ``dataset.manifest`` without
        ``dataset.checksums`` points the checksums at that manifest's conventional sheet. An
        unknown key or a bad value is a ``SchemaError`` naming the key.
        """
        # Imported here: overlay.py builds Configs, so it imports this module.
        from harness.config.overlay import override

        return override(self, changes)


def _plain(value: Any, start: str | None) -> Any:
    if isinstance(value, Path):
        return str(value) if start is None else relative_path(str(value), start)
    if isinstance(value, tuple):
        return list(value)
    return value


def relative_path(path: str, start: str) -> str:
    """``path`` relative to the folder ``start``, lexically; ``path`` itself where none exists."""
    try:
        return os.path.relpath(path, start)
    except ValueError:  # another drive (Windows): no relative path exists
        return path
