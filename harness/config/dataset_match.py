"""Where a config meets its dataset: the environment must be the one the captures were recorded
in, id and ``gymnasium.make`` keyword arguments alike. ``harness config check``, ``config overlay
--dataset`` and the trainer all ask here, so a mismatch is refused before any training."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.config.model import Config
    from harness.datasets.manifest import Manifest


def env_mismatch(config: Config, manifest: Manifest) -> str | None:
    """Why ``config``'s environment is not ``manifest``'s, in one line; None when it is."""
    mine, theirs = config.env.spec(), manifest.env_spec()
    if mine == theirs:
        return None
    if mine.id != theirs.id:
        what = f"env.id is '{mine.id}'"
        recorded = f"'{theirs.id}'"
    else:
        what = f"env.kwargs are {mine.kwargs_text}"
        recorded = f"'{theirs.id}' with keyword arguments {theirs.kwargs_text}"
    return (
        f"{config.source or 'config'}: {what} but dataset '{manifest.dataset}' "
        f"({config.dataset.manifest}) was recorded in {recorded}"
    )


def check_env_matches(config: Config, manifest: Manifest) -> None:
    """Raise ``HarnessError`` when ``config`` would train in another environment than the one
    its dataset was recorded in."""
    problem = env_mismatch(config, manifest)
    if problem:
        raise HarnessError(problem)
