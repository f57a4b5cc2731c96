"""Training configs and overlays: loading, one-line errors, path rebasing, the recipe hash."""

from __future__ import annotations

import ast
import copy
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import harness.config as config_module
import harness.config.pipeline as pipeline
from harness.config import (
    changed_keys,
    config_from_document,
    flatten,
    known_keys,
    load_config,
    overlay,
    path_keys,
    problems,
)
from harness.config.keys import KEY_TYPES, SECTIONS
from harness.datasets.registry import resolve, sheet_beside
from harness.errors import HarnessError, SchemaError
from harness.validation import schema_problems, validator

from .conftest import IDLE_V1, PREFLIGHT, REPO, assert_one_line_error, call_cli, run_cli

BASE = REPO / "configs" / "examples" / "poc_hybrid.yaml"
RAW = yaml.safe_load(BASE.read_text())
MANIFEST = IDLE_V1 / "manifests" / "idle_v1.json"
SHEET = IDLE_V1 / "checksums" / "idle_v1.json"


def write_config(folder: Path, change: Callable[[dict[str, Any]], Any] | None = None) -> Path:
    """The base config with absolute dataset paths and outputs in ``folder``, edited."""
    doc = copy.deepcopy(RAW)
    doc["dataset"] = {"manifest": str(MANIFEST), "checksums": str(SHEET)}
    doc["output"] = {"log_dir": str(folder / "logs"), "checkpoint_dir": str(folder / "ckpt")}
    if change is not None:
        change(doc)
    path = folder / "cfg" / "bad.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def load_error(path: Path) -> str:
    """The one-line message of loading ``path``, which must start with the path."""
    with pytest.raises(HarnessError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    return message


def text_of(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


# --- the base config -----------------------------------------------------------------------


def test_base_config_loads_with_absolute_paths_to_existing_files() -> None:
    config = load_config(BASE)
    assert config.source == BASE
    assert config.dataset.manifest == MANIFEST and config.dataset.manifest.is_file()
    assert config.dataset.checksums == SHEET and config.dataset.checksums.is_file()
    assert config.output.log_dir == REPO / "runs" / "poc_hybrid" / "logs"
    assert config.output.checkpoint_dir == REPO / "runs" / "poc_hybrid" / "checkpoints"
    for key in path_keys():
        section, name = key.split(".")
        assert getattr(getattr(config, section), name).is_absolute(), key
    assert (config.seed, config.env.id, config.bc.accuracy_threshold) == (0, "CartPole-v1", 0.8)
    assert config.bc.hidden_sizes == (64, 64) and config.ppo.target_kl is None
    assert isinstance(config.bc.lr, float) and isinstance(config.ppo.epochs, int)


def test_base_file_is_complete_and_holds_the_schema_defaults() -> None:
    """The base file spells out every key, with the values a config that omits them gets."""
    flat = flatten(RAW)
    assert list(flat) == known_keys()
    schema = validator("config").schema
    for key, value in flat.items():
        name, _, sub = key.partition(".")
        if not sub or "default" not in (leaf := schema["properties"][name]["properties"][sub]):
            continue
        assert value == leaf["default"], key


def test_minimal_config_gets_the_defaults_and_the_conventional_sheet(tmp_path: Path) -> None:
    minimal = {
        "seed": 0,
        "dataset": {"manifest": str(MANIFEST)},
        "env": {"id": "CartPole-v1"},
        "bc": {"accuracy_threshold": 0.8},
        "output": {"log_dir": "logs", "checkpoint_dir": "ckpt"},
    }
    config = config_from_document(minimal, tmp_path)
    assert config.dataset.checksums == SHEET
    assert config.output.log_dir == tmp_path / "logs"
    # Same recipe as the base, which spells the same values out.
    assert config.hash() == load_config(BASE).hash()
    assert config.to_document()["ppo"] == load_config(BASE).to_document()["ppo"]


def test_to_document_round_trips_in_the_base_key_order(tmp_path: Path) -> None:
    config = load_config(BASE)
    document = config.to_document()
    assert list(document) == ["seed", "dataset", "env", "bc", "ppo", "anneal", "output"]
    assert list(flatten(document)) == known_keys()
    assert schema_problems(document, "config") == []
    assert document["bc"]["hidden_sizes"] == [64, 64]
    assert config_from_document(document, tmp_path) == config
    relative = config.to_document(relative_to=BASE.parent)
    assert relative["dataset"] == RAW["dataset"] and relative["output"] == RAW["output"]
    assert config_from_document(relative, BASE.parent) == config


def test_paths_keep_symbolic_links(tmp_path: Path) -> None:
    """Relative paths resolve lexically against the config's folder, as the path was given."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    path = tmp_path / "link" / "c.yaml"
    path.write_text(yaml.safe_dump({**RAW, "output": {"log_dir": "l", "checkpoint_dir": "c"}}))
    assert load_config(path).output.log_dir == tmp_path / "link" / "l"


def test_config_check_prints_the_resolved_config_and_its_hash() -> None:
    result = call_cli("config", "check", BASE)
    assert result.returncode == 0, result.stderr
    config = load_config(BASE)
    *body, last = result.stdout.strip().splitlines()
    assert last == f"# config hash: {config.hash()}"
    assert yaml.safe_load("\n".join(body)) == config.to_document()


def test_config_check_refuses_a_missing_dataset(tmp_path: Path) -> None:
    path = write_config(tmp_path, lambda d: d["dataset"].update(manifest="../nowhere.json"))
    load_config(path)  # valid as a document; only its dataset is missing
    assert_one_line_error(call_cli("config", "check", path), "bad.yaml", "dataset.manifest")


def test_config_module_does_not_import_torch() -> None:
    modules = sorted(Path(config_module.__file__).parent.glob("*.py"))
    assert len(modules) > 1  # the package, not only its __init__
    for module in modules:
        tree = ast.parse(module.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] == "torch"], module.name


def test_importing_the_config_package_loads_no_torch_gymnasium_or_h5py() -> None:
    """What the package imports, directly or not: the CLI checks configs without paying for
    PyTorch, Gymnasium or HDF5."""
    code = (
        "import sys, harness.config\n"
        "print(sorted(m for m in ('torch', 'gymnasium', 'h5py') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- the schema and the dataclasses: two declarations held equal ----------------------------


def _declares(kind: Any, schema: dict[str, Any]) -> bool:
    """Whether a key's schema declares the Python type of its field."""
    if get_origin(kind) is Literal:
        return schema.get("enum") == list(get_args(kind))
    if get_origin(kind) is tuple:
        return schema.get("type") == "array" and schema.get("items", {}).get("type") == "integer"
    if kind == float | None:
        return schema.get("type") == ["number", "null"]
    if get_origin(kind) is dict:
        return schema.get("type") == "object"
    types = {int: "integer", float: "number", str: "string", Path: "string", bool: "boolean"}
    return kind in types and schema.get("type") == types[kind]


def schema_disagreements(schema: dict[str, Any]) -> list[str]:
    """Where a config JSON Schema and the dataclasses (harness.config.keys) disagree: sections
    and keys and their order, types, path keys, and required keys (those without a default)."""
    defs = schema.get("$defs", {})

    def leaf(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        return node if ref is None else {**defs[ref.rsplit("/", 1)[-1]], **node}

    found = []
    top = schema["properties"]
    if list(top) != list(SECTIONS):
        found.append(f"sections {list(top)} != {list(SECTIONS)}")
    for name, keys in SECTIONS.items():
        node = top.get(name, {})
        if (name in schema.get("required", [])) == ("default" in node):
            found.append(f"{name}: required at the top level is not the same as having no default")
        entries = {name: node} if not keys else node.get("properties", {})
        if keys and list(entries) != keys:
            found.append(f"{name}: keys {list(entries)} != {keys}")
        for key in keys or [name]:
            dotted = f"{name}.{key}" if keys else name
            sub = entries.get(key, {})
            if not _declares(KEY_TYPES[dotted], leaf(sub)):
                found.append(f"{dotted}: {leaf(sub)} is no {KEY_TYPES[dotted]}")
            if (sub.get("$ref") == "#/$defs/path") != (KEY_TYPES[dotted] is Path):
                found.append(f"{dotted}: a path in one declaration only")
        if keys:
            # dataset.checksums has no default in the schema: it is the sheet beside the manifest.
            without = [k for k in keys if "default" not in entries.get(k, {})]
            expected = [k for k in without if f"{name}.{k}" != "dataset.checksums"]
            if sorted(node.get("required", [])) != sorted(expected):
                found.append(f"{name}: required {node.get('required', [])} != {expected}")
    return found


def test_the_schema_declares_the_dataclasses_keys() -> None:
    assert schema_disagreements(validator("config").schema) == []


def _swap_bc_keys(s: dict[str, Any]) -> None:
    bc = s["properties"]["bc"]
    bc["properties"] = dict(reversed(bc["properties"].items()))


@pytest.mark.parametrize(
    "break_it",
    [
        lambda s: s["properties"]["bc"]["properties"].pop("lr"),
        lambda s: s["properties"]["ppo"]["properties"].update(lr_decay={"type": "number"}),
        _swap_bc_keys,
        lambda s: s["properties"].pop("anneal"),
        lambda s: s["properties"]["bc"]["properties"].update(epochs={"type": "number"}),
        lambda s: s["properties"]["ppo"]["properties"]["target_kl"].update(type="number"),
        lambda s: s["properties"]["ppo"]["properties"].update(hidden_sizes={"type": "integer"}),
        lambda s: s["properties"]["anneal"]["properties"]["schedule"].update(enum=["linear"]),
        lambda s: s["properties"]["env"]["properties"].update(id={"$ref": "#/$defs/path"}),
        lambda s: s["properties"]["output"]["properties"].update(log_dir={"type": "string"}),
        lambda s: s["properties"]["bc"]["properties"]["accuracy_threshold"].update(default=0.8),
        lambda s: s["properties"]["ppo"]["properties"]["lr"].pop("default"),
        lambda s: s["properties"]["dataset"].update(required=["manifest", "checksums"]),
        lambda s: s["properties"]["ppo"].pop("default"),
        lambda s: s["required"].remove("output"),
    ],
)
def test_a_schema_that_disagrees_with_the_dataclasses_is_caught(
    break_it: Callable[[dict[str, Any]], Any],
) -> None:
    broken = copy.deepcopy(validator("config").schema)
    break_it(broken)
    assert schema_disagreements(broken) != []


# --- one pipeline: defaults from the schema, one validation per document -------------------


def test_defaults_are_filled_from_the_schema_without_changing_it() -> None:
    schema = copy.deepcopy(validator("config").schema)
    document = {
        "seed": 0,
        "dataset": {"manifest": "m.json"},
        "env": {"id": "CartPole-v1"},
        "bc": {"accuracy_threshold": 0.8},
        "ppo": {"epochs": 3},
        "output": {"log_dir": "l", "checkpoint_dir": "c"},
    }
    assert problems(document) == []
    assert flatten(document) == {
        **{k: v for k, v in flatten(RAW).items() if not k.startswith(("dataset.", "output."))},
        "output.tensorboard": False,
        "ppo.epochs": 3,
        "dataset.manifest": "m.json",
        "output.log_dir": "l",
        "output.checkpoint_dir": "c",
    }
    document["anneal"]["schedule"] = "exponential"  # a default is a copy, not the schema's own
    assert validator("config").schema == schema


class _CountingValidator:
    """Counts the documents the config pipeline validates."""

    def __init__(self, real: Any) -> None:
        self.real, self.count = real, 0

    def iter_errors(self, document: Any) -> Any:
        self.count += 1
        return self.real.iter_errors(document)


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> _CountingValidator:
    counting = _CountingValidator(pipeline._filling_validator())
    monkeypatch.setattr(pipeline, "_filling_validator", lambda: counting)
    return counting


def test_each_load_override_and_overlay_validates_once_per_document(
    tmp_path: Path, validations: _CountingValidator
) -> None:
    config = load_config(BASE)
    assert validations.count == 1
    config.override({"seed": 2})
    assert validations.count == 2
    overlay(BASE, tmp_path / "o.yaml", ["seed=3"])
    assert validations.count == 4  # the base, then the result


# --- the default checksum sheet: one rule, by the manifest's file name ---------------------


def test_the_default_sheet_is_named_after_the_manifest_file(tmp_path: Path) -> None:
    """A manifest x/manifests/copy.json of the dataset 'other' has the sheet
    x/checksums/copy.json, whether named to the registry or to a config."""
    manifest = tmp_path / "x" / "manifests" / "copy.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({**json.loads(MANIFEST.read_text()), "dataset": "other"}))
    sheet = tmp_path / "x" / "checksums" / "copy.json"
    assert sheet_beside(manifest) == sheet
    ref = resolve(str(manifest))
    assert (ref.name, ref.manifest, ref.checksums) == ("other", manifest, sheet)
    assert sheet_beside(MANIFEST) == SHEET == resolve("idle_v1").checksums

    minimal = {**RAW, "dataset": {"manifest": "x/manifests/copy.json"}}
    assert config_from_document(minimal, tmp_path).dataset.checksums == sheet
    assert load_config(BASE).override({"dataset.manifest": manifest}).dataset.checksums == sheet
    out = tmp_path / "o.yaml"
    assert overlay(BASE, out, [f"dataset.manifest={manifest}"]).dataset.checksums == sheet
    assert overlay(BASE, out, [], dataset=str(manifest)).dataset.checksums == sheet


# --- bad configs ---------------------------------------------------------------------------


def _rename_threshold(d: dict[str, Any]) -> None:
    d["bc"]["acuracy_threshold"] = d["bc"].pop("accuracy_threshold")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(surprise=1), "surprise: unknown key (allowed: seed, dataset, env,"),
        (
            _rename_threshold,
            "bc.acuracy_threshold: unknown key (allowed: epochs, batch_size, lr, holdout, "
            "hidden_sizes, accuracy_threshold, action_tolerance) (and 1 more)",
        ),
        (lambda d: d["ppo"].update(lr_decay=1), "ppo.lr_decay: unknown key"),
        (lambda d: d["bc"].update(epochs="ten"), "bc.epochs: 'ten' is not of type 'integer'"),
        (lambda d: d["bc"].update(epochs=0), "bc.epochs: 0 is less than the minimum of 1"),
        (
            lambda d: d["bc"].update(accuracy_threshold=1.5),
            "bc.accuracy_threshold: 1.5 is greater than the maximum of 1",
        ),
        (
            lambda d: d["bc"].update(accuracy_threshold=-0.1),
            "bc.accuracy_threshold: -0.1 is less than the minimum of 0",
        ),
        (lambda d: d["bc"].update(holdout=0), "bc.holdout: 0 is less than or equal to"),
        (lambda d: d["bc"].update(holdout=1), "bc.holdout: 1 is greater than or equal to"),
        (lambda d: d["bc"].update(epochs=True), "bc.epochs: True is not of type 'integer'"),
        (lambda d: d.update(seed=False), "seed: False is not of type 'integer'"),
        (lambda d: d.update(seed=-1), "seed: -1 is less than the minimum of 0"),
        (lambda d: d["bc"].update(lr=True), "bc.lr: True is not of type 'number'"),
        (lambda d: d["bc"].update(lr=0), "bc.lr: 0 is less than or equal to the minimum of 0"),
        (lambda d: d["bc"].update(lr=math.nan), "bc.lr: nan is not a finite number"),
        (lambda d: d["bc"].update(hidden_sizes=[]), "bc.hidden_sizes: [] should be non-empty"),
        (lambda d: d["bc"].update(hidden_sizes=[8] * 5), "bc.hidden_sizes: [8, 8, 8, 8, 8] is"),
        (lambda d: d["ppo"].update(hidden_sizes=[64, 0]), "ppo.hidden_sizes[1]: 0 is less"),
        (lambda d: d["ppo"].update(gamma=1.01), "ppo.gamma: 1.01 is greater than"),
        (lambda d: d["ppo"].update(target_kl=0), "ppo.target_kl: 0 is less than or equal"),
        (lambda d: d["ppo"].update(minibatch_size=4096), "ppo.minibatch_size: 4096 is larger"),
        (lambda d: d["anneal"].update(schedule="cubic"), "anneal.schedule: 'cubic' is not one"),
        (lambda d: d["anneal"].update(eval_episodes=0), "anneal.eval_episodes: 0 is less"),
        (lambda d: d["output"].update(log_dir=""), "output.log_dir: '' should be non-empty"),
        (lambda d: d["dataset"].pop("manifest"), "dataset: 'manifest' is a required property"),
        (lambda d: d.pop("env"), "(top level): 'env' is a required property"),
        (lambda d: d.update(ppo=[1]), "ppo: [1] is not of type 'object'"),
    ],
)
def test_bad_configs_are_one_line_naming_file_and_key(
    tmp_path: Path, change: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    path = write_config(tmp_path, change)
    message = load_error(path)
    assert message.startswith(f"{path}: {expected}"), message
    with pytest.raises(SchemaError):
        load_config(path)
    assert_one_line_error(call_cli("config", "check", path), str(path), expected)


def test_negative_regression_tolerance_and_null_target_kl_are_allowed(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, lambda d: d["anneal"].update(regression_tolerance=-1e9) or d.pop("ppo")
    )
    config = load_config(path)
    assert config.anneal.regression_tolerance == -1e9 and config.ppo.target_kl is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "seed: 0\nbc:\n  epochs: 3\n  lr: 0.1\n  epochs: 4\n",
            "duplicate key 'epochs' at line 5 (first at line 3)",
        ),
        ("seed: 0\nseed: 1\n", "duplicate key 'seed' at line 2 (first at line 1)"),
        ("seed: 0\nbc: [1, 2\nenv: x\n", r"not valid YAML: "),
        ("seed: 0\n  bc: 1\n", "not valid YAML: mapping values are not allowed here at line 2"),
        ("- 1\n- 2\n", "(top level): expected a mapping with the sections seed, dataset,"),
        ("", "(top level): expected a mapping with the sections seed, dataset, env, bc, ppo, "),
        ("just text\n", "got a string"),
        ("seed: 0\x00\n", "not valid YAML: unacceptable character"),
    ],
)
def test_unparseable_configs_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert expected in load_error(path)
    assert_one_line_error(call_cli("config", "check", path), "c.yaml", expected)


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("seed: 0\nbc: {epochs: 3\nenv: x\n")
    assert "at line 3 column 4" in load_error(path)


