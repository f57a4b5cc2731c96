"""The acceptance plugin: dataset parametrisation, the abort rule, xdist grouping, the bundle.

Loaded by the root ``conftest.py`` (which also registers the options), so it
is present in every session but acts only in a *rehearsal session*: one whose arguments name
``acceptance/`` or a file in it. Roles follow pytest-xdist's: workers (or the only process, with
no ``-n``) run the steps; the controller (``acceptance/session.py``) collects every step's
report and, at the end of the session, writes each dataset's files and the session's verdict.
At the start it clears the files of the datasets about to be rehearsed, so a rerun never leaves
stale files of an earlier one beside its own, and with ``--fresh`` every other dataset's.

The controller holds each rehearsed dataset's bundle lock for the whole session (``bundle_lock``):
a second session on the same dataset and bundle waits ``BUNDLE_WAIT_S``, then stops with one
line naming the holder. A worker dies with the controller, even on SIGKILL (``die_with_parent``).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# At module level only what ``pytest_configure`` needs to start the figure helper: this module
# is imported while pytest starts on one core, and the helper's import of matplotlib fills the
# other. The rest (0.12 s of imports: jsonschema, the bundle, the controller) is imported by the
# hooks that use it, after the helper has started (docs/acceptance.md, Speed).
from acceptance import figure_jobs
from acceptance.cli_runs import die_with_parent
from acceptance.steps import STEP, Step
from harness.errors import HarnessError
from harness.locking import exclusive

if TYPE_CHECKING:
    from acceptance.base_config import BaseConfig
    from harness.datasets.registry import DatasetRef

ACCEPTANCE_DIR = Path(__file__).resolve().parent


@dataclass
class Settings:
    """The session's rehearsal options, resolved once in ``pytest_configure``."""

    project: Path
    bundle: Path
    datasets: list[DatasetRef]
    dataset_args: dict[str, str]
    """Dataset name -> the ``--dataset`` text that named it (for the rerun command)."""
    active: bool
    """A rehearsal session: the plugin clears and writes the bundle."""
    base_configs: dict[str, BaseConfig | None]
    """Dataset name -> the base config it is rehearsed on (``acceptance/base_config.py``);
    None for a manifest that cannot be read."""
    drill_threshold: float
    """The rollback drill's threshold as asked (``--drill-threshold``)."""


SETTINGS = pytest.StashKey[Settings]()
BUNDLE_LOCKS = pytest.StashKey[contextlib.ExitStack]()  # controller: held for the session
BUNDLE_WAIT_S = 10.0  # how long a session waits for another rehearsing the same dataset
BUNDLE_WAIT_ENV = "HARNESS_BUNDLE_WAIT_S"  # overrides BUNDLE_WAIT_S (seconds)
FAILED = pytest.StashKey[dict[str, set[str]]]()  # worker: dataset -> steps that did not pass


def settings(config: pytest.Config) -> Settings:
    return config.stash[SETTINGS]


def is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def _resolve_datasets(
    text: str, project: Path, here: Path
) -> tuple[list[DatasetRef], dict[str, str]]:
    from harness.datasets.registry import resolve

    refs: list[DatasetRef] = []
    args: dict[str, str] = {}
    parts = [p.strip() for p in text.split(",")]
    if not all(parts):
        raise pytest.UsageError(f"--dataset={text!r}: an empty name in the list")
    for part in parts:
        arg = part
        if "/" in part or part.endswith(".json"):
            path = Path(part).expanduser()
            arg = str(path if path.is_absolute() else here / path)
            if not Path(arg).is_file():
                raise pytest.UsageError(f"--dataset={part}: no such manifest file")
        try:
            ref = resolve(arg, root=project)
        except HarnessError as exc:
            raise pytest.UsageError(f"--dataset={part}: {exc}") from None
        if ref.name in args:
            raise pytest.UsageError(
                f"--dataset={text}: dataset '{ref.name}' is named twice ({args[ref.name]}, {part})"
            )
        refs.append(ref)
        args[ref.name] = part
    return refs, args


def _rehearsal_options(
    config: pytest.Config, datasets: list[DatasetRef], args: dict[str, str]
) -> tuple[dict[str, BaseConfig | None], float]:
    """Each dataset's base config and the drill's threshold, or a one-line usage error."""
    from acceptance.base_config import (
        choose_base_config,
        drill_threshold_option,
        given_base_config,
    )

    try:
        drill = drill_threshold_option(config.getoption("drill_threshold"))
        given = given_base_config(config.getoption("base_config"), config.invocation_params.dir)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    chosen: dict[str, BaseConfig | None] = {}
    for ref in datasets:
        try:
            chosen[ref.name] = choose_base_config(ref, given, config.rootpath)
        except HarnessError as exc:
            option = "--base-config" if given else f"--dataset={args[ref.name]}"
            raise pytest.UsageError(f"{option}: {exc}") from None
    return chosen, drill


