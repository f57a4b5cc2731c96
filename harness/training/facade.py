"""``TrainingHarness``, the front end of the trainer: config -> verified dataset -> stages.

It decides which stages a mode runs (bc; mixed = bc, then PPO from the BC checkpoint; ppo from
scratch) and checks what they will read and write before any training; the stages themselves
(``stages``) train, gate and finish. Importing it does not import torch: the stages are imported
on first training, so that the CLI and the rehearsal's controller never pay for torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.config import Config, load_config
from harness.config.dataset_match import check_env_matches
from harness.datasets.checksums import load_sheet
from harness.datasets.curation import reading
from harness.datasets.integrity import verify
from harness.datasets.manifest import Manifest, load_manifest
from harness.errors import HarnessError, IntegrityError
from harness.formatting import and_more
from harness.training.checkpoints import CheckpointStore, load_checkpoint
from harness.training.distributed import check_num_envs, current, on_writer
from harness.training.finishing import StageContext, preflight
from harness.training.results import BCResult, MixedResult, PPOResult
from harness.training.runlog import log_path, rejected_dir

__all__ = ["BCResult", "MixedResult", "PPOResult", "TrainingHarness"]


class TrainingHarness:
    """Run the training stages of one config, as the CLI and the rehearsal do.

    ``config`` is a path to a YAML config or a loaded ``Config``. ``overrides`` replaces keys
    (``{"seed": 3, "bc.epochs": 5}``) and is validated like the file. ``verify=False`` trains
    on data whose checksums were not checked: an explicit opt-out, recorded in the run log.
    ``run`` names the run in its records (default: the config file's stem). ``progress=False``
    keeps the stages' progress bars off even on a terminal.
    """

    def __init__(
        self,
        config: Config | str | os.PathLike[str],
        *,
        overrides: Mapping[str, Any] | None = None,
        verify: bool = True,
        run: str | None = None,
        progress: bool = True,
    ) -> None:
        if not isinstance(config, Config):
            config = load_config(config)
        if overrides:
            config = config.override(dict(overrides))
        rejected = rejected_dir(config.output.log_dir)
        store = config.output.checkpoint_dir
        if rejected.is_relative_to(store) or store.is_relative_to(rejected):
            # A rolled-back run must not write into the store it promises to leave unchanged.
            raise HarnessError(
                f"{config.source or 'config'}: output.log_dir ({config.output.log_dir}) keeps "
                f"rejected checkpoints in {rejected}, which overlaps output.checkpoint_dir "
                f"({store}); give them separate folders"
            )
        self.config = config
        self.verify = verify
        self.run = run or (config.source.stem if config.source else "run")
        self.progress = progress

    def load_dataset(self) -> Manifest:
        """The manifest, checked against the config's env and, unless opted out, its checksums."""
        cfg = self.config
        # Manifest and sheet read as one snapshot: a review running now cannot split them.
        with reading(cfg.dataset.manifest):
            manifest = load_manifest(cfg.dataset.manifest)
            check_env_matches(cfg, manifest)
            if self.verify:  # once, by rank 0 of a torchrun job; its outcome reaches every rank
                on_writer(lambda: _verified(manifest, cfg.dataset.checksums))
        return manifest

    def run_bc_training(self) -> BCResult:
        """Train BC, apply its gate, then promote the checkpoint or roll back; log the record."""
        from harness.training.stages import bc_stage  # imports torch, on first training

        return bc_stage(self._context(), self.load_dataset())[0]

    def run_mixed_training(self, ppo_log: str | os.PathLike[str] | None = None) -> MixedResult:
        """BC and its gate; if it passed, PPO from the BC checkpoint with the BC loss annealed.

        ``ppo_log`` is the JSON Lines file of the PPO updates. A failed BC gate runs no PPO.
        """
        from harness.training.stages import bc_stage, ppo_stage

        ppo_log = self._check_ppo_log(ppo_log)
        check_num_envs(self.config, current())  # under torchrun: the ranks share them
        manifest = self.load_dataset()
        bc, demos = bc_stage(self._context(), manifest)
        if not bc.passed:
            return MixedResult(bc, None)
        # PPO starts from the BC checkpoint and is gated against it.
        start = load_checkpoint(bc.checkpoint, verify=True)
        ppo = ppo_stage(self._context(), manifest, "mixed", start, start, demos, ppo_log)
        return MixedResult(bc, ppo)

    def run_ppo_training(self, ppo_log: str | os.PathLike[str] | None = None) -> PPOResult:
        """PPO from scratch (no BC start, no BC term), gated against the promoted checkpoint."""
        from harness.training.stages import ppo_stage

        ppo_log = self._check_ppo_log(ppo_log)
        check_num_envs(self.config, current())
        manifest = self.load_dataset()
        baseline = CheckpointStore(self.config.output.checkpoint_dir).promoted()
        return ppo_stage(self._context(), manifest, "ppo", None, baseline, None, ppo_log)

    def _context(self) -> StageContext:
        preflight(self.config)  # a damaged run log or promoted checkpoint costs no training
        progress = self.progress and current().writer  # one bar per job, rank 0's
        return StageContext(self.config, self.run, self.verify, progress)

    def _check_ppo_log(self, ppo_log: str | os.PathLike[str] | None) -> Path | None:
        if ppo_log is None:
            return None
        path = Path(ppo_log).absolute()
        if path.is_dir():
            raise HarnessError(f"{path}: --ppo-log names a folder, not a file")
        if path == log_path(self.config.output.log_dir).absolute():
            raise HarnessError(
                f"{path}: --ppo-log names the run log; give the PPO log its own file"
            )
        if path.is_relative_to(self.config.output.checkpoint_dir.absolute()):
            raise HarnessError(
                f"{path}: the PPO log would be written inside the checkpoint store "
                f"({self.config.output.checkpoint_dir}), which a rollback must leave unchanged"
            )
        return path


def _verified(manifest: Manifest, checksums: Path) -> None:
    """Every accepted capture matches its sha256 in the sheet, or ``IntegrityError``."""
    report = verify(manifest, load_sheet(checksums))
    if not report.ok:
        raise IntegrityError(
            f"{manifest.dataset}: integrity check failed, training refused: "
            f"{report.problems[0].message}{and_more(report.problems)}"
        )