def test_yaml_merge_keys_are_not_duplicates_and_1e_3_is_a_number(tmp_path: Path) -> None:
    doc = yaml.safe_dump({k: v for k, v in RAW.items() if k != "bc"}, sort_keys=False)
    path = tmp_path / "c.yaml"
    # A merge key's values may be overridden; that is no repeated key.
    path.write_text(
        doc + "bc:\n  <<: {epochs: 3, lr: 0.5}\n  lr: 1e-3\n  accuracy_threshold: 0.8\n"
    )
    config = load_config(path)
    assert (config.bc.epochs, config.bc.lr) == (3, 0.001)


def test_missing_folder_and_binary_files(tmp_path: Path) -> None:
    assert load_error(tmp_path / "missing.yaml").endswith("config not found")
    assert "is a folder" in load_error(tmp_path)
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"seed: \xff\xfe\n")
    assert "not UTF-8" in load_error(binary)
    assert_one_line_error(call_cli("config", "check", tmp_path / "missing.yaml"), "not found")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # chmod 0 cannot stop root (CI runs as root here), so the refusal is simulated.
    path = tmp_path / "c.yaml"
    path.write_text("seed: 0\n")

    real_open = os.open

    def refuse(file: str | os.PathLike[str], *args: object, **kwargs: object) -> int:
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse)
    assert "cannot read config: Permission denied" in load_error(path)


