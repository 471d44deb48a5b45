"""Resource groups (Microsoft.Resources) as azure-mgmt-resource 25.x/26.x calls them."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlencode

from starlette.responses import Response

from batchai_spec.emulator.arm.bodies import json_object, required_location, same_location, tags_of
from batchai_spec.emulator.arm.cascade import delete_resource_group_contents
from batchai_spec.emulator.arm.responses import arm_empty, arm_json, require_subscription
from batchai_spec.emulator.clock import now
from batchai_spec.emulator.lro import OperationEndpoints, start_operation
from batchai_spec.emulator.routing import Call, Router, ServiceError
from batchai_spec.emulator.state import State, register_schema

register_schema(
    """
    CREATE TABLE IF NOT EXISTS resource_groups (
        name TEXT PRIMARY KEY COLLATE NOCASE,
        location TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        managed_by TEXT,
        created_at REAL NOT NULL
    )
    """
)

GROUP = "/subscriptions/{subscription}/resourcegroups/{resource_group}"
_PAGE_SIZE = 100
_NAME = re.compile(r"^[-\w.()]{1,90}$")
# Real ARM answers the DELETE with a Location under /subscriptions/{sub}/operationresults/.
DELETE_OPERATIONS = OperationEndpoints(
    "/subscriptions/{subscription}", status_segment=None, location_segment="operationresults", api_version="2025-04-01"
)


def add_routes(router: Router) -> None:
    router.add("GET", "/subscriptions/{subscription}/resourcegroups", list_groups)
    router.add("PUT", GROUP, create_or_update)
    router.add("GET", GROUP, get)
    router.add("HEAD", GROUP, check_existence)
    router.add("PATCH", GROUP, update)
    router.add("DELETE", GROUP, delete)
    DELETE_OPERATIONS.add_routes(router)


def group_exists(state: State, name: str) -> bool:
    """For modules whose resources live in groups (their PUTs answer 404 ResourceGroupNotFound otherwise)."""
    return state.connection().execute("SELECT 1 FROM resource_groups WHERE name = ?", (name,)).fetchone() is not None


def require_group(state: State, name: str) -> None:
    if not group_exists(state, name):
        raise ServiceError(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")


def create_or_update(state: State, call: Call) -> Response:
    require_subscription(state, call.params["subscription"])
    name = call.params["resource_group"]
    if not _NAME.match(name) or name.endswith("."):
        raise ServiceError(400, "InvalidResourceGroup", f"The resource group name '{name}' is invalid.")
    body = json_object(call.json())
    location = required_location(body)
    tags = tags_of(body.get("tags"))
    with state.transaction() as db:
        existing = db.execute("SELECT * FROM resource_groups WHERE name = ?", (name,)).fetchone()
        if existing is None:
            db.execute(
                "INSERT INTO resource_groups (name, location, tags, managed_by, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, location, json.dumps(tags), body.get("managedBy"), now()),
            )
        elif not same_location(existing["location"], location):
            raise ServiceError(
                409,
                "InvalidResourceGroupLocation",
                f"Invalid resource group location '{location}'. The Resource group already exists in location"
                f" '{existing['location']}'.",
            )
        else:
            db.execute(
                "UPDATE resource_groups SET tags = ?, managed_by = ? WHERE name = ?",
                (json.dumps(tags), body.get("managedBy"), name),
            )
    return arm_json(_document(state, _row(state, name)), 200 if existing is not None else 201)


def get(state: State, call: Call) -> Response:
    require_subscription(state, call.params["subscription"])
    return arm_json(_document(state, _existing(state, call.params["resource_group"])))


def check_existence(state: State, call: Call) -> Response:
    """204 or 404 with no body: a 200 makes the SDK raise."""
    require_subscription(state, call.params["subscription"])
    return arm_empty(204 if group_exists(state, call.params["resource_group"]) else 404)


def update(state: State, call: Call) -> Response:
    require_subscription(state, call.params["subscription"])
    name = call.params["resource_group"]
    body = json_object(call.json())
    with state.transaction() as db:
        row = _existing(state, name)
        tags = tags_of(body["tags"]) if body.get("tags") is not None else json.loads(row["tags"])
        managed_by = body.get("managedBy", row["managed_by"])
        db.execute(
            "UPDATE resource_groups SET tags = ?, managed_by = ? WHERE name = ?", (json.dumps(tags), managed_by, name)
        )
    return arm_json(_document(state, _row(state, name)))


def delete(state: State, call: Call) -> Response:
    subscription = call.params["subscription"]
    require_subscription(state, subscription)
    name = call.params["resource_group"]
    _existing(state, name)
    if call.operation_fault is None:
        with state.transaction() as db:
            delete_resource_group_contents(state, name)
            db.execute("DELETE FROM resource_groups WHERE name = ?", (name,))
    operation = start_operation(state, call)
    return DELETE_OPERATIONS.accepted(state, operation, subscription=subscription)


def list_groups(state: State, call: Call) -> Response:
    require_subscription(state, call.params["subscription"])
    rows = state.connection().execute("SELECT * FROM resource_groups ORDER BY name").fetchall()
    rows = [row for row in rows if _passes_filter(row, call.query.get("$filter"))]
    if call.query.get("$top"):
        rows = rows[: _integer(call.query["$top"], "$top")]
    start = _integer(call.query.get("$skiptoken", "0"), "$skiptoken")
    page: dict[str, Any] = {"value": [_document(state, row) for row in rows[start : start + _PAGE_SIZE]]}
    if start + _PAGE_SIZE < len(rows):
        base = f"{state.arm_url}/subscriptions/{call.params['subscription']}/resourcegroups"
        # The next page is of the same list: it keeps the filter and the top (the SDK follows the link as it is).
        query = {"api-version": call.query.get("api-version", "2025-04-01"), "$skiptoken": str(start + _PAGE_SIZE)}
        query.update({name: call.query[name] for name in ("$filter", "$top") if call.query.get(name)})
        page["nextLink"] = f"{base}?{urlencode(query, quote_via=quote)}"
    return arm_json(page)


_TAG_FILTER = re.compile(r"^\s*tagName\s+eq\s+'([^']*)'(?:\s+and\s+tagValue\s+eq\s+'([^']*)')?\s*$", re.IGNORECASE)


def _passes_filter(row, expression: str | None) -> bool:
    if not expression:
        return True
    match = _TAG_FILTER.match(expression)
    if match is None:
        raise ServiceError(
            400, "InvalidFilter", "Only \"tagName eq '...' [and tagValue eq '...']\" filters are supported."
        )
    tags = {key.lower(): value for key, value in json.loads(row["tags"]).items()}
    name, value = match.group(1).lower(), match.group(2)
    return name in tags and (value is None or tags[name] == value)


def _existing(state: State, name: str):
    row = _row(state, name)
    if row is None:
        raise ServiceError(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
    return row


def _row(state: State, name: str):
    return state.connection().execute("SELECT * FROM resource_groups WHERE name = ?", (name,)).fetchone()


def _document(state: State, row) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": f"/subscriptions/{state.subscription_id}/resourceGroups/{row['name']}",
        "name": row["name"],
        "type": "Microsoft.Resources/resourceGroups",
        "location": row["location"],
        "properties": {"provisioningState": "Succeeded"},
    }
    tags = json.loads(row["tags"])
    if tags:
        document["tags"] = tags
    if row["managed_by"]:
        document["managedBy"] = row["managed_by"]
    return document


def _integer(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ServiceError(400, "InvalidParameter", f"'{name}' must be an integer.") from None
    if value < 0:
        raise ServiceError(400, "InvalidParameter", f"'{name}' must not be negative.")
    return value

