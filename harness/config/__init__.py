"""The training config: a YAML file read into a validated, complete, frozen ``Config``; overlays.

A config file (``configs/examples/poc_hybrid.yaml``) is checked against
``harness/schemas/config.schema.json``; optional keys take the schema's ``default``, and a
missing ``dataset.checksums`` is the sheet beside the manifest. Relative paths resolve against
the config file's own folder, so a loaded ``Config`` holds absolute paths only.

The package, from the bottom up:

- ``yaml_text``: reading YAML strictly (no repeated keys, ``1e-3`` is a number), writing it
  deterministically (``parse_yaml``, ``dump_yaml``)
- ``model``: the frozen dataclasses, one per section, and what a ``Config`` gives
  (``to_document``, ``to_yaml``, the recipe ``hash``, ``override``)
- ``keys``: the dotted keys and their types, read off the dataclasses (``known_keys``,
  ``path_keys``)
- ``pipeline``: one document's ``problems``, its defaults, and building a ``Config``
  (``config_from_document``, ``load_config``)
- ``overlay``: changes by dotted key (``Config.override``, ``--set``) and overlay files
  (``overlay``, ``write_overlay``, ``changed_keys``, ``flatten``)

None of it imports torch: the CLI checks configs without paying for it.
"""

from __future__ import annotations

from harness.config.keys import known_keys, path_keys
from harness.config.model import (
    AnnealConfig,
    BCConfig,
    Config,
    DatasetConfig,
    EnvConfig,
    OutputConfig,
    PPOConfig,
    TrainingConfig,
)
from harness.config.overlay import changed_keys, flatten, overlay, write_overlay
from harness.config.pipeline import config_from_document, load_config, problems
from harness.config.yaml_text import dump_yaml, parse_yaml

__all__ = [
    "AnnealConfig",
    "BCConfig",
    "Config",
    "DatasetConfig",
    "EnvConfig",
    "OutputConfig",
    "PPOConfig",
    "TrainingConfig",
    "changed_keys",
    "config_from_document",
    "dump_yaml",
    "flatten",
    "known_keys",
    "load_config",
    "overlay",
    "parse_yaml",
    "path_keys",
    "problems",
    "write_overlay",
]