# --- override ------------------------------------------------------------------------------


def test_override_replaces_keys_and_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = load_config(BASE)
    monkeypatch.chdir(tmp_path)
    changed = base.override(
        {"seed": 3, "bc.epochs": 5, "ppo.epochs": 2, "output.log_dir": Path("rel/logs")}
    )
    assert (changed.seed, changed.bc.epochs, changed.ppo.epochs) == (3, 5, 2)
    assert base.override({"bc.hidden_sizes": (32, 16)}).bc.hidden_sizes == (32, 16)
    assert changed.output.log_dir == tmp_path / "rel" / "logs"  # relative to the working folder
    assert changed.output.checkpoint_dir == base.output.checkpoint_dir
    assert changed.source == base.source and base.seed == 0  # a copy; the original is unchanged
    assert changed_keys(base, changed) == ["seed", "bc.epochs", "ppo.epochs", "output.log_dir"]
    with pytest.raises(AttributeError):
        changed.seed = 4  # type: ignore[misc]

    with pytest.raises(SchemaError, match=r"override bc\.epochs=0: 0 is less than the minimum"):
        base.override({"bc.epochs": 0})
    with pytest.raises(SchemaError, match=r"unknown key 'bc\.epoch' in override"):
        base.override({"bc.epoch": 5})
    with pytest.raises(SchemaError, match=r"override seed=true: True is not of type"):
        base.override({"seed": True})


