"""Fixtures shared by the rehearsal's steps, one instance per dataset.

``dataset`` is parametrised by the plugin from ``--dataset`` (session scope, so pytest runs one
dataset's five steps together, in order). Everything here is built once per dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from acceptance.plugin import settings, steps_in_session
from acceptance.rehearsal import Rehearsal
from harness.datasets.checksums import ChecksumSheet, load_sheet
from harness.datasets.manifest import Manifest, load_manifest
from harness.datasets.registry import DatasetRef
from harness.errors import HarnessError


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
