"""Storage accounts (Microsoft.Storage) as azure-mgmt-storage 24.x calls them; each serves Azure Files at once."""

from __future__ import annotations

import base64
import json
import re
import secrets
from typing import Any

from starlette.responses import Response

from batchai_spec.emulator.arm.bodies import json_object, required_location, tags_of
from batchai_spec.emulator.arm.cascade import on_resource_group_deleted
from batchai_spec.emulator.arm.resource_groups import require_group
from batchai_spec.emulator.arm.responses import arm_empty, arm_json, require_subscription
from batchai_spec.emulator.clock import iso8601, now
from batchai_spec.emulator.files.store import forget_account
from batchai_spec.emulator.lro import OperationEndpoints, start_operation
from batchai_spec.emulator.routing import Call, Router, ServiceError
from batchai_spec.emulator.state import State, register_schema

register_schema(
    """
    CREATE TABLE IF NOT EXISTS storage_accounts (
        name TEXT PRIMARY KEY,
        resource_group TEXT NOT NULL COLLATE NOCASE,
        location TEXT NOT NULL,
        sku TEXT NOT NULL,
        kind TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        properties TEXT NOT NULL DEFAULT '{}',
        key1 TEXT NOT NULL,
        key2 TEXT NOT NULL,
        keys_created_at TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    )
    """
)

PROVIDER = "/subscriptions/{subscription}/providers/Microsoft.Storage"
ACCOUNTS = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Storage/storageAccounts"
ACCOUNT = ACCOUNTS + "/{account}"
CREATE_OPERATIONS = OperationEndpoints(
    PROVIDER + "/locations/{location}", status_segment=None, location_segment="asyncoperations",
    api_version="2025-06-01",
)
ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
KEY_NAMES = ("key1", "key2")
# Properties the emulator computes; a client cannot set them.
_COMPUTED = {"provisioningState", "primaryEndpoints", "primaryLocation", "statusOfPrimary", "creationTime"}


def add_routes(router: Router) -> None:
    router.add("PUT", ACCOUNT, create)
    router.add("GET", ACCOUNT, get_properties)
    router.add("PATCH", ACCOUNT, update)
    router.add("DELETE", ACCOUNT, delete)
    router.add("GET", ACCOUNTS, list_by_resource_group)
    router.add("GET", PROVIDER + "/storageAccounts", list_all)
    router.add("POST", ACCOUNT + "/listKeys", list_keys)
    router.add("POST", ACCOUNT + "/regenerateKey", regenerate_key)
    router.add("POST", PROVIDER + "/checkNameAvailability", check_name_availability)
    CREATE_OPERATIONS.add_routes(router)


def account_keys(state: State, account: str) -> tuple[str, str] | None:
    """The account's two keys (base64), or None when no such account exists."""
    row = state.connection().execute("SELECT key1, key2 FROM storage_accounts WHERE name = ?", (account,)).fetchone()
    return None if row is None else (row["key1"], row["key2"])


def create(state: State, call: Call) -> Response:
    """Long-running: 202 + Location; the poll answers 202 once, then 200 with the account (as Azure does)."""
    subscription = call.params["subscription"]
    require_subscription(state, subscription)
    resource_group, name = call.params["resource_group"], call.params["account"]
    require_group(state, resource_group)
    _check_name(name)
    body = json_object(call.json())
    location = required_location(body)
    sku = (body.get("sku") or {}).get("name")
    if not isinstance(sku, str) or not sku:
        raise ServiceError(400, "MissingRequiredProperty", "The sku name is required.")
    kind = body.get("kind") or "StorageV2"
    tags = tags_of(body.get("tags"))
    properties = _client_properties(body.get("properties"))
    if call.operation_fault is None:
        with state.transaction() as db:
            existing = _row(state, name)
            if existing is not None and existing["resource_group"].lower() != resource_group.lower():
                raise ServiceError(
                    409, "StorageAccountAlreadyTaken", f"The storage account named {name} is already taken."
                )
            if existing is None:
                db.execute(
                    "INSERT INTO storage_accounts (name, resource_group, location, sku, kind, tags, properties, key1,"
                    " key2, keys_created_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name, resource_group, location, sku, kind, json.dumps(tags), json.dumps(properties),
                        _new_key(), _new_key(), json.dumps({key: iso8601(now()) for key in KEY_NAMES}), now(),
                    ),
                )
            else:
                merged = {**json.loads(existing["properties"]), **properties}
                db.execute(
                    "UPDATE storage_accounts SET sku = ?, kind = ?, tags = ?, properties = ? WHERE name = ?",
                    (sku, kind, json.dumps(tags), json.dumps(merged), name),
                )
        result = _document(state, _row(state, name))
    else:
        result = None
    operation = start_operation(state, call, result=result, pending_polls=1)
    return CREATE_OPERATIONS.accepted(state, operation, subscription=subscription, location=location)


def get_properties(state: State, call: Call) -> Response:
    return arm_json(_document(state, _existing(state, call)))


def update(state: State, call: Call) -> Response:
    row = _existing(state, call)
    body = json_object(call.json())
    tags = tags_of(body["tags"]) if body.get("tags") is not None else json.loads(row["tags"])
    sku = (body.get("sku") or {}).get("name") or row["sku"]
    kind = body.get("kind") or row["kind"]
    properties = {**json.loads(row["properties"]), **_client_properties(body.get("properties"))}
    with state.transaction() as db:
        db.execute(
            "UPDATE storage_accounts SET tags = ?, sku = ?, kind = ?, properties = ? WHERE name = ?",
            (json.dumps(tags), sku, kind, json.dumps(properties), row["name"]),
        )
    return arm_json(_document(state, _row(state, row["name"])))