def test_overriding_the_manifest_moves_the_sheet_with_it() -> None:
    base = load_config(BASE)
    manifest = PREFLIGHT / "manifests" / "preflight.json"
    moved = base.override({"dataset.manifest": manifest})
    assert moved.dataset.checksums == PREFLIGHT / "checksums" / "preflight.json"
    both = base.override({"dataset.manifest": manifest, "dataset.checksums": SHEET})
    assert both.dataset.checksums == SHEET


# --- overlays ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["a/b/c", ".", "x"])
def test_overlay_points_at_the_same_files_from_any_folder(tmp_path: Path, where: str) -> None:
    base = load_config(BASE)
    out = tmp_path / where / "o.yaml"
    loaded = overlay(BASE, out, ["bc.accuracy_threshold=0.95"])
    assert loaded == load_config(out)
    assert loaded.dataset == base.dataset
    assert loaded.output == base.output
    written = text_of(out)
    # Relative in the base, so relative in the overlay (to its own folder).
    for key in path_keys():
        section, name = key.split(".")
        assert not os.path.isabs(written[section][name]), key
    assert written["dataset"]["manifest"] == os.path.relpath(MANIFEST, out.parent)


def test_overlay_of_an_overlay_still_points_at_the_same_files(tmp_path: Path) -> None:
    first = overlay(BASE, tmp_path / "a" / "b" / "c" / "one.yaml", ["seed=1"])
    second = overlay(tmp_path / "a" / "b" / "c" / "one.yaml", tmp_path / "two.yaml", ["seed=2"])
    base = load_config(BASE)
    assert second.dataset == first.dataset == base.dataset
    assert second.output == base.output
    assert (first.seed, second.seed) == (1, 2)


