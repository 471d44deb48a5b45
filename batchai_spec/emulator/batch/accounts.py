"""Batch accounts (Microsoft.Batch/batchAccounts) on ARM, as azure-mgmt-batch 19.0.0 calls them.

Answered as the recorded service answered (../shared/recordings/batch, reference §2.2-2.3):
- PUT: 202, empty body, a `Location` under `{account}/operationResults/{uuid}` with the caller's api-version and no
  `Azure-AsyncOperation`; the first poll answers 202 (a new Location), the next 200 with the account.
- DELETE: 202 + `Location` `.../providers/Microsoft.Batch/locations/{location}/accountOperationResults/{name}-{uuid}`;
  polls answer 202 while the account's pools and nodes leave, then 200 with an empty body.
- GET/PATCH: the account with a quoted `ETag` (and no `etag` in the body) and `Last-Modified`; keys only from
  `POST listKeys` (`{"accountName","primary","secondary"}`), `POST regenerateKeys` renews one of them.

Account names are 3-24 lowercase letters and digits and unique across the emulator (they are the DNS label of the
account's endpoint); a name another resource group holds answers 409 `AccountNameAlreadyExists` with the message
Azure's checkNameAvailability gives ("An account named '...' is already in use."; the error code itself is the
emulator's choice: no recording shows it). Deleting an account (or its resource group) marks it `Deleting`; the
scheduler (nodes.py) removes its pools' nodes, then its pools, jobs and tasks, then the account.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from batchai_spec.emulator.arm.bodies import json_object, required_location, tags_of
from batchai_spec.emulator.arm.cascade import on_resource_group_deleted
from batchai_spec.emulator.arm.resource_groups import require_group
from batchai_spec.emulator.arm.responses import arm_empty, arm_json, require_subscription
from batchai_spec.emulator.batch import service, store
from batchai_spec.emulator.batch.store import Account
from batchai_spec.emulator.clock import iso8601, now, rfc1123
from batchai_spec.emulator.lro import OperationEndpoints, start_operation
from batchai_spec.emulator.routing import Call, Router, ServiceError
from batchai_spec.emulator.state import State, register_schema

API_VERSION = "2025-06-01"
PROVIDER = "/subscriptions/{subscription}/providers/Microsoft.Batch"
ACCOUNTS = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Batch/batchAccounts"
ACCOUNT = ACCOUNTS + "/{account}"
TYPE = "Microsoft.Batch/batchAccounts"
# A new account's dedicated and low-priority core quotas, as recorded (nodes.py allocates within them).
CORE_QUOTA = 500
# Where account creations (and pool deletions, pools.py) are polled, and where account deletions are.
ACCOUNT_OPERATIONS = OperationEndpoints(ACCOUNT, status_segment=None, location_segment="operationResults",
                                        api_version=API_VERSION)
DELETE_OPERATIONS = OperationEndpoints(PROVIDER + "/locations/{location}", status_segment=None,
                                       location_segment="accountOperationResults", api_version=API_VERSION)
ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
KEY_NAMES = {"primary": "key1", "secondary": "key2"}
DELETING = "Deleting"
# What a new subscription gets in a region (recorded 2019: accountQuota 3). Reported, not enforced.
ACCOUNT_QUOTA = 3

# Per-VM-family dedicated core quotas of a new account, as the service gave them on 2024-10-24 in eastus (REC):
# the GPU families a training pool would use (NCASv3_T4, NCADSH100v5, NCSv3) start at 0.
_FAMILY_QUOTAS = (
    ("standardAv2Family", 500), ("standardDv2Family", 250), ("standardDv3Family", 500), ("standardEv3Family", 500),
    ("standardDSv2Family", 250), ("standardDSv3Family", 500), ("standardESv3Family", 500),
    ("standardFSv2Family", 100), ("standardNCFamily", 24), ("standardNVFamily", 24), ("standardDDv4Family", 100),
    ("standardDDSv4Family", 100), ("standardEDv4Family", 100), ("standardEDSv4Family", 100),
    ("standardA0_A7Family", 0), ("standardA8_A11Family", 0), ("standardDFamily", 0), ("standardGFamily", 0),
    ("basicAFamily", 0), ("standardFFamily", 0), ("standardNVPromoFamily", 0), ("standardNCPromoFamily", 0),
    ("standardHFamily", 0), ("standardHPromoFamily", 0), ("standardMSFamily", 0), ("standardDSFamily", 0),
    ("standardFSFamily", 0), ("standardGSFamily", 0), ("standardLSFamily", 0), ("standardLSv2Family", 0),
    ("standardNCSv2Family", 0), ("standardNDSFamily", 0), ("standardNCSv3Family", 0), ("standardHBSFamily", 0),
    ("standardHCSFamily", 0), ("standardNVSv3Family", 0), ("standardHBrsv2Family", 0), ("standardDAv4Family", 0),
    ("standardDASv4Family", 0), ("standardEAv4Family", 0), ("standardEASv4Family", 0), ("standardMSv2Family", 0),
    ("standardEIv3Family", 0), ("standardNVSv4Family", 0), ("Standard NCASv3_T4 Family", 0),
    ("standardXEIDSv4Family", 0), ("Standard NDASv4_A100 Family", 0), ("standard NDAMSv4_A100Family", 0),
    ("standardDCSv2Family", 0), ("standardHBv3Family", 0), ("standardNPSFamily", 0), ("standardFXMDVSFamily", 0),
    ("standardDDv5Family", 0), ("standardDDSv5Family", 0), ("standardEDv5Family", 0), ("standardEDSv5Family", 0),
    ("standardNCADSA100v4Family", 0), ("standardDADSv5Family", 0), ("standardEADSv5Family", 0),
    ("StandardNVADSA10v5Family", 0), ("standardEBDSv5Family", 0), ("standardHBv4Family", 0), ("standardHXFamily", 0),
    ("standardLSv3Family", 0), ("standardLASv3Family", 0), ("standardNCADSH100v5Family", 0),
    ("standardNGADSV620v1Family", 0), ("standardNDMI300Xv5IBFamily", 0), ("standardNCCadsH100v5Family", 0),
    ("standardECasv5Family", 0), ("standardECadsv5Family", 0), ("standardDCasv5Family", 0),
    ("standardDCadsv5Family", 0),
)
DEFAULT_AUTHENTICATION_MODES = ["SharedKey", "AAD", "TaskAuthenticationToken"]
_AUTHENTICATION_MODES = {"sharedkey": "SharedKey", "aad": "AAD", "taskauthenticationtoken": "TaskAuthenticationToken"}
# Properties a client may set at creation / change with PATCH; the others are the service's.
_CREATE_PROPERTIES = {"autoStorage", "poolAllocationMode", "keyVaultReference", "publicNetworkAccess",
                      "networkProfile", "encryption", "allowedAuthenticationModes"}
_UPDATE_PROPERTIES = {"autoStorage", "encryption", "allowedAuthenticationModes", "publicNetworkAccess",
                      "networkProfile"}

# The operations that finish once an account being deleted is gone (the account table has no runtime column).
register_schema(
    """
    CREATE TABLE IF NOT EXISTS batch_account_deletions (
        account TEXT PRIMARY KEY COLLATE NOCASE,
        operations TEXT NOT NULL
    )
    """
)

# hook(state, db, account_name): runs in the transaction that removes an account (its pools are gone by then).
AccountHook = Callable[[State, sqlite3.Connection, str], None]
_DELETED_HOOKS: list[AccountHook] = []


def on_account_deleted(hook: AccountHook) -> AccountHook:
    """Register what else goes with an account (the data plane's own files, say). Usable as a decorator."""
    if hook not in _DELETED_HOOKS:
        _DELETED_HOOKS.append(hook)
    return hook


def add_routes(router: Router) -> None:
    router.add("PUT", ACCOUNT, create)
    router.add("GET", ACCOUNT, get)
    router.add("PATCH", ACCOUNT, update)
    router.add("DELETE", ACCOUNT, delete)
    router.add("GET", ACCOUNTS, list_by_resource_group)
    router.add("GET", PROVIDER + "/batchAccounts", list_all)
    router.add("POST", ACCOUNT + "/listKeys", list_keys)
    router.add("POST", ACCOUNT + "/regenerateKeys", regenerate_key)
    router.add("POST", ACCOUNT + "/syncAutoStorageKeys", sync_auto_storage_keys)
    router.add("GET", PROVIDER + "/locations/{location}/quotas", location_quotas)
    router.add("POST", PROVIDER + "/locations/{location}/checkNameAvailability", check_name_availability)
    ACCOUNT_OPERATIONS.add_routes(router)
    DELETE_OPERATIONS.add_routes(router)


def account_endpoint(name: str, location: str) -> str:
    """`accountEndpoint` as Azure writes it: a host without a scheme (clients prepend `https://`)."""
    return f"{name}.{location.replace(' ', '').lower()}.batch.azure.com"


def account_url(account: Account) -> str:
    """`AZ_BATCH_ACCOUNT_URL` on the account's nodes."""
    return "https://" + account.body["properties"]["accountEndpoint"]


def is_deleting(account: Account) -> bool:
    return account.body["properties"].get("provisioningState") == DELETING


# ----------------------------------------------------------------------------------------------- handlers


def create(state: State, call: Call) -> Response:
    subscription = call.params["subscription"]
    require_subscription(state, subscription)
    resource_group, name = call.params["resource_group"], call.params["account"]
    require_group(state, resource_group)
    check_name(name)
    body = json_object(call.json())
    location = required_location(body)
    tags = tags_of(body.get("tags"))
    properties = _client_properties(body.get("properties"), _CREATE_PROPERTIES)
    identity = _identity(body.get("identity"))
    result = None
    if call.operation_fault is None:
        with state.transaction() as db:
            existing = store.account_by_name(db, name)
            if existing is not None and existing.resource_group.lower() != resource_group.lower():
                raise _name_taken(name)
            if existing is not None and is_deleting(existing):
                raise ServiceError(409, "AccountBeingDeleted", f"The account '{name}' is being deleted.")
            if existing is None:
                account = _new_account(state, db, name, resource_group, location, tags, properties, identity)
            else:
                account = existing
                document = account.body
                document["properties"].update(_stored_properties(state, properties))
                _set_tags(document, tags)
                document["identity"] = identity
                _save(db, account)
        result = view(account)
    operation = start_operation(state, call, result=result, pending_polls=1)
    return ACCOUNT_OPERATIONS.accepted(
        state, operation, api_version=_api_version(call), subscription=subscription, resource_group=resource_group,
        account=name,
    )


def get(state: State, call: Call) -> Response:
    return _answer(existing_account(state, call))


def update(state: State, call: Call) -> Response:
    body = json_object(call.json())
    with state.transaction() as db:
        account = existing_account(state, call, db)
        _refuse_if_deleting(account)
        if body.get("tags") is not None:
            _set_tags(account.body, tags_of(body["tags"]))
        properties = _client_properties(body.get("properties"), _UPDATE_PROPERTIES)
        account.body["properties"].update(_stored_properties(state, properties))
        if body.get("identity") is not None:
            account.body["identity"] = _identity(body["identity"])
        _save(db, account)
    return _answer(account)


def delete(state: State, call: Call) -> Response:
    """202 and a Location while the account's pools leave (nodes.py finishes it); 204 when there is no account."""
    subscription = call.params["subscription"]
    require_subscription(state, subscription)
    require_group(state, call.params["resource_group"])
    account = _account_in_group(state.connection(), call.params["account"], call.params["resource_group"])
    if account is None:
        return arm_empty(204)
    operation = start_operation(state, call, done=False)
    if call.operation_fault is None:
        with state.transaction() as db:
            current = store.account_by_name(db, account.name)
            if current is not None:
                mark_deleting(db, current, operation.id)
        service.wake(state)
    return DELETE_OPERATIONS.accepted(
        state, operation, operation_name=f"{account.name}-{operation.id}", api_version=_api_version(call),
        subscription=subscription, location=account.location.replace(" ", "").lower(),
    )


def list_by_resource_group(state: State, call: Call) -> Response:
    require_subscription(state, call.params["subscription"])
    require_group(state, call.params["resource_group"])
    accounts = store.accounts_in_group(state.connection(), call.params["resource_group"])
    return arm_json({"value": [view(account) for account in accounts]})


def list_all(state: State, call: Call) -> Response:
    require_subscription(state, call.params["subscription"])
    return arm_json({"value": [view(account) for account in store.all_accounts(state.connection())]})


def list_keys(state: State, call: Call) -> Response:
    return arm_json(_keys_document(existing_account(state, call)))


def regenerate_key(state: State, call: Call) -> Response:
    key_name = json_object(call.json()).get("keyName")
    column = KEY_NAMES.get(key_name.lower()) if isinstance(key_name, str) else None
    if column is None:
        raise ServiceError(400, "InvalidParameter", "keyName must be Primary or Secondary.")
    with state.transaction() as db:
        account = existing_account(state, call, db)
        _refuse_if_deleting(account)
        setattr(account, column, new_key())
        db.execute(f"UPDATE batch_accounts SET {column} = ? WHERE name = ?",  # noqa: S608 - fixed names
                   (getattr(account, column), account.name))
    return arm_json(_keys_document(account))


def sync_auto_storage_keys(state: State, call: Call) -> Response:
    """204 (recorded, 2019): the service re-reads the auto-storage account's keys."""
    with state.transaction() as db:
        account = existing_account(state, call, db)
        auto_storage = account.body["properties"].get("autoStorage")
        if auto_storage is None:
            raise ServiceError(409, "AccountNotLinkedToAutoStorage",
                               f"The account '{account.name}' has no auto-storage account.")
        auto_storage["lastKeySync"] = iso8601(now())
        _save(db, account)
    return arm_empty(204)


def location_quotas(state: State, call: Call) -> Response:
    require_subscription(state, call.params["subscription"])
    return arm_json({"accountQuota": ACCOUNT_QUOTA})


def check_name_availability(state: State, call: Call) -> Response:
    require_subscription(state, call.params["subscription"])
    name = json_object(call.json()).get("name", "")
    if not isinstance(name, str) or not ACCOUNT_NAME.match(name):
        return arm_json({"nameAvailable": False, "reason": "Invalid", "message": _invalid_name_message(str(name))})
    if store.account_by_name(state.connection(), name) is not None:
        return arm_json({"nameAvailable": False, "reason": "AlreadyExists", "message": _taken_message(name)})
    return arm_json({"nameAvailable": True})


# ----------------------------------------------------------------------------------------------- deletion


def mark_deleting(db: sqlite3.Connection, account: Account, operation_id: str | None = None) -> None:
    """The account and its pools turn `Deleting`; nodes.py removes them (nodes first), then the account."""
    from batchai_spec.emulator.batch import pools  # pools imports this module

    if not is_deleting(account):
        account.body["properties"]["provisioningState"] = DELETING
        _save(db, account, touch=False)
    row = db.execute("SELECT operations FROM batch_account_deletions WHERE account = ?", (account.name,)).fetchone()
    operations = json.loads(row["operations"]) if row else []
    if operation_id is not None:
        operations.append(operation_id)
    db.execute("INSERT OR REPLACE INTO batch_account_deletions (account, operations) VALUES (?, ?)",
               (account.name, json.dumps(operations)))
    for pool in store.list_pools(db, account.name):
        pools.mark_deleting(db, pool, now())


def remove_account(state: State, db: sqlite3.Connection, name: str) -> list[str]:
    """Remove an account whose pools are gone, with its jobs and tasks; the delete operations to finish."""
    row = db.execute("SELECT operations FROM batch_account_deletions WHERE account = ?", (name,)).fetchone()
    for hook in _DELETED_HOOKS:
        hook(state, db, name)
    db.execute("DELETE FROM batch_tasks WHERE account = ?", (name,))
    db.execute("DELETE FROM batch_jobs WHERE account = ?", (name,))
    db.execute("DELETE FROM batch_pools WHERE account = ?", (name,))
    db.execute("DELETE FROM batch_nodes WHERE account = ?", (name,))
    db.execute("DELETE FROM batch_account_deletions WHERE account = ?", (name,))
    db.execute("DELETE FROM batch_accounts WHERE name = ?", (name,))
    return json.loads(row["operations"]) if row else []


@on_resource_group_deleted
def _delete_group_accounts(state: State, resource_group: str) -> None:
    """Runs inside the resource group's deleting transaction; the scheduler finishes the work."""
    with state.transaction() as db:
        for account in store.accounts_in_group(db, resource_group):
            mark_deleting(db, account)
    service.wake(state)


# ----------------------------------------------------------------------------------------------- documents


def view(account: Account) -> dict[str, Any]:
    """The account as ARM GET shows it (no keys)."""
    return copy.deepcopy(account.body)


def existing_account(state: State, call: Call, db: sqlite3.Connection | None = None) -> Account:
    """The account the URL names, or 404 (as ARM answers for any resource missing from its group)."""
    require_subscription(state, call.params["subscription"])
    require_group(state, call.params["resource_group"])
    account = _account_in_group(db or state.connection(), call.params["account"], call.params["resource_group"])
    if account is None:
        raise ServiceError(
            404, "ResourceNotFound",
            f"The Resource '{TYPE}/{call.params['account']}' under resource group "
            f"'{call.params['resource_group']}' was not found. For more details please go to "
            "https://aka.ms/ARMResourceNotFoundFix",
        )
    return account


def check_name(name: str) -> None:
    if not ACCOUNT_NAME.match(name):
        raise ServiceError(400, "AccountNameInvalid", _invalid_name_message(name))


def new_key() -> str:
    """Batch keys are base64 of 64 random bytes (88 characters), like the recorded ones."""
    return base64.b64encode(secrets.token_bytes(64)).decode()


def _new_account(state: State, db: sqlite3.Connection, name: str, resource_group: str, location: str,
                 tags: dict[str, str], properties: dict[str, Any], identity: dict[str, Any]) -> Account:
    document: dict[str, Any] = {
        "id": f"/subscriptions/{state.subscription_id}/resourceGroups/{resource_group}/providers/{TYPE}/{name}",
        "name": name,
        "type": TYPE,
        "location": location,
        "properties": {
            "accountEndpoint": account_endpoint(name, location),
            "nodeManagementEndpoint": f"{uuid.uuid4()}.{location.replace(' ', '').lower()}.service.batch.azure.com",
            "provisioningState": "Succeeded",
            "dedicatedCoreQuota": CORE_QUOTA,
            "dedicatedCoreQuotaPerVMFamily": [{"name": family, "coreQuota": quota} for family, quota in _FAMILY_QUOTAS],
            "dedicatedCoreQuotaPerVMFamilyEnforced": True,
            "lowPriorityCoreQuota": CORE_QUOTA,
            "poolQuota": 100,
            "activeJobAndJobScheduleQuota": 300,
            "poolAllocationMode": "BatchService",
            "publicNetworkAccess": "Enabled",
            "privateEndpointConnections": [],
            "encryption": {"keySource": "Microsoft.Batch"},
            "allowedAuthenticationModes": list(DEFAULT_AUTHENTICATION_MODES),
        },
        "identity": identity,
    }
    document["properties"].update(_stored_properties(state, properties))
    _set_tags(document, tags)
    account = Account(
        name=name, subscription=state.subscription_id, resource_group=resource_group, location=location,
        body=document, key1=new_key(), key2=new_key(), etag=store.data_plane_etag(), modified_at=now(),
        seq=store.next_seq(db, "batch_accounts"),
    )
    db.execute(
        "INSERT INTO batch_accounts (name, subscription, resource_group, location, body, key1, key2, etag,"
        " modified_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (account.name, account.subscription, account.resource_group, account.location, json.dumps(account.body),
         account.key1, account.key2, account.etag, account.modified_at, account.seq),
    )
    return account


