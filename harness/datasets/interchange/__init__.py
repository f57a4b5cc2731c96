"""Demonstrations in other libraries' formats: imported as captures, and captures exported.

- ``episodes``: what every reader hands over (a source, its episodes, the slices that hold
  them), the ``--episodes`` selection, and one episode checked against the environment
- ``writer``: the streaming writer: one capture, written episode by episode
- ``minari_source``, ``d4rl_source``, ``robomimic_source``: one reader per format
- ``minari_export``: captures written as a Minari dataset folder

The formats are read with h5py alone: importing needs neither Minari, D4RL nor robomimic.
"""

from __future__ import annotations

FORMATS = ("minari", "d4rl", "robomimic")


def open_source(fmt: str, src: str, obs_keys: list[str] | None = None):  # -> Source
    """Open ``src`` as a source of format ``fmt`` (one of ``FORMATS``)."""
    from harness.datasets.interchange.episodes import SourceError

    if obs_keys is not None and fmt != "robomimic":
        raise SourceError(f"--obs-keys is for robomimic files; a {fmt} source has one observation")
    if fmt == "minari":
        from harness.datasets.interchange.minari_source import open_minari

        return open_minari(src)
    if fmt == "d4rl":
        from harness.datasets.interchange.d4rl_source import open_d4rl

        return open_d4rl(src)
    from harness.datasets.interchange.robomimic_source import open_robomimic

    return open_robomimic(src, obs_keys)
