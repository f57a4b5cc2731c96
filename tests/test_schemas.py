"""Manifests and checksum sheets: the schemas reject what they should, naming file and key."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from harness.datasets.checksums import load_sheet
from harness.datasets.manifest import load_manifest
from harness.errors import HarnessError, SchemaError
from harness.validation import schema_problems

from .conftest import IDLE_V1, PREFLIGHT

MANIFEST = json.loads((IDLE_V1 / "manifests" / "idle_v1.json").read_text())
SHEET = json.loads((IDLE_V1 / "checksums" / "idle_v1.json").read_text())


def _edit(doc: dict[str, Any], change) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    change(doc)
    return doc


def test_every_schema_is_a_valid_draft_2020_12_schema() -> None:
    schemas = sorted(resources.files("harness.schemas").iterdir(), key=lambda p: p.name)
    assert len([p for p in schemas if p.name.endswith(".schema.json")]) >= 9
    for path in schemas:
        if path.name.endswith(".schema.json"):
            Draft202012Validator.check_schema(json.loads(path.read_text("utf-8")))


def test_committed_documents_are_valid() -> None:
    for root, name in ((IDLE_V1, "idle_v1"), (PREFLIGHT, "preflight")):
        assert (
            schema_problems(
                json.loads((root / "manifests" / f"{name}.json").read_text()), "manifest"
            )
            == []
        )
        assert (
            schema_problems(
                json.loads((root / "checksums" / f"{name}.json").read_text()), "checksums"
            )
            == []
        )


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d.pop("entries"), "(top level)"),
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d.update(surprise=True), "surprise"),
        (lambda d: d["entries"][1].update(status="maybe"), "entries[1].status"),
        (lambda d: d["entries"][0].update(steps="many"), "entries[0].steps"),
        (lambda d: d["entries"][0].update(episodes=-1), "entries[0].episodes"),
        (lambda d: d["entries"][2]["review"].update(reason=""), "entries[2].review.reason"),
        (lambda d: d["entries"][0].pop("path"), "entries[0]"),
        (lambda d: d["entries"][0].update(id="bad id/with slash"), "entries[0].id"),
        (lambda d: d["entries"][3].update(extra=1), "entries[3].extra"),
        (lambda d: d.update(dataset=""), "dataset"),
    ],
)
def test_manifest_schema_rejects(tmp_path: Path, change, key: str) -> None:
    doc = _edit(MANIFEST, change)
    problems = schema_problems(doc, "manifest")
    assert problems and problems[0].startswith(f"{key}:"), problems
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SchemaError) as info:
        load_manifest(path)
    assert str(info.value).startswith(f"{path}: {key}:")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d.update(algorithm="md5"), "algorithm"),
        (lambda d: d["entries"]["cap_001"].update(sha256="abc"), "entries.cap_001.sha256"),
        (lambda d: d["entries"]["cap_001"].update(sha256="g" * 64), "entries.cap_001.sha256"),
        (lambda d: d["entries"]["cap_001"].update(bytes=-5), "entries.cap_001.bytes"),
        (lambda d: d["entries"]["cap_002"].pop("path"), "entries.cap_002"),
        (lambda d: d["entries"].update({"../x": d["entries"]["cap_001"]}), "entries"),
    ],
)
def test_sheet_schema_rejects(tmp_path: Path, change, key: str) -> None:
    doc = _edit(SHEET, change)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match=rf"^{path}: {key}"):
        load_sheet(path)


def test_unknown_keys_are_named_before_the_missing_key_they_explain() -> None:
    doc = _edit(MANIFEST, lambda d: d["entries"][0].update(paht=d["entries"][0].pop("path")))
    problems = schema_problems(doc, "manifest")
    assert problems[0] == (
        "entries[0].paht: unknown key (allowed: id, path, status, episodes, steps, "
        "demonstrator, review)"
    )
    assert problems[1] == "entries[0]: 'path' is a required property"
    two = _edit(MANIFEST, lambda d: d.update(b=1, a=2))
    assert [p.split(":")[0] for p in schema_problems(two, "manifest")] == ["b", "a"]


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    doc = _edit(MANIFEST, lambda d: d["entries"].append(copy.deepcopy(d["entries"][0])))
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(HarnessError, match="duplicate entry id 'cap_001'"):
        load_manifest(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "(top level)"),
    ],
)
def test_unparseable_manifests(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(text)
    with pytest.raises(HarnessError, match=rf"^{path}: .*{message}"):
        load_manifest(path)
