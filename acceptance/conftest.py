"""Fixtures shared by the rehearsal's steps, one instance per dataset.

``dataset`` is parametrised by the plugin from ``--dataset`` (session scope, so pytest runs one
dataset's five steps together, in order). Everything here is built once per dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from acceptance.plugin import settings, steps_in_session
from harness.errors import HarnessError

# pytest imports this file before ``pytest_configure``, which starts the figure helper: what the
# fixtures need (numpy and h5py among it, 0.2 s) is imported when they first run.
if TYPE_CHECKING:
    from acceptance.rehearsal import Rehearsal
    from harness.datasets.checksums import ChecksumSheet
    from harness.datasets.manifest import Manifest
    from harness.datasets.registry import DatasetRef


@dataclass(frozen=True)
class RehearsalDataset:
    """The dataset a rehearsal runs on, resolved: its manifest, checksum sheet and accepted
    captures."""

    ref: DatasetRef
    manifest: Manifest
    sheet: ChecksumSheet

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def captures(self) -> list[Path]:
        return [self.manifest.capture_path(e) for e in self.manifest.accepted()]


@pytest.fixture(scope="session")
def dataset(request: pytest.FixtureRequest) -> RehearsalDataset:
    from harness.datasets.checksums import load_sheet
    from harness.datasets.manifest import load_manifest

    ref: DatasetRef = request.param
    try:
        return RehearsalDataset(ref, load_manifest(ref.manifest), load_sheet(ref.checksums))
    except HarnessError as exc:
        # A manifest or sheet the harness refuses: the step's error is that one line, not a
        # traceback, in the terminal, the report and the summary alike.
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def rehearsal(request: pytest.FixtureRequest, dataset: RehearsalDataset) -> Iterator[Rehearsal]:
    """The dataset's runs; its set-up copies the manifest and sheet and writes the overlays."""
    from acceptance.rehearsal import Rehearsal

    opts = settings(request.config)
    base = opts.base_configs[dataset.name]
    # None only for a manifest that cannot be read, which the dataset fixture refused first.
    assert base is not None, f"{dataset.name}: no base config"
    r = Rehearsal(
        dataset.ref,
        opts.project,
        opts.bundle,
        steps_in_session(request.session, dataset.name),
        base=base,
        drill_asked=opts.drill_threshold,
        launcher=(request.config.getoption("launcher"), request.config.getoption("nproc_per_node")),
    )
    r.prepare()
    yield r
    r.close()


@pytest.fixture(scope="session")
def overlay(rehearsal: Rehearsal) -> Path:
    """``config_<dataset>.yaml``: the dataset's base config on this dataset (and its
    environment), outputs inside the bundle."""
    return rehearsal.files.config


@pytest.fixture(scope="session")
def rollback_overlay(rehearsal: Rehearsal) -> Path:
    """``rollback_config_<dataset>.yaml``: the overlay with the drill's threshold (the one asked
    for, or the one the drill raised it to once it started)."""
    return rehearsal.files.rollback_config
