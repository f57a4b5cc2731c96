"""Root conftest: the rehearsal's options and its plugin (``acceptance/plugin.py``).

``pytest acceptance/ -m rehearsal [--dataset=...] [--base-config=PATH] [--drill-threshold=X]
[--launcher=python|torchrun [--nproc-per-node=N]] [--bundle=DIR]`` runs the Phase 5.4 ops rehearsal; plain ``pytest`` runs the unit tests under ``tests/``, where the plugin stays idle.
"""

from __future__ import annotations

import pytest

# pytester: tests/test_acceptance_suite.py runs the rehearsal as real pytest sessions.
pytest_plugins = ("acceptance.plugin", "pytester")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "rehearsal", "Phase 5.4 ops rehearsal (pytest acceptance/ -m rehearsal)"
    )
    group.addoption(
        "--dataset",
        default="idle_v1",
        metavar="DATASET[,DATASET...]",
        help="datasets to rehearse, comma-separated: idle_v1 (default, the production dataset), "
        "preflight (the synthetic dataset), another name registered under data/bc_datasets/, "
        "or a path to a manifest file",
    )
    group.addoption(
        "--base-config",
        default=None,
        metavar="PATH",
        help="base config of every dataset's overlays (default: the config a dataset's manifest "
        "names in base_config, else configs/examples/poc_hybrid.yaml); the environment always "
        "comes from the dataset's manifest",
    )
    group.addoption(
        "--drill-threshold",
        default=None,
        metavar="X",
        help="BC accuracy threshold of the rollback drill, in (0, 1] (default 0.95); raised just "
        "above step 2's accuracy when that accuracy already meets it",
    )
    group.addoption(
        "--launcher",
        default="python",
        choices=("python", "torchrun"),
        help="how the anneal smoke and the drill start scripts/run_training.py: python "
        "(default, one process) or torchrun (data-parallel, docs/distributed.md)",
    )
    group.addoption(
        "--nproc-per-node",
        default=2,
        type=int,
        metavar="N",
        help="processes per run with --launcher=torchrun (default 2)",
    )
    group.addoption(
        "--bundle",
        default=None,
        metavar="DIR",
        help="folder of the acceptance bundle (default: artifacts/m5/acceptance in the checkout); "
        "a rehearsal replaces only the files of the datasets it runs",
    )
