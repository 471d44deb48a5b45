"""The JSON Schema: generated from the models, checked in, documented field by field."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from jsonschema.exceptions import best_match

from batchai_spec.spec.schema import spec_schema, spec_schema_json

CHECKED_IN = Path("schemas/batchai-spec.schema.json")
REFERENCE_SPEC = Path("specs/mnist-cntk.yaml")
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


class EditorView(yaml.SafeLoader):
    """Reads a spec as an editor does: as written, before rendering.

    An unquoted `{{ x }}` is YAML for a flow mapping whose only key is the flow mapping `{x}`. PyYAML refuses such a
    key (unhashable); editors' parsers keep it and show it as text, which this loader does too.
    """

    def construct_mapping(self, node, deep=False):
        node.value = [(as_text(key) if isinstance(key, yaml.MappingNode) else key, value) for key, value in node.value]
        return super().construct_mapping(node, deep)


def as_text(node: yaml.Node) -> yaml.ScalarNode:
    source = node.start_mark.buffer[node.start_mark.index : node.end_mark.index]
    return yaml.ScalarNode("tag:yaml.org,2002:str", source)


def editor_errors(text: str) -> list[str]:
    """What an editor using the checked-in schema flags in a spec written as `text`, each at its deepest key."""
    validator = jsonschema.Draft202012Validator(json.loads(CHECKED_IN.read_text(encoding="utf-8")))
    instance = yaml.load(text, Loader=EditorView)
    deepest = [best_match([error]) for error in validator.iter_errors(instance)]
    return [f"{error.json_path}: {error.message}" for error in deepest]


def reference_spec_with(old: str, new: str) -> str:
    text = REFERENCE_SPEC.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_the_schema_is_a_valid_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(json.loads(CHECKED_IN.read_text(encoding="utf-8")))


def test_the_reference_spec_as_written_is_valid_for_editors():
    text = REFERENCE_SPEC.read_text(encoding="utf-8")
    assert "{{ vars.storage_account" in text  # it is templated: what an editor sees is the template
    assert editor_errors(text) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("manual: {target_node_count: 1}", "manual: {target_node_count: {{ vars.nodes | default(1) }}}"),
        (" node_count: 1", " node_count: {{ vars.nodes }}"),
        (" node_count: 1", ' node_count: "{{ vars.nodes | default(1) }}"'),
        ("sku: Standard_LRS", "sku: \"{{ vars.sku | default('Standard_LRS') }}\""),
        ("delete_on_destroy: false", "delete_on_destroy: {{ vars.delete | default(false) }}"),
        ("vm_priority: dedicated", "vm_priority: \"{{ 'low' if vars.cheap | default(false) else 'dedicated' }}\""),
        ("version: 1", "version: {{ 1 }}"),
        ("name: \"{{ vars.workspace | default('myworkspace') }}\"", "name: ws-{{ vars.user | default('me') }}"),
        ("quota_gb: 10", "quota_gb: >-\n        {{ vars.quota\n           | default(10) }}"),
        ("language_type: Python", 'language_type: "{% if vars.bs is defined %}BrainScript{% else %}Python{% endif %}"'),
    ],
)
def test_a_templated_value_is_valid_for_editors(old, new):
    assert editor_errors(reference_spec_with(old, new)) == []


def test_a_key_typo_is_still_flagged():
    errors = editor_errors(reference_spec_with("vm_size:", "vm_sizee:"))
    assert "$.clusters[0]: Additional properties are not allowed ('vm_sizee' was unexpected)" in errors, errors


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("\"{{ vars.storage_account | default('mnistcntkstore') }}\"", "UPPER_case!", "$.storage.account.name"),
        ("sku: Standard_LRS", "sku: Bogus_LRS", "$.storage.account.sku"),
        ("{target_node_count: 1}", "{target_node_count: -1}", "$.clusters[0].scale.manual.target_node_count"),
        (" node_count: 1", " node_count: 0", "$.experiments[0].jobs[0].node_count"),
        ("quota_gb: 10", "quota_gb: ten", "$.storage.file_shares[0].quota_gb"),
        ("delete_on_destroy: false", "delete_on_destroy: maybe", "$.resource_group.delete_on_destroy"),
        ("quota_gb: 10", "quota_gb: {gb: 10}", "$.storage.file_shares[0].quota_gb"),
        ("vm_priority: dedicated", "vm_priority: sometimes", "$.clusters[0].vm_priority"),
        ("version: 1", "version: 2", "$.version"),
    ],
)
def test_a_wrong_literal_value_is_still_flagged(old, new, path):
    errors = editor_errors(reference_spec_with(old, new))
    assert errors and all(error.startswith((f"{path}: ", f"{path}.")) for error in errors), errors