def _save(db: sqlite3.Connection, account: Account, *, touch: bool = True) -> None:
    if touch:
        account.etag, account.modified_at = store.data_plane_etag(), now()
    db.execute("UPDATE batch_accounts SET body = ?, etag = ?, modified_at = ? WHERE name = ?",
               (json.dumps(account.body), account.etag, account.modified_at, account.name))


def _answer(account: Account) -> Response:
    return arm_json(view(account), 200, {"ETag": f'"{account.etag}"', "Last-Modified": rfc1123(account.modified_at)})


def _account_in_group(db: sqlite3.Connection, name: str, resource_group: str) -> Account | None:
    account = store.account_by_name(db, name)
    if account is None or account.resource_group.lower() != resource_group.lower():
        return None
    return account


def _refuse_if_deleting(account: Account) -> None:
    if is_deleting(account):
        raise ServiceError(409, "AccountBeingDeleted", f"The account '{account.name}' is being deleted.")


def _set_tags(document: dict[str, Any], tags: dict[str, str]) -> None:
    """ARM leaves `tags` out of an account that has none (REC)."""
    if tags:
        document["tags"] = tags
    else:
        document.pop("tags", None)


def _client_properties(properties: Any, allowed: set[str]) -> dict[str, Any]:
    if properties is None:
        return {}
    return {name: value for name, value in json_object(properties).items() if name in allowed}


