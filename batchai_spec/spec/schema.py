"""The JSON Schema of spec files, generated from the models (`batchai-spec schema`, schemas/*.schema.json)."""

from __future__ import annotations

import json
from typing import Any

from batchai_spec.spec.model import Spec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:batchai-spec:spec:1"


def spec_schema() -> dict[str, Any]:
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, **Spec.model_json_schema()}


def spec_schema_json() -> str:
    """The schema as stable text: sorted keys, two-space indent, final newline."""
    return json.dumps(spec_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