def test_overlay_is_standalone_and_deterministic(tmp_path: Path) -> None:
    sets = ["bc.accuracy_threshold=0.95", "ppo.hidden_sizes=[32, 32]", "ppo.target_kl=0.02"]
    overlay(BASE, tmp_path / "one.yaml", sets)
    overlay(BASE, tmp_path / "two.yaml", sets)
    text = (tmp_path / "one.yaml").read_bytes()
    assert text == (tmp_path / "two.yaml").read_bytes()
    header, *_ = text.decode().splitlines()
    assert header == (
        f"# Overlay of {BASE} written by 'harness config overlay'; changed: "
        "bc.accuracy_threshold=0.95, ppo.target_kl=0.02, ppo.hidden_sizes=[32, 32]"
    )
    assert list(flatten(text_of(tmp_path / "one.yaml"))) == known_keys()
    assert schema_problems(text_of(tmp_path / "one.yaml"), "config") == []


def test_overlay_set_values_are_yaml(tmp_path: Path) -> None:
    out = tmp_path / "o.yaml"
    config = overlay(
        BASE,
        out,
        [
            "bc.accuracy_threshold=0.95",
            "ppo.target_kl=0.01",
            "bc.hidden_sizes=[32, 16]",
            "bc.lr=3e-4",
            "seed=7",
            "anneal.schedule=exponential",
        ],
    )
    assert config.bc.accuracy_threshold == 0.95 and isinstance(config.bc.accuracy_threshold, float)
    assert (config.ppo.target_kl, config.bc.hidden_sizes, config.bc.lr) == (0.01, (32, 16), 3e-4)
    assert (config.seed, config.anneal.schedule) == (7, "exponential")
    assert overlay(out, tmp_path / "p.yaml", ["ppo.target_kl=null"]).ppo.target_kl is None


