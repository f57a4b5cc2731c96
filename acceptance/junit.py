"""JUnit XML per dataset, ``junit_<dataset>.xml`` in the bundle, for CI systems' test reports.

pytest's own writer (``_pytest.junitxml.LogXML``, what ``--junitxml`` uses) is given only one
dataset's reports, one instance per dataset, on the controller: so each file holds that
dataset's five steps as five test cases, the same with ``-n 2`` as serially. Family ``xunit1``,
because per-test ``<properties>`` (which ``xunit2``'s schema leaves out) carry each step's
figures: ``dataset``, ``step``, ``cause`` when a recognised cause failed it, and one
``metric.<name>`` per metric (strings as they are, anything else as JSON). GitLab, Jenkins and
the common GitHub Actions reporters read ``xunit1``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from _pytest.junitxml import LogXML

from harness.atomic import atomic_path

FAMILY = "xunit1"


def junit_properties(user_properties: list[tuple[str, Any]], marker: str) -> list[tuple[str, str]]:
    """A step's ``record_property`` values as flat JUnit properties (``marker``: the property
    naming the dataset and step)."""
    flat: list[tuple[str, str]] = []
    metrics: dict[str, Any] = {}  # a step may record its metrics twice; the last value counts
    for name, value in user_properties:
        if name == marker and isinstance(value, dict):
            flat += [("dataset", str(value["dataset"])), ("step", str(value["step"]))]
        elif name == "metrics" and isinstance(value, dict):
            metrics.update(value)
        elif name == "cause" and isinstance(value, dict):
            flat.append(("cause", str(value.get("key"))))
        else:
            flat.append((name, _text(value)))
    return flat + [(f"metric.{k}", _text(v)) for k, v in metrics.items()]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


class DatasetJUnit:
    """One dataset's JUnit XML, fed its tests' reports as the controller receives them."""

    def __init__(self, dataset: str, marker: str) -> None:
        self.marker = marker
        # The file name is set when it is written (atomically, under a temporary name).
        self.xml = LogXML("junit.xml", None, suite_name=f"rehearsal_{dataset}", family=FAMILY)
        self.xml.pytest_sessionstart()

    def add(self, report: pytest.TestReport) -> None:
        mine = copy.copy(report)
        mine.user_properties = junit_properties(list(report.user_properties), self.marker)
        self.xml.pytest_runtest_logreport(mine)

    def write(self, target: Path) -> None:
        with atomic_path(target) as tmp:
            self.xml.logfile = str(tmp)
            self.xml.pytest_sessionfinish()
