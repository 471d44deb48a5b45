"""The JSON Schema: generated from the models, checked in, documented field by field."""

from __future__ import annotations

import json
from pathlib import Path

from batchai_spec.spec.schema import spec_schema, spec_schema_json

CHECKED_IN = Path("schemas/batchai-spec.schema.json")
SCHEMA_LINE = "# yaml-language-server: $schema=../schemas/batchai-spec.schema.json"


def test_the_checked_in_schema_is_fresh():
    assert CHECKED_IN.read_text(encoding="utf-8") == spec_schema_json(), (
        "schemas/batchai-spec.schema.json is stale: run `python -m batchai_spec schema > schemas/batchai-spec.schema.json`"
    )


def test_the_schema_is_stable_text_with_identity():
    text = spec_schema_json()
    assert json.loads(text) == spec_schema()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    schema = json.loads(text)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["title"] == "batchai-spec" and schema["$id"]


def test_every_property_has_a_description():
    schema = spec_schema()
    undocumented = [
        f"{model}.{name}"
        for model, definition in [("Spec", schema), *schema["$defs"].items()]
        for name, prop in definition.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undocumented == []


def test_spec_files_declare_the_schema():
    for spec in Path("specs").glob("*.yaml"):
        assert spec.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_LINE, spec
