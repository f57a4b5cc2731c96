"""Which base config a dataset is rehearsed on, and the drill's threshold option.

A dataset names its own base config in its manifest (``base_config``, a path relative to the
manifest's folder). The rule, for each dataset of a session:

1. ``--base-config=PATH`` given: that config, for every dataset of the session;
2. else the manifest's ``base_config``;
3. else ``configs/examples/poc_hybrid.yaml``.

The overlay written from it takes the dataset (manifest, checksum sheet) and the environment
(``env.id``, ``env.kwargs``) from the manifest, and everything else, thresholds included, from
the base config. Every choice is checked at configuration, in the controller and in each worker
alike, so a missing or broken base config is one usage line before anything runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from harness.datasets.registry import DatasetRef
from harness.errors import HarnessError

DEFAULT_BASE_CONFIG = Path("configs/examples/poc_hybrid.yaml")
DEFAULT_DRILL_THRESHOLD = 0.95  # the outline's rollback overlay

OPTION, MANIFEST, DEFAULT = "--base-config", "manifest", "default"


@dataclass(frozen=True)
class BaseConfig:
    """The base config a dataset is rehearsed on, and what chose it."""

    path: Path
    chosen_by: str
    """``--base-config``, ``manifest`` (its ``base_config``) or ``default``."""

    def to_json(self) -> dict[str, str]:
        return {"path": str(self.path), "chosen_by": self.chosen_by}

    @property
    def why(self) -> str:
        """What chose it, as the report says it."""
        return {
            OPTION: "given with --base-config",
            MANIFEST: "named by the manifest's base_config",
            DEFAULT: "the default: no --base-config, and the manifest names none",
        }[self.chosen_by]


def choose_base_config(ref: DatasetRef, given: Path | None, project: Path) -> BaseConfig | None:
    """The base config of ``ref`` under the rule above, checked to load as a config.

    None when the manifest cannot be read (and no ``--base-config`` was given): the dataset's
    set-up then fails on the manifest's problem before anything uses a base config, and the
    report says so, as for any dataset.
    """
    # Imported here: the plugin, and so this module, is loaded by every pytest session of the
    # checkout, unit runs included, which need no config read (tenths of a second of imports).
    from harness.config import load_config
    from harness.datasets.manifest import load_manifest

    if given is not None:
        choice = BaseConfig(given, OPTION)
    else:
        try:
            named = load_manifest(ref.manifest).base_config_path
        except HarnessError:
            return None
        choice = (
            BaseConfig(named, MANIFEST)
            if named is not None
            else BaseConfig(project / DEFAULT_BASE_CONFIG, DEFAULT)
        )
    if choice.chosen_by == MANIFEST and not choice.path.is_file():
        raise HarnessError(
            f"{ref.manifest}: base_config names {choice.path}, which is not a file; "
            "fix the manifest or give --base-config"
        )
    load_config(choice.path)  # one HarnessError line naming the file and the key at fault
    return choice


def given_base_config(text: str | None, here: Path) -> Path | None:
    """``--base-config`` as given, resolved against the invocation folder."""
    if not text:
        return None
    path = Path(text).expanduser()
    path = (path if path.is_absolute() else here / path).resolve()
    if not path.is_file():
        raise HarnessError(f"--base-config={text}: no such file")
    return path


def drill_threshold_option(text: str | None) -> float:
    """``--drill-threshold``: a number in (0, 1]."""
    if text is None:
        return DEFAULT_DRILL_THRESHOLD
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value <= 1.0:
        raise HarnessError(f"--drill-threshold={text}: expected a number in (0, 1], e.g. 0.95")
    return value