def delete(state: State, call: Call) -> Response:
    """200 when deleted, 204 when there was nothing to delete (the SDK accepts both)."""
    require_subscription(state, call.params["subscription"])
    row = _row(state, call.params["account"])
    if row is None or row["resource_group"].lower() != call.params["resource_group"].lower():
        return arm_empty(204)
    _delete_account(state, row["name"])
    return arm_empty(200)


def list_by_resource_group(state: State, call: Call) -> Response:
    require_subscription(state, call.params["subscription"])
    require_group(state, call.params["resource_group"])
    rows = state.connection().execute(
        "SELECT * FROM storage_accounts WHERE resource_group = ? ORDER BY name", (call.params["resource_group"],)
    ).fetchall()
    return arm_json({"value": [_document(state, row) for row in rows]})


def list_all(state: State, call: Call) -> Response:
    require_subscription(state, call.params["subscription"])
    rows = state.connection().execute("SELECT * FROM storage_accounts ORDER BY name").fetchall()
    return arm_json({"value": [_document(state, row) for row in rows]})


def list_keys(state: State, call: Call) -> Response:
    return arm_json(_keys_document(_existing(state, call)))


def regenerate_key(state: State, call: Call) -> Response:
    row = _existing(state, call)
    key_name = json_object(call.json()).get("keyName")
    if key_name not in KEY_NAMES:
        raise ServiceError(400, "InvalidValuesForRequestParameters", "keyName must be key1 or key2.")
    created = {**json.loads(row["keys_created_at"]), key_name: iso8601(now())}
    with state.transaction() as db:
        db.execute(
            f"UPDATE storage_accounts SET {key_name} = ?, keys_created_at = ? WHERE name = ?",
            (_new_key(), json.dumps(created), row["name"]),
        )
    return arm_json(_keys_document(_row(state, row["name"])))


def check_name_availability(state: State, call: Call) -> Response:
    require_subscription(state, call.params["subscription"])
    name = json_object(call.json()).get("name", "")
    if not isinstance(name, str) or not ACCOUNT_NAME.match(name):
        return arm_json({
            "nameAvailable": False, "reason": "AccountNameInvalid",
            "message": f"{name} is not a valid storage account name.",
        })
    if _row(state, name) is not None:
        return arm_json({
            "nameAvailable": False, "reason": "AlreadyExists",
            "message": f"The storage account named {name} is already taken.",
        })
    return arm_json({"nameAvailable": True})


@on_resource_group_deleted
def _delete_group_accounts(state: State, resource_group: str) -> None:
    rows = state.connection().execute(
        "SELECT name FROM storage_accounts WHERE resource_group = ?", (resource_group,)
    ).fetchall()
    for row in rows:
        _delete_account(state, row["name"])


def _delete_account(state: State, name: str) -> None:
    with state.transaction() as db:
        db.execute("DELETE FROM storage_accounts WHERE name = ?", (name,))
        forget_account(state, name)


def _existing(state: State, call: Call):
    require_subscription(state, call.params["subscription"])
    require_group(state, call.params["resource_group"])
    row = _row(state, call.params["account"])
    if row is None or row["resource_group"].lower() != call.params["resource_group"].lower():
        raise ServiceError(
            404, "ResourceNotFound",
            f"The Resource 'Microsoft.Storage/storageAccounts/{call.params['account']}' under resource group"
            f" '{call.params['resource_group']}' was not found.",
        )
    return row


def _row(state: State, name: str):
    return state.connection().execute("SELECT * FROM storage_accounts WHERE name = ?", (name,)).fetchone()


def _check_name(name: str) -> None:
    if not ACCOUNT_NAME.match(name):
        raise ServiceError(
            400, "AccountNameInvalid",
            f"{name} is not a valid storage account name. Storage account name must be between 3 and 24 characters"
            " in length and use numbers and lower-case letters only.",
        )


def _client_properties(properties: Any) -> dict[str, Any]:
    if properties is None:
        return {}
    return {key: value for key, value in json_object(properties).items() if key not in _COMPUTED}


def _document(state: State, row) -> dict[str, Any]:
    sku = row["sku"]
    properties = {
        **json.loads(row["properties"]),
        "provisioningState": "Succeeded",
        "primaryEndpoints": {"file": f"{state.storage_url}/{row['name']}/"},
        "primaryLocation": row["location"],
        "statusOfPrimary": "available",
        "creationTime": iso8601(row["created_at"]),
    }
    properties.setdefault("supportsHttpsTrafficOnly", True)
    document: dict[str, Any] = {
        "id": f"/subscriptions/{state.subscription_id}/resourceGroups/{row['resource_group']}"
        f"/providers/Microsoft.Storage/storageAccounts/{row['name']}",
        "name": row["name"],
        "type": "Microsoft.Storage/storageAccounts",
        "location": row["location"],
        "sku": {"name": sku, "tier": "Premium" if sku.lower().startswith("premium") else "Standard"},
        "kind": row["kind"],
        "tags": json.loads(row["tags"]),
        "properties": properties,
    }
    return document


def _keys_document(row) -> dict[str, Any]:
    created = json.loads(row["keys_created_at"])
    return {
        "keys": [
            {"keyName": key, "value": row[key], "permissions": "FULL", "creationTime": created.get(key)}
            for key in KEY_NAMES
        ]
    }


def _new_key() -> str:
    return base64.b64encode(secrets.token_bytes(64)).decode()