def _stored_properties(state: State, properties: dict[str, Any]) -> dict[str, Any]:
    """Client properties checked and completed as the service shows them."""
    stored = dict(properties)
    if "autoStorage" in stored:
        stored["autoStorage"] = _auto_storage(state, stored["autoStorage"])
    if "allowedAuthenticationModes" in stored:
        modes = stored["allowedAuthenticationModes"]
        if not isinstance(modes, list) or any(
            not isinstance(mode, str) or mode.lower() not in _AUTHENTICATION_MODES for mode in modes
        ):
            raise ServiceError(400, "InvalidRequestBody",
                               "allowedAuthenticationModes must list SharedKey, AAD or TaskAuthenticationToken.")
        stored["allowedAuthenticationModes"] = [_AUTHENTICATION_MODES[mode.lower()] for mode in modes]
    for name in ("poolAllocationMode", "publicNetworkAccess"):
        if name in stored and not isinstance(stored[name], str):
            raise ServiceError(400, "InvalidRequestBody", f"{name} must be a string.")
    if stored.get("poolAllocationMode", "BatchService").lower() != "batchservice":
        raise ServiceError(400, "FeatureNotSupported",
                           "The emulator only has BatchService pool allocation (no UserSubscription accounts).")
    return stored


def _auto_storage(state: State, value: Any) -> dict[str, Any]:
    auto_storage = dict(json_object(value))
    storage_id = auto_storage.get("storageAccountId")
    if not isinstance(storage_id, str) or "/providers/Microsoft.Storage/storageAccounts/" not in storage_id:
        raise ServiceError(400, "InvalidRequestBody",
                           "autoStorage.storageAccountId must be the resource id of a storage account.")
    auto_storage.setdefault("authenticationMode", "StorageKeys")
    auto_storage["lastKeySync"] = iso8601(now())
    return auto_storage


def _identity(value: Any) -> dict[str, Any]:
    if value is None:
        return {"type": "None"}
    identity = json_object(value)
    if not isinstance(identity.get("type"), str):
        raise ServiceError(400, "InvalidRequestBody", "identity.type is required.")
    return identity


def _keys_document(account: Account) -> dict[str, str]:
    return {"accountName": account.name, "primary": account.key1, "secondary": account.key2}


def _api_version(call: Call) -> str:
    return call.query.get("api-version") or API_VERSION


def _taken_message(name: str) -> str:
    return f"An account named '{name}' is already in use."


def _name_taken(name: str) -> ServiceError:
    return ServiceError(409, "AccountNameAlreadyExists", _taken_message(name))


def _invalid_name_message(name: str) -> str:
    return (f"The account name '{name}' is invalid: Batch account names must be between 3 and 24 characters in"
            " length and use numbers and lower-case letters only.")
