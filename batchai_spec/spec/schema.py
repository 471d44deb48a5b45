"""The JSON Schema of spec files, generated from the models (`batchai-spec schema`, schemas/*.schema.json).

Editors check the file as it is written, before the Jinja2 rendering that the tool does first, so every scalar value
in the schema also accepts a template expression (`TEMPLATE`). Keys stay as strict as the models
(`additionalProperties: false`), and a literal value is still checked against the model's own constraints. The
models themselves, which validate the rendered spec, are not touched.
"""

from __future__ import annotations

import json
from typing import Any

from batchai_spec.spec.model import Spec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:batchai-spec:spec:1"

TEMPLATE_DEF = "TemplateExpression"
TEMPLATE_REF = {"$ref": f"#/$defs/{TEMPLATE_DEF}"}
TEMPLATE = {
    "description": (
        "A Jinja2 template, replaced by its value when the spec is rendered: a string containing `{{ ... }}` or "
        "`{% ... %}`, or an unquoted `{{ ... }}`, which YAML reads as a mapping of one entry with no value."
    ),
    "anyOf": [
        # [\s\S] rather than `.`: a block scalar may spread the template over lines; means the same in ECMA-262.
        {"type": "string", "pattern": r"\{\{[\s\S]*\}\}|\{%[\s\S]*%\}"},
        {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": {"type": "null"}},
    ],
}
SCALAR_TYPES = {"string", "integer", "number", "boolean"}
# Keywords that describe a value rather than constrain it: they stay beside the `anyOf` for editors' hover texts.
ANNOTATIONS = {"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"}
# Keywords whose value is a schema, a list of schemas, or a mapping of names to schemas. `propertyNames` is left
# out: it constrains keys, and keys are checked as written (a quoted templated key is a string like any other).
SUBSCHEMA = {"items", "additionalProperties", "not", "if", "then", "else", "contains"}
SUBSCHEMA_LISTS = {"anyOf", "allOf", "oneOf", "prefixItems"}
SUBSCHEMA_MAPS = {"$defs", "properties", "patternProperties"}


def spec_schema() -> dict[str, Any]:
    schema = accept_templates(Spec.model_json_schema())
    schema["$defs"][TEMPLATE_DEF] = TEMPLATE
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, **schema}


def spec_schema_json() -> str:
    """The schema as stable text: sorted keys, two-space indent, final newline."""
    return json.dumps(spec_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def accept_templates(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` in which every scalar value (string, integer, number, boolean) may also be a template."""
    if is_scalar(schema):
        return or_template(schema)
    branches = schema.get("anyOf", [])
    if any(is_scalar(branch) for branch in branches):
        # An optional scalar (`anyOf: [<scalar>, {type: null}]`): one more branch rather than an `anyOf` in an `anyOf`.
        branches = [branch if is_scalar(branch) else accept_templates(branch) for branch in branches]
        return {**schema, "anyOf": [*branches, TEMPLATE_REF]}
    return {key: accept_templates_below(key, value) for key, value in schema.items()}


def accept_templates_below(keyword: str, value: Any) -> Any:
    if keyword in SUBSCHEMA and isinstance(value, dict):
        return accept_templates(value)
    if keyword in SUBSCHEMA_LISTS:
        return [accept_templates(schema) for schema in value]
    if keyword in SUBSCHEMA_MAPS:
        return {name: accept_templates(schema) for name, schema in value.items()}
    return value


def is_scalar(schema: dict[str, Any]) -> bool:
    return schema.get("type") in SCALAR_TYPES


def or_template(schema: dict[str, Any]) -> dict[str, Any]:
    """`{<annotations>, anyOf: [<the constraints>, <a template>]}`."""
    annotations = {key: value for key, value in schema.items() if key in ANNOTATIONS}
    constraints = {key: value for key, value in schema.items() if key not in ANNOTATIONS}
    return {**annotations, "anyOf": [constraints, TEMPLATE_REF]}