def test_overlay_set_paths_are_relative_to_the_working_folder(tmp_path: Path) -> None:
    cwd = tmp_path / "work"
    out = tmp_path / "deep" / "er" / "o.yaml"
    config = overlay(
        BASE,
        out,
        ["output.log_dir=rel/logs", f"output.checkpoint_dir={tmp_path / 'abs'}"],
        cwd=cwd,
    )
    assert config.output.log_dir == cwd / "rel" / "logs"
    assert config.output.checkpoint_dir == tmp_path / "abs"
    written = text_of(out)["output"]
    assert written["log_dir"] == os.path.join("..", "..", "work", "rel", "logs")
    assert written["checkpoint_dir"] == str(tmp_path / "abs")  # absolute stays absolute
    # Text keys keep the value as typed, even where YAML would read a number.
    assert overlay(BASE, out, ["output.log_dir=2024"], cwd=cwd).output.log_dir == cwd / "2024"


def test_overlay_dataset_by_name_and_path(tmp_path: Path) -> None:
    out = tmp_path / "x" / "o.yaml"
    config = overlay(BASE, out, [], dataset="preflight")
    assert config.dataset.manifest == PREFLIGHT / "manifests" / "preflight.json"
    assert config.dataset.checksums == PREFLIGHT / "checksums" / "preflight.json"
    assert not os.path.isabs(text_of(out)["dataset"]["manifest"])
    by_path = overlay(BASE, out, [], dataset=str(PREFLIGHT / "manifests" / "preflight.json"))
    assert by_path.dataset == config.dataset
    with pytest.raises(HarnessError, match="unknown dataset 'nope'"):
        overlay(BASE, tmp_path / "n.yaml", [], dataset="nope")
    with pytest.raises(HarnessError, match=r"either --dataset or --set dataset\.manifest"):
        overlay(BASE, tmp_path / "n.yaml", [f"dataset.manifest={MANIFEST}"], dataset="preflight")


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (
            ["bc.accuracy_threshold=1.5"],
            "--set bc.accuracy_threshold=1.5: 1.5 is greater than the maximum of 1",
        ),
        (["bc.accuracy_threshold=-0.1"], "--set bc.accuracy_threshold=-0.1: -0.1 is less"),
        (["bc.epochs=ten"], "--set bc.epochs=ten: 'ten' is not of type 'integer'"),
        (["bc.epochs=true"], "--set bc.epochs=true: True is not of type 'integer'"),
        (["bc.holdout=1"], "--set bc.holdout=1: 1 is greater than or equal to the maximum"),
        (["ppo.num_envs=1", "ppo.num_steps=8"], "ppo.minibatch_size: 256 is larger than a rollout"),
        (
            ["bc.acuracy_threshold=0.9"],
            "unknown key 'bc.acuracy_threshold' in --set (known keys of bc: epochs, batch_size, "
            "lr, holdout, hidden_sizes, accuracy_threshold, action_tolerance)",
        ),
        (["sed=1"], "unknown key 'sed' in --set (known keys: seed, dataset, env, bc, ppo,"),
        (["seed.x=1"], "unknown key 'seed.x' in --set ('seed' is a value, not a section)"),
        (["bc={epochs: 1}"], "'bc' in --set is a section; set one of its keys (epochs,"),
        (["bc.accuracy_threshold"], "--set 'bc.accuracy_threshold': expected KEY=VALUE"),
        (["=1"], "--set '=1': expected KEY=VALUE"),
        (["seed=1", "seed=2"], "--set seed given twice"),
        (["bc.hidden_sizes=[1,"], "--set bc.hidden_sizes: not valid YAML"),
    ],
)
def test_bad_overlays_fail_in_one_line_and_write_nothing(
    tmp_path: Path, sets: list[str], expected: str
) -> None:
    out = tmp_path / "o.yaml"
    with pytest.raises(HarnessError) as info:
        overlay(BASE, out, sets)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert not out.exists()
    args: list[str | Path] = ["config", "overlay", BASE, "-o", out]
    for s in sets:
        args += ["--set", s]
    assert_one_line_error(call_cli(*args), expected)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_failed_overlay_leaves_an_existing_out_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "o.yaml"
    overlay(BASE, out, ["seed=1"])
    before = out.read_bytes()
    with pytest.raises(SchemaError):
        overlay(BASE, out, ["seed=-1"])
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.yaml"]  # no temporary left


