"""One dataset's rehearsal: its files in the bundle, its two overlays, and its three training runs.

The runs, each with its own log and checkpoint folders under ``runs/<dataset>/<run>/``:

- ``bc_trainer``: ``TrainingHarness(overlay).run_bc_training()`` in-process (step 2);
- ``anneal_smoke``: ``run_training.py <overlay> --mode mixed --epochs 1 --ppo-log ...`` (step 3);
- ``rollback_drill``: the same command on the rollback overlay, against a copy of
  ``bc_trainer``'s checkpoint store, so that "the promoted checkpoint is unchanged" is checked
  on a store that holds one (step 4). Its threshold is the one asked for (``--drill-threshold``,
  default 0.95) unless step 2's accuracy meets it (``acceptance/drill.py``): the overlay written
  at set-up is then rewritten, with the raised threshold, when the drill starts.

Both overlays derive from the dataset's base config (``acceptance/base_config.py``).

The steps ask for results; this class starts the CLI runs as early as their inputs allow (the
smoke once integrity passed, the drill once the BC store holds its checkpoint) so that they
overlap on the machine's cores, and only when their step is part of the session.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acceptance import figure_jobs
from acceptance.base_config import DEFAULT_DRILL_THRESHOLD, BaseConfig
from acceptance.bundle_writer import merge_run
from acceptance.cli_runs import CLIResult, CLIRun, launch_argv
from acceptance.drill import DrillThreshold, drill_threshold
from harness.atomic import write_bytes_atomic
from harness.bundle import DatasetFiles, dataset_records
from harness.bundle.layout import STORE_DIR
from harness.config import Config, load_config, overlay
from harness.datasets.checksums import load_sheet
from harness.datasets.curation import reading
from harness.datasets.integrity import VerifyReport, verify
from harness.datasets.manifest import Manifest, load_manifest
from harness.datasets.registry import DatasetRef
from harness.training.checkpoints import CheckpointStore
from harness.training.runlog import log_path, read_log

if TYPE_CHECKING:
    from harness.training.facade import BCResult

TRAINING_SCRIPT = Path("scripts/run_training.py")
SMOKE_EPOCHS = 1


class Rehearsal:
    """The state of one dataset's rehearsal within a pytest session (one worker owns it)."""

    def __init__(
        self,
        ref: DatasetRef,
        project: Path,
        bundle: Path,
        steps: set[str],
        base: BaseConfig,
        drill_asked: float = DEFAULT_DRILL_THRESHOLD,
        launcher: tuple[str, int] = ("python", 1),
    ) -> None:
        self.ref = ref
        self.project = project
        self.bundle = bundle
        self.base = base
        self.drill_asked = drill_asked
        self.launcher = launcher
        """How the CLI runs start: ``python``, or ``torchrun`` with this many processes."""
        self.files = DatasetFiles(bundle, ref.name)
        self.steps = steps
        """The steps of this dataset that the session runs: only their CLI runs are started."""
        self._bc: BCResult | None = None
        self._cli: dict[str, CLIRun] = {}
        self._drill_store_before: tuple[dict[str, str], str | None] | None = None
        self._drill: DrillThreshold | None = None
        self._held: contextlib.ExitStack | None = None
        """The drill store's lock while an early drill waits for its seed (``prestart_drill``)."""

    @property
    def name(self) -> str:
        return self.ref.name

    # --- set-up: copies and overlays --------------------------------------------------------

    def prepare(self) -> None:
        """Copy the manifest and checksum sheet into the bundle; write both overlays."""
        with reading(self.ref.manifest):  # one snapshot of the pair, whatever a review does
            manifest, sheet = self.ref.manifest.read_bytes(), self.ref.checksums.read_bytes()
        write_bytes_atomic(self.files.manifest, manifest)
        write_bytes_atomic(self.files.checksums, sheet)
        smoke = self.run_dir("anneal_smoke")
        # The dataset and its environment from the manifest, all else from the base config.
        overlay(
            self.base.path,
            self.files.config,
            [
                f"output.log_dir={smoke / 'logs'}",
                f"output.checkpoint_dir={smoke / STORE_DIR}",
                # Every run writes TensorBoard event files into its logs/ folder, so that
                # ``tensorboard --logdir <bundle>/runs`` shows the rehearsal's runs.
                "output.tensorboard=true",
            ],
            dataset=str(self.ref.manifest),
            cwd=self.bundle,
        )
        self._write_rollback_overlay(self.drill_asked)

    def _write_rollback_overlay(self, threshold: float) -> None:
        drill = self.run_dir("rollback_drill")
        overlay(
            self.files.config,
            self.files.rollback_config,
            [
                f"bc.accuracy_threshold={threshold!r}",
                f"output.log_dir={drill / 'logs'}",
                f"output.checkpoint_dir={drill / STORE_DIR}",
            ],
            cwd=self.bundle,
        )

    def run_dir(self, run: str) -> Path:
        """A run's folder, relative to the bundle (overlays keep the bundle relocatable)."""
        return self.files.run(run).relative_to(self.bundle)

    def config(self) -> Config:
        return load_config(self.files.config)

    def rollback_config(self) -> Config:
        return load_config(self.files.rollback_config)

    def manifest(self) -> Manifest:
        return load_manifest(self.ref.manifest)

    # --- step 1 -------------------------------------------------------------------------------

    def verify_integrity(self) -> VerifyReport:
        with reading(self.ref.manifest):
            return verify(load_manifest(self.ref.manifest), load_sheet(self.ref.checksums))

    # --- step 2 -------------------------------------------------------------------------------

    def bc(self) -> BCResult:
        """The in-process BC run (once per session), its records merged into the bundle log."""
        if self._bc is None:
            from harness.training.facade import TrainingHarness  # imports torch on first training

            folder = self.files.run("bc_trainer")
            harness = TrainingHarness(
                self.files.config,
                overrides={
                    "output.log_dir": folder / "logs",
                    "output.checkpoint_dir": folder / STORE_DIR,
                },
                run="bc_trainer",
                progress=False,
            )
            self._bc = harness.run_bc_training()
            self._merge("bc_trainer", self._bc.log)
            self._draw_training()
        return self._bc

    # --- step 4's threshold ------------------------------------------------------------------

    def drill(self) -> DrillThreshold:
        """The drill's threshold, from step 2's accuracy (training BC first if need be)."""
        if self._drill is None:
            self._drill = drill_threshold(self.drill_asked, self.bc().accuracy)
            if self._drill.raised:
                assert self._drill.used is not None
                self._write_rollback_overlay(self._drill.used)
        return self._drill

    def step2_accuracy(self) -> float | None:
        """Step 2's hold-out accuracy, if it trained in this process."""
        return self._bc.accuracy if self._bc is not None else None

    def rollback_threshold(self) -> float:
        """The threshold the rollback overlay holds: the drill's, once it has been set."""
        used = self._drill.used if self._drill is not None else None
        return used if used is not None else self.drill_asked

    # --- steps 3 and 4: the CLI runs ----------------------------------------------------------

    def start(self, run: str) -> None:
        """Start a CLI run in the background if its step is in the session and it has not been."""
        if run == "rollback_drill" and self._held is not None:
            self._seed_early_drill()
        if run not in self.steps or run in self._cli:
            return
        if run == "anneal_smoke":
            self._launch(run, self.files.config, self.files.ppo_log)
            return
        if self.drill().used is None:
            return  # no threshold can fail the gate: the drill step says so, runs nothing
        # The drill runs against a store that already holds a promoted checkpoint: a copy of
        # the BC step's store (its own folder, so no two runs ever write the same file).
        store = self.files.run(run) / STORE_DIR
        self._copy_drill_seed(store, copy=not store.exists())
        self._launch_drill()

    def prestart_drill(self) -> None:
        """Start the drill's CLI run before step 2 has trained, its store locked and empty.

        Its process imports torch, checks the dataset and then waits on the store's lock (the
        trainer reads the promoted checkpoint before it trains), while step 2 trains here; when
        step 2 is done, ``start`` copies its store in and lets go. So the drill's start-up is
        not on the session's critical path. If step 2's accuracy calls for a raised threshold,
        the early run is dropped and the drill starts again with it."""
        run = "rollback_drill"
        store = self.files.run(run) / STORE_DIR
        if run not in self.steps or run in self._cli or self._bc is not None or store.exists():
            return
        store.mkdir(parents=True)
        self._held = contextlib.ExitStack()
        self._held.enter_context(CheckpointStore(store).hold())
        self._launch(run, self.files.rollback_config, self.files.run(run) / "ppo.jsonl")

    def _seed_early_drill(self) -> None:
        run = "rollback_drill"
        if self.drill().used == self.drill_asked:  # the early run has the right threshold
            self._copy_drill_seed(self.files.run(run) / STORE_DIR)
            self._let_go()
            return
        # A raised threshold (or none): the early run's config is wrong; drop it and its folder.
        self._cli.pop(run).kill()
        self._let_go()
        shutil.rmtree(self.files.run(run))
        if self.drill().used is not None:
            self._copy_drill_seed(self.files.run(run) / STORE_DIR)
            self._launch_drill()

    def _let_go(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None

    def _copy_drill_seed(self, store: Path, copy: bool = True) -> None:
        """Fill the drill's store from step 2's; note its files and promoted id beforehand.

        The snapshot is of the store (``snapshot`` takes no lock). While this process holds the
        store's lock, ``promoted`` cannot read it: the id is then read from step 2's store, which
        the copy repeats and nothing writes any more."""
        seed = self.files.run("bc_trainer") / STORE_DIR
        if copy and seed.is_dir():
            shutil.copytree(seed, store, dirs_exist_ok=True)
        promoted = CheckpointStore(seed if self._held is not None else store).promoted()
        self._drill_store_before = (
            CheckpointStore(store).snapshot(),
            promoted.id if promoted else None,
        )

    def _launch_drill(self) -> None:
        # A PPO log path of its own: the drill must not run PPO, so it must stay absent.
        run = "rollback_drill"
        self._launch(run, self.files.rollback_config, self.files.run(run) / "ppo.jsonl")

    def _launch(self, run: str, config: Path, ppo_log: Path) -> None:
        argv = [
            *launch_argv(*self.launcher),
            str(self.project / TRAINING_SCRIPT),
            str(config),
            "--mode",
            "mixed",
            "--epochs",
            str(SMOKE_EPOCHS),
            "--ppo-log",
            str(ppo_log),
        ]
        torchrun = self.launcher[0] == "torchrun"
        # torchrun reads --run as an abbreviation of its own options: the alias passes through.
        argv += ["--run-name" if torchrun else "--run", run]
        self._cli[run] = CLIRun(argv, self.files.run(run), cwd=self.project, torchrun=torchrun)

    def finish(self, run: str) -> CLIResult:
        """Wait for a CLI run (starting it first if need be); merge its records into the bundle."""
        if run == "rollback_drill" and run not in self._cli:
            store = CheckpointStore(self.files.run("bc_trainer") / STORE_DIR)
            if store.promoted() is None:
                self.bc()  # the drill needs the BC step's promoted checkpoint
        self.steps.add(run)
        self.start(run)
        result = self._cli[run].wait()
        config = self.config() if run == "anneal_smoke" else self.rollback_config()
        self._merge(run, log_path(config.output.log_dir))
        if run == "anneal_smoke":
            self._draw_training()
        return result

    def _draw_training(self) -> None:
        """Send the figures of training whose records are in (step 2's after it trained, the
        smoke's after it ran) to be drawn in the background, while the runs go on; ``close``
        collects them (acceptance/figure_jobs.py). Drawn at the end, they would be the last
        thing the session waits for."""
        if figure_jobs.enabled():
            records = dataset_records(self.bundle, self.name)
            figure_jobs.in_background("training", self.files.figures, records)

    def drill_store_before(self) -> tuple[dict[str, str], str | None]:
        """The drill store's file digests and promoted id, taken just before the drill started."""
        assert self._drill_store_before is not None, "the rollback drill has not been started"
        return self._drill_store_before

    def _merge(self, run: str, log: Path) -> None:
        if log.exists():
            merge_run(self.bundle, self.name, run, read_log(log))

    def records(self, run: str) -> list[dict[str, Any]]:
        """This dataset's records of ``run`` in the bundle's run log (schema-checked)."""
        return [r for r in dataset_records(self.bundle, self.name) if r.get("run") == run]

    def close(self) -> None:
        waiting = self._held is not None
        for run in self._cli.values():
            run.kill()
        self._let_go()
        if waiting:  # an early drill never let go (step 2 failed): it trained nothing, keep none
            shutil.rmtree(self.files.run("rollback_drill"), ignore_errors=True)
        figure_jobs.wait()  # the figures drawn in the background are whole before the session ends