def _rehearsal_session(config: pytest.Config) -> bool:
    for arg in config.args:
        path = Path(arg.split("::", 1)[0])
        path = (path if path.is_absolute() else config.invocation_params.dir / path).resolve()
        if path == ACCEPTANCE_DIR or ACCEPTANCE_DIR in path.parents:
            return True
    return False


# --- configuration ----------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    # The other rehearsal options are the root conftest's; this one is the bundle's own.
    parser.getgroup("rehearsal").addoption(
        "--fresh",
        action="store_true",
        default=False,
        help="clear every dataset an earlier session left in the bundle before rehearsing "
        "(default: keep them, listed as stale in acceptance_report.md)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    collects_suite = _rehearsal_session(config)
    active = collects_suite and not config.option.collectonly
    if active:
        # What harness/cli/__init__.py does for a CLI run, and why; set here before numpy's first
        # import, it holds for every process the session starts (workers, CLI runs, the helper).
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if active and is_controller(config) and not getattr(config.option, "numprocesses", None):
        # No workers: first of all, a helper process imports matplotlib, while pytest starts
        # on one core and the other is idle; later it draws the figures (figure_jobs.py).
        figure_jobs.start_helper()
    from acceptance.session import ControllerPlugin
    from harness.bundle import DEFAULT_BUNDLE

    project = config.rootpath
    bundle = Path(config.getoption("bundle") or project / DEFAULT_BUNDLE)
    bundle = (bundle if bundle.is_absolute() else config.invocation_params.dir / bundle).resolve()
    # Resolved for any session that collects the suite (--collect-only too), never for one that
    # only runs the unit tests, which need no dataset.
    datasets, args = (
        _resolve_datasets(_dataset_option(config), project, config.invocation_params.dir)
        if collects_suite
        else ([], {})
    )
    base_configs, drill = (
        _rehearsal_options(config, datasets, args) if collects_suite else ({}, 0.0)
    )
    config.stash[SETTINGS] = Settings(project, bundle, datasets, args, active, base_configs, drill)
    config.stash[FAILED] = {}
    if active and is_controller(config):
        config.stash[BUNDLE_LOCKS] = _hold_bundle(bundle, [ref.name for ref in datasets])
    elif active:
        # A worker, and with it its CLI runs, dies with the controller, even on SIGKILL.
        die_with_parent(os.getppid())
    if active:
        # Hypothesis's pytest plugin imports all of hypothesis in its terminal summary (tenths of
        # a second; docs/acceptance.md, Speed); the rehearsal has no property tests.
        config.pluginmanager.set_blocked("hypothesispytest")
        # At interpreter exit (atexit runs first), spare the final garbage collections over
        # torch's objects, which the in-process BC step imported (docs/acceptance.md, Speed).
        atexit.register(gc.freeze)
    if active and config.pluginmanager.hasplugin("pytest_jsonreport"):
        # The JSON report is part of the bundle: switched on without a flag. pytest-json-report
        # keeps it in memory (no file of its own unless asked); the controller writes one
        # filtered copy per dataset at the end.
        config.option.json_report = True
        if not any(a.startswith("--json-report-file") for a in config.invocation_params.args):
            config.option.json_report_file = None
            if config.option.json_report_verbosity is None:
                config.option.json_report_verbosity = 0  # no "auto-save skipped" line
    if active and is_controller(config):
        config.pluginmanager.register(
            ControllerPlugin(config, settings(config)), "rehearsal-bundle-writer"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    figure_jobs.stop()
    locks = config.stash.get(BUNDLE_LOCKS, None)
    if locks is not None:
        locks.close()
    settings = config.stash.get(SETTINGS, None)
    if settings is not None and settings.active:
        # Called before pytest's own unconfigure, whose garbage collection (to report
        # unraisable exceptions) would walk torch's objects for 0.1-0.15 s; the bundle is
        # written, and the rehearsal's code leaves no finaliser to report.
        gc.freeze()


def _dataset_option(config: pytest.Config) -> str:
    """``--dataset``'s text; given but empty (``--dataset=``) is a usage error, not idle_v1."""
    from harness.datasets.registry import DEFAULT_DATASET

    text = config.getoption("dataset")
    if text is None:
        return DEFAULT_DATASET
    if not text.strip():
        raise pytest.UsageError(
            f"--dataset={text}: no dataset named; give idle_v1, preflight, a name registered "
            "under data/bc_datasets/ or a manifest path (or leave --dataset out for idle_v1)"
        )
    return text


def _hold_bundle(bundle: Path, datasets: list[str]) -> contextlib.ExitStack:
    """Hold each dataset's bundle lock until the session ends (a second session on the same
    dataset and bundle waits, then refuses naming this one); sorted, so two sessions never
    each hold one lock the other needs."""
    text = os.environ.get(BUNDLE_WAIT_ENV) or str(BUNDLE_WAIT_S)
    try:
        wait_s = float(text)
    except ValueError:
        wait_s = -1.0
    if not 0 <= wait_s < float("inf"):
        raise pytest.UsageError(f"{BUNDLE_WAIT_ENV}={text}: not a number of seconds >= 0")
    from harness.bundle.layout import bundle_lock

    locks = contextlib.ExitStack()
    try:
        for name in sorted(datasets):
            what = f"pytest rehearsal of {name} into {bundle}"
            locks.enter_context(exclusive(bundle_lock(bundle, name), what, wait_s))
    except HarnessError as exc:
        locks.close()
        raise pytest.UsageError(f"--bundle={bundle}: {exc}") from None
    return locks


def pytest_report_header(config: pytest.Config) -> list[str]:
    opts = settings(config)
    if not opts.active:
        return []
    names = ", ".join(ref.name for ref in opts.datasets)
    return [f"rehearsal: datasets {names}; bundle {opts.bundle}"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "dataset" in metafunc.fixturenames and ACCEPTANCE_DIR in metafunc.definition.path.parents:
        refs = settings(metafunc.config).datasets
        # Session scope: pytest then runs one dataset's steps together, in file order.
        metafunc.parametrize(
            "dataset", refs, ids=[r.name for r in refs], indirect=True, scope="session"
        )


def _step_of(item: pytest.Item) -> Step | None:
    marker = item.get_closest_marker("rehearsal")
    if marker is None or "step" not in marker.kwargs:
        return None
    key = marker.kwargs["step"]
    if key not in STEP:
        raise pytest.UsageError(f"{item.nodeid}: unknown rehearsal step '{key}'")
    return STEP[key]


def _dataset_of(item: pytest.Item) -> str | None:
    from harness.datasets.registry import DatasetRef

    ref = getattr(item, "callspec", None) and item.callspec.params.get("dataset")
    return ref.name if isinstance(ref, DatasetRef) else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    from acceptance.session import PROPERTY

    for item in items:
        step, name = _step_of(item), _dataset_of(item)
        if step and name:
            # Travels with every report of the item, to the xdist controller too.
            item.user_properties.append((PROPERTY, {"dataset": name, "step": step.key}))


def steps_in_session(session: pytest.Session, dataset: str) -> set[str]:
    """The steps of ``dataset`` this process will run (after -k / -m selection)."""
    return {
        step.key
        for item in session.items
        if _dataset_of(item) == dataset and (step := _step_of(item)) is not None
    }


# --- xdist: one dataset's steps on one worker -----------------------------------------------


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if not settings(config).active:
        return None
    from xdist.scheduler import LoadScopeScheduling

    class DatasetScheduling(LoadScopeScheduling):
        """Group tests by the dataset id of ``test_x[<dataset>]``: the steps of one dataset
        share state (the in-process BC run, the background CLI runs) and run in order."""

        def _split_scope(self, nodeid: str) -> str:
            if nodeid.endswith("]") and "[" in nodeid:
                return nodeid[nodeid.rindex("[") + 1 : -1]
            return nodeid

    return DatasetScheduling(config, log)


# --- the abort rule (runs where the steps run) -----------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    step, name = _step_of(item), _dataset_of(item)
    if step is None or name is None:
        return
    failed = item.config.stash[FAILED].get(name, set())
    for need in step.needs:
        if need in failed:
            pytest.skip(STEP[need].aborts_with)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    step, name = _step_of(item), _dataset_of(item)
    if step and name and report.outcome != "passed" and not report.skipped:
        item.config.stash[FAILED].setdefault(name, set()).add(step.key)
    return report


# --- the controller: clear, then (acceptance/session.py) collect and write the bundle -------


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    from acceptance.bundle_writer import clear_dataset

    opts = settings(session.config)
    if opts.active and is_controller(session.config):
        try:
            for ref in opts.datasets:
                clear_dataset(opts.bundle, ref.name)
            if session.config.getoption("fresh"):
                _clear_others(opts.bundle, {ref.name for ref in opts.datasets})
        except HarnessError as exc:  # e.g. a damaged run log in the bundle: one line, exit 4
            raise pytest.UsageError(f"--bundle={opts.bundle}: {exc}") from None


def _clear_others(bundle: Path, mine: set[str]) -> None:
    """``--fresh``: clear every other dataset of the bundle, each under its own bundle lock (a
    session rehearsing one into the bundle makes this one stop, as for its own datasets)."""
    from acceptance.bundle_writer import clear_dataset
    from harness.bundle.layout import datasets_in

    if not bundle.is_dir():
        return
    for name in sorted(datasets_in(bundle) - mine):
        with _hold_bundle(bundle, [name]):
            clear_dataset(bundle, name)
