"""The rehearsal's rules, without a session: which base config a dataset gets, the drill's
threshold, and the remedial action of each cause of failure (``acceptance/``)."""

from __future__ import annotations

import re
import string
import subprocess
import sys
from pathlib import Path

import pytest

from acceptance.base_config import (
    DEFAULT_BASE_CONFIG,
    choose_base_config,
    drill_threshold_option,
    given_base_config,
)
from acceptance.drill import drill_threshold
from acceptance.remedies import CAUSES, FALLBACK, remedial_action
from acceptance.steps import STEPS
from harness.config import overlay
from harness.datasets.registry import DatasetRef, resolve
from harness.errors import HarnessError

from .conftest import REPO, Dataset

POC_HYBRID = REPO / DEFAULT_BASE_CONFIG


# --- the drill's threshold ----------------------------------------------------------------------


def test_the_drill_keeps_the_threshold_asked_when_step_2_is_below_it() -> None:
    drill = drill_threshold(0.95, 0.904)
    assert (drill.used, drill.raised) == (0.95, False)
    assert drill.why == "step 2's hold-out accuracy 0.9040 is below 0.95, so the gate must fail"


@pytest.mark.parametrize(
    ("measured", "used"),
    [(0.95, 0.9501), (0.994, 0.9941), (0.97, 0.9701), (497 / 500, 0.9941), (0.99995, 1.0)],
)
def test_the_drill_raises_its_threshold_just_above_an_accuracy_that_meets_it(
    measured: float, used: float
) -> None:
    drill = drill_threshold(0.95, measured)
    assert drill.used == used and drill.raised
    assert measured < drill.used <= 1.0  # the reproduced accuracy cannot reach it
    assert f"raised its threshold to {used:g}" in drill.why


def test_a_perfect_accuracy_leaves_no_threshold_that_can_fail() -> None:
    drill = drill_threshold(0.95, 1.0)
    assert drill.used is None and not drill.raised
    assert "no threshold of at most 1 can make the BC gate fail" in drill.why
    assert drill.metrics()["threshold"] is None


@pytest.mark.parametrize("text", ["0", "-0.5", "1.01", "nan", "high", ""])
def test_a_drill_threshold_outside_0_1_is_refused(text: str) -> None:
    with pytest.raises(HarnessError, match=r"--drill-threshold=.*: expected a number in \(0, 1\]"):
        drill_threshold_option(text)


def test_the_drill_threshold_defaults_to_the_outline_s() -> None:
    assert drill_threshold_option(None) == 0.95
    assert drill_threshold_option("1") == 1.0


# --- which base config ------------------------------------------------------------------------


@pytest.fixture
def named(small_dataset: Dataset, tmp_path: Path) -> tuple[DatasetRef, Path]:
    """The small dataset, its manifest naming a base config of its own."""
    own = tmp_path / "configs" / "small.yaml"
    overlay(POC_HYBRID, own, ["bc.accuracy_threshold=0.7"])
    manifest = small_dataset.manifest()
    manifest.base_config = "../../configs/small.yaml"
    manifest.save()
    return resolve(str(small_dataset.manifest_path)), own


def test_a_manifest_s_base_config_is_used_unless_one_is_given(
    named: tuple[DatasetRef, Path], tmp_path: Path
) -> None:
    ref, own = named
    chosen = choose_base_config(ref, None, REPO)
    assert (chosen.path, chosen.chosen_by) == (own, "manifest")
    given = given_base_config(str(POC_HYBRID), tmp_path)
    chosen = choose_base_config(ref, given, REPO)
    assert (chosen.path, chosen.chosen_by) == (POC_HYBRID, "--base-config")


def test_a_manifest_without_base_config_gets_the_default(small_dataset: Dataset) -> None:
    chosen = choose_base_config(resolve(str(small_dataset.manifest_path)), None, REPO)
    assert (chosen.path, chosen.chosen_by) == (POC_HYBRID, "default")