def test_overlay_refuses_to_overwrite_its_base(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    overlay(BASE, base, [])
    before = base.read_bytes()
    (tmp_path / "alias.yaml").symlink_to(base)
    for out in (base, tmp_path / "." / "base.yaml", tmp_path / "alias.yaml"):
        with pytest.raises(HarnessError, match="is the base config itself"):
            overlay(base, out, ["seed=3"])
    assert base.read_bytes() == before
    with pytest.raises(HarnessError, match="is a folder"):
        overlay(base, tmp_path, ["seed=3"])


def test_overlay_of_a_bad_base_names_the_base(tmp_path: Path) -> None:
    bad = write_config(tmp_path, lambda d: d["bc"].update(accuracy_threshold=2))
    with pytest.raises(SchemaError, match=rf"^{bad}: bc\.accuracy_threshold: 2 is greater"):
        overlay(bad, tmp_path / "o.yaml", [])
    assert not (tmp_path / "o.yaml").exists()


def test_overlay_cli_prints_one_line(tmp_path: Path) -> None:
    out = tmp_path / "ok.yaml"
    result = call_cli(
        "config", "overlay", BASE, "-o", out,
        "--set", f"output.log_dir={tmp_path / 'logs'}",
        "--set", f"output.checkpoint_dir={tmp_path / 'ckpt'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"wrote {out} (overlay of {BASE}; changed output.log_dir, output.checkpoint_dir)\n"
    )
    assert load_config(out).output.log_dir == tmp_path / "logs"
    assert call_cli("config", "overlay", "--help").stdout.count("relative") >= 3


def test_overlay_cli_in_a_real_process_resolves_against_its_working_folder(
    tmp_path: Path,
) -> None:
    (tmp_path / "sub").mkdir()
    result = run_cli(
        "config", "overlay", BASE, "-o", "sub/o.yaml", "--set", "output.log_dir=mine/logs",
        "--set", "bc.accuracy_threshold=0.95", "--dataset", "preflight",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote sub/o.yaml (overlay of ")
    assert result.stdout.endswith(
        "changed dataset.manifest, dataset.checksums, bc.accuracy_threshold, output.log_dir)\n"
    )
    config = load_config(tmp_path / "sub" / "o.yaml")
    assert config.output.log_dir == tmp_path / "mine" / "logs"
    assert config.dataset.manifest == PREFLIGHT / "manifests" / "preflight.json"
    assert config.bc.accuracy_threshold == 0.95


# --- the recipe hash -----------------------------------------------------------------------


def test_hash_ignores_outputs_and_nothing_else(tmp_path: Path) -> None:
    base = load_config(BASE)
    assert base.hash() == load_config(BASE).hash()
    assert len(base.hash()) == 64 and int(base.hash(), 16) >= 0
    moved = overlay(
        BASE, tmp_path / "a" / "o.yaml", [f"output.log_dir={tmp_path}", "output.checkpoint_dir=c"]
    )
    assert moved.hash() == base.hash()
    hashes = {base.hash()}
    for change in ("bc.accuracy_threshold=0.95", "seed=1", "ppo.target_kl=0.1", "bc.lr=0.002"):
        hashes.add(overlay(BASE, tmp_path / "h.yaml", [change]).hash())
    hashes.add(overlay(BASE, tmp_path / "h.yaml", [], dataset="preflight").hash())
    assert len(hashes) == 6


# --- properties ----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(threshold=st.floats(min_value=0.0, max_value=1.0))
def test_any_threshold_in_range_round_trips_exactly(threshold: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "o.yaml"
        config = overlay(BASE, out, [f"bc.accuracy_threshold={threshold!r}"])
        assert config.bc.accuracy_threshold == threshold
        assert load_config(out).bc.accuracy_threshold == threshold


@settings(max_examples=40, deadline=None)
@given(
    threshold=st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not 0.0 <= x <= 1.0)
)
def test_any_threshold_outside_the_range_is_refused(threshold: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "o.yaml"
        text = {math.inf: ".inf", -math.inf: "-.inf"}.get(threshold, repr(threshold))
        if math.isnan(threshold):
            text = ".nan"
        with pytest.raises(SchemaError, match=r"^--set bc\.accuracy_threshold="):
            overlay(BASE, out, [f"bc.accuracy_threshold={text}"])
        assert not out.exists()
