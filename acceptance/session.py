"""The controller of a rehearsal session: it collects every step's reports (from every worker)
and, at the end, writes each dataset's files, then the session's own.

For each dataset: its JUnit XML (``acceptance/junit.py``), the figures not drawn yet
(``acceptance/figures.py``), its pytest JSON report, summary and report (``acceptance/report.py``)
and tag manifest. Then, under the bundle's session lock, ``acceptance.json``,
``acceptance_report.md`` and ``tagmanifest.txt`` (``harness/bundle/session.py``): one verdict
for the session, and the datasets of earlier sessions listed apart as stale.

Only the controller writes these files; with ``-n`` the workers write only their datasets' runs,
overlays and copies (and, while they wait for the drill, the figures of training).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from acceptance import figure_jobs
from acceptance import report as bundle_report
from acceptance.junit import DatasetJUnit
from acceptance.steps import STEPS, Collected
from harness.bundle import DatasetFiles
from harness.bundle.layout import session_lock
from harness.bundle.session import (
    command_line,
    dataset_entry,
    stale_entries,
    verdict,
    write_session,
)
from harness.errors import HarnessError
from harness.formatting import utc_now
from harness.locking import exclusive
from harness.validation import load_json

PROPERTY = "rehearsal"  # the user property naming an item's dataset and step


class ControllerPlugin:
    """Registered on the controller of a rehearsal session (see the module docstring)."""

    def __init__(self, config: pytest.Config, opts: Any) -> None:
        self.config = config
        self.opts = opts
        self.started = time.perf_counter()
        self.started_at = utc_now()
        self.steps: dict[tuple[str, str], Collected] = {}
        self.junit = {ref.name: DatasetJUnit(ref.name, PROPERTY) for ref in opts.datasets}
        self.json_report: dict[str, Any] | None = None
        self.problems: list[str] = []
        self.summaries: dict[str, dict[str, Any]] = {}
        if _workers(config):
            # The controller only waits while the workers run: import matplotlib meanwhile.
            figure_jobs.warm_up()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        if PROPERTY not in props:
            return
        name = props[PROPERTY]["dataset"]
        if name in self.junit:
            self.junit[name].add(report)
        key = (name, props[PROPERTY]["step"])
        seen = self.steps.setdefault(key, Collected(report.nodeid))
        seen.duration += report.duration
        if isinstance(props.get("metrics"), dict):
            seen.metrics.update(props["metrics"])
        if isinstance(props.get("cause"), dict):
            seen.cause = props["cause"]
        outcome = _outcome(report)
        if outcome is not None and seen.outcome in ("not run", "passed"):
            seen.outcome = outcome
            seen.message = None if outcome == "passed" else _message(report)

    @pytest.hookimpl(optionalhook=True)
    def pytest_json_modifyreport(self, json_report: dict[str, Any]) -> None:
        # pytest-json-report leaves "environment" empty with pytest-metadata 3: fill it.
        json_report["environment"] = bundle_report.environment(self.opts.project)
        self.json_report = json_report

    @pytest.hookimpl(trylast=True)  # after pytest-json-report has built its report
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        session_s = time.perf_counter() - self.started
        pytest_info = {
            "args": list(self.config.invocation_params.args),
            "workers": _workers(self.config),
            "exitstatus": int(exitstatus),
        }
        for ref in self.opts.datasets:
            files = DatasetFiles(self.opts.bundle, ref.name)
            try:
                self.junit[ref.name].write(files.junit)
                self.summaries[ref.name] = bundle_report.write_bundle(
                    files,
                    ref,
                    self.opts.dataset_args[ref.name],
                    project=self.opts.project,
                    base=self.opts.base_configs.get(ref.name),
                    steps=[(s, self.steps.get((ref.name, s.key), Collected(None))) for s in STEPS],
                    json_report=self.json_report,
                    session_s=session_s,
                    started_at=self.started_at,
                    pytest_info=pytest_info,
                )
            except (OSError, HarnessError, ValueError) as exc:
                self.problems.append(f"{ref.name}: the bundle could not be written: {exc}")
        try:
            self._write_session_files(int(exitstatus), pytest_info["workers"])
        except (OSError, HarnessError, ValueError) as exc:
            self.problems.append(f"the session files could not be written: {exc}")
        if self.problems and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def _write_session_files(self, exitstatus: int, workers: int) -> None:
        """``acceptance.json`` and its report: this session's datasets, earlier ones as stale."""
        root = self.opts.bundle
        env = bundle_report.environment(self.opts.project)
        with exclusive(session_lock(root), f"session files of {root}"):
            current = [dataset_entry(root, s) for s in self.summaries.values()]
            names = {ref.name for ref in self.opts.datasets}
            write_session(
                root,
                {
                    "schema_version": 1,
                    "passed": len(current) == len(names) and all(e["passed"] for e in current),
                    "started_at": self.started_at,
                    "finished_at": utc_now(),
                    "command": command_line(list(self.config.invocation_params.args)),
                    "exit_status": exitstatus,
                    "workers": workers,
                    "git_commit": env["git_commit"],
                    "git_dirty": env["git_dirty"],
                    "datasets": current,
                    "cleared": [],
                    "stale": stale_entries(root, names),
                },
            )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        root = self.opts.bundle
        terminalreporter.write_sep("-", f"acceptance bundle: {root}")
        for ref in self.opts.datasets:
            files = DatasetFiles(root, ref.name)
            shown = "not written"
            if files.summary.is_file():
                shown = verdict(load_json(files.summary, "summary")["passed"])
            terminalreporter.write_line(f"{ref.name}: rehearsal {shown}; {files.report.name}")
        session_json = root / "acceptance.json"
        if session_json.is_file():
            doc = load_json(session_json, "session file")
            stale = f"; {len(doc['stale'])} stale dataset(s) listed apart" if doc["stale"] else ""
            terminalreporter.write_line(
                f"session: {verdict(doc['passed'])}; acceptance_report.md{stale}",
                bold=True,
                red=not doc["passed"],
                green=doc["passed"],
            )
        for problem in self.problems:
            terminalreporter.write_line(problem, red=True)


def _outcome(report: pytest.TestReport) -> str | None:
    if report.when == "setup":
        if report.skipped:
            return "aborted" if _message(report).startswith("aborted:") else "skipped"
        return "error" if report.failed else None
    if report.when == "call":
        return report.outcome
    return "error" if report.failed else None


def _message(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, "Skipped: reason")
        text = longrepr[2].removeprefix("Skipped: ")
    else:
        crash = getattr(longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(longrepr)
        # The assertion's own message; pytest's introspection lines after it hold reprs.
        text = text.strip().split("\n", 1)[0].removeprefix("AssertionError: ")
        text = text.removeprefix("Failed: ")  # pytest.fail: a step's own one-line verdict
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= 600 else one_line[:597] + "..."


def _workers(config: pytest.Config) -> int:
    numprocesses = getattr(config.option, "numprocesses", None)
    dist = getattr(config.option, "dist", "no")
    return int(numprocesses or 0) if dist != "no" else 0