def test_a_missing_or_broken_base_config_is_one_line(
    named: tuple[DatasetRef, Path], tmp_path: Path
) -> None:
    ref, own = named
    own.write_text("seed: [\n")
    with pytest.raises(HarnessError, match=re.escape(str(own))):
        choose_base_config(ref, None, REPO)
    own.unlink()
    with pytest.raises(HarnessError, match=r"base_config names .* which is not a file"):
        choose_base_config(ref, None, REPO)
    with pytest.raises(HarnessError, match=re.escape("--base-config=nope.yaml: no such file")):
        given_base_config("nope.yaml", tmp_path)


# --- causes and remedial actions ----------------------------------------------------------------


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("key", sorted(CAUSES))
def test_every_cause_s_action_formats_from_its_figures(key: str) -> None:
    action = CAUSES[key].action
    figures = {"name": "d", "arg": "d.json", "base": "base.yaml", "run": "bc_trainer"}
    cause = {"key": key} | {f: f"<{f}>" for f in _fields(action) - set(figures)}
    text = remedial_action("bc_trainer", "failed", cause, figures, "")
    assert text is not None and "{" not in text and "?" not in text and "\n" not in text
    assert all(f"<{f}>" in text for f in set(cause) - {"key"})


def test_a_failure_of_no_known_cause_gets_its_step_s_fallback() -> None:
    figures = {"name": "d", "arg": "d.json", "base": "b.yaml", "run": "rollback_drill"}
    text = remedial_action("rollback_drill", "failed", None, figures, "")
    assert text == FALLBACK["rollback_drill"].format(name="d")
    # A drill that failed for an unknown reason is not called a broken promotion.
    assert "promotion" not in text
    assert set(FALLBACK) == {s.key for s in STEPS}


def test_an_aborted_step_names_the_step_that_aborted_it() -> None:
    figures = {"name": "d", "arg": "d.json", "base": "b.yaml", "run": "rollback_drill"}
    text = remedial_action("rollback_drill", "aborted", None, figures, "BC trainer verification")
    assert text is not None and text.startswith("Fix BC trainer verification first")
    assert remedial_action("bc_trainer", "passed", None, figures, "") is None


def test_docs_list_every_cause() -> None:
    docs = (REPO / "docs" / "acceptance.md").read_text("utf-8")
    table = docs.split("## Causes and remedial actions", 1)[1]
    listed = set(re.findall(r"^\| `([a-z_0-9]+)` \|", table, flags=re.MULTILINE))
    assert listed == set(CAUSES)


def test_the_rerun_command_repeats_the_options_that_chose_what_was_rehearsed() -> None:
    from acceptance.remedies import remedial_action
    from acceptance.report import _rerun_options

    args = ["acceptance/", "-m", "rehearsal", "--base-config", "my base.yaml",
            "--drill-threshold=0.99", "--bundle=/tmp/b", "-n", "2"]  # fmt: skip
    options = _rerun_options({"args": args})
    assert options == " '--base-config=my base.yaml' --drill-threshold=0.99 --bundle=/tmp/b"
    action = remedial_action(
        "rollback_drill", "aborted", None, {"arg": "d.json", "options": options}, "BC"
    )
    assert "--dataset=d.json '--base-config=my base.yaml' --drill-threshold=0.99" in (action or "")
    assert _rerun_options({"args": ["acceptance/"]}) == ""
    torchrun = _rerun_options({"args": ["--launcher=torchrun", "--nproc-per-node", "2", "-q"]})
    assert torchrun == " --launcher=torchrun --nproc-per-node=2"


# --- start-up -----------------------------------------------------------------------------------


def test_the_plugin_and_the_fixtures_import_nothing_heavy() -> None:
    """pytest imports both before ``pytest_configure``, which starts the figure helper: what they
    need of numpy, jsonschema or h5py is imported later, while the helper imports matplotlib."""
    heavy = ("numpy", "jsonschema", "h5py", "yaml", "torch", "matplotlib")
    code = (
        "import sys, acceptance.plugin, acceptance.conftest\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == ""
