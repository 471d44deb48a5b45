"""Pools on ARM (Microsoft.Batch/batchAccounts/pools), as azure-mgmt-batch 19.0.0 calls them, and the pool logic the
data plane shares (checking and completing a pool's properties, updates and their mutability, deletion, stopping a
resize, the ARM view).

- PUT: synchronous 200 with the pool (not an LRO); on an existing pool it replaces every property (what is left
  out goes back to its default), subject to the same mutability rules as PATCH. `If-Match` (an etag or `*`) and
  `If-None-Match: *` are honoured (412 `ConditionNotMet`).
- PATCH: a merge of the given top-level properties. Changeable at any time: `scaleSettings`, `startTask`,
  `metadata`, `applicationPackages`, `certificates` (reference §2.4); only while the pool is Steady with no node:
  `vmSize`, `deploymentConfiguration`, `targetNodeCommunicationMode`; anything else: 400
  `PropertyCannotBeUpdated`.
- DELETE: 202 + Location (the account's operationResults); the pool shows `provisioningState: Deleting` while its
  nodes leave (nodes.py), then it is gone and the poll answers 200. `stopResize` and `disableAutoScale`: 200 with
  the pool.
- The etag is in the body (`etag`) and the `ETag` header, weak form `W/"0x..."` (SDK sample); it changes with
  every change a client makes, not with allocation progress.
- Secrets (`accountKey` of mounts, `password` of user accounts and container registries, `sshPrivateKey`) are kept
  for the nodes and never returned: GET leaves them out.
- Only Azure File shares can be mounted (`azureFileShareConfiguration`); blob (blobfuse), NFS and CIFS mounts are
  refused with 400 `MountTypeNotSupported`: the emulator has no Blob service and no file servers to mount.
"""

from __future__ import annotations

import copy
import re
import sqlite3
from datetime import timedelta
from typing import Any

import isodate
from starlette.responses import Response

from batchai_spec.emulator.arm.bodies import json_object, tags_of
from batchai_spec.emulator.arm.responses import arm_empty, arm_json
from batchai_spec.emulator.batch import accounts, autoscale, nodes, service, store
from batchai_spec.emulator.batch.store import Account, Pool
from batchai_spec.emulator.clock import iso8601, now
from batchai_spec.emulator.lro import finish_operation, start_operation
from batchai_spec.emulator.routing import Call, Router, ServiceError
from batchai_spec.emulator.state import State

POOLS = accounts.ACCOUNT + "/pools"
POOL = POOLS + "/{pool}"
TYPE = "Microsoft.Batch/batchAccounts/pools"
POOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DELETING = "Deleting"

# Mutability of pool properties (ARM PATCH/PUT, reference §2.4).
ANYTIME = frozenset({"scaleSettings", "startTask", "metadata", "applicationPackages", "certificates"})
WHEN_EMPTY = frozenset({"vmSize", "deploymentConfiguration", "targetNodeCommunicationMode"})
# What the service fills in; a client's values for them are ignored.
SERVER_FIELDS = frozenset({
    "lastModified", "creationTime", "provisioningState", "provisioningStateTransitionTime", "allocationState",
    "allocationStateTransitionTime", "currentDedicatedNodes", "currentLowPriorityNodes", "autoScaleRun",
    "resizeOperationStatus", "currentNodeCommunicationMode",
})
MOUNT_KINDS = ("azureFileShareConfiguration", "azureBlobFileSystemConfiguration", "nfsMountConfiguration",
               "cifsMountConfiguration")
DEFAULT_RESIZE_TIMEOUT = "PT15M"
DEFAULT_EVALUATION_INTERVAL = "PT15M"
_ENUMS = {
    "nodeDeallocationOption": {"requeue": "Requeue", "terminate": "Terminate", "taskcompletion": "TaskCompletion",
                               "retaineddata": "RetainedData"},
    "interNodeCommunication": {"enabled": "Enabled", "disabled": "Disabled"},
    "containerType": {"dockercompatible": "DockerCompatible", "cricompatible": "CriCompatible"},
    "elevationLevel": {"nonadmin": "NonAdmin", "admin": "Admin"},
    "scope": {"task": "Task", "pool": "Pool"},
    "nodeFillType": {"spread": "Spread", "pack": "Pack"},
}


def add_routes(router: Router) -> None:
    router.add("PUT", POOL, create)
    router.add("GET", POOL, get)
    router.add("PATCH", POOL, update)
    router.add("DELETE", POOL, delete)
    router.add("GET", POOLS, list_by_account)
    router.add("POST", POOL + "/stopResize", stop_resize_handler)
    router.add("POST", POOL + "/disableAutoScale", disable_auto_scale_handler)


# ----------------------------------------------------------------------------------------------- handlers


def create(state: State, call: Call) -> Response:
    body = json_object(call.json())
    name = call.params["pool"]
    if not POOL_NAME.match(name):
        raise ServiceError(400, "InvalidResourceName",
                           f"The pool name '{name}' is invalid: use 1-64 letters, digits, hyphens and underscores.")
    properties = normalize_properties(body.get("properties"))
    tags = tags_of(body.get("tags"))
    identity = body.get("identity")
    with state.transaction() as db:
        account = _writable_account(state, call, db)
        pool = store.get_pool(db, account.name, name)
        _check_conditions(call, pool)
        moment = now()
        if pool is None:
            pool = new_pool(db, account.name, name, properties, moment, tags=tags, identity=identity)
        else:
            _refuse_if_deleting(pool)
            change_properties(db, pool, properties, moment, replace=True)
            if pool.tags != tags or pool.runtime.get("identity") != identity:
                pool.tags = tags
                _set_identity(pool, identity)
                touch(pool, moment)
            store.save_pool(db, pool)
    service.wake(state)
    return _answer(account, pool)


def get(state: State, call: Call) -> Response:
    db = state.connection()
    account = accounts.existing_account(state, call, db)
    return _answer(account, _existing_pool(db, account, call))


def update(state: State, call: Call) -> Response:
    body = json_object(call.json())
    changes = json_object(body.get("properties") or {})
    with state.transaction() as db:
        account = accounts.existing_account(state, call, db)
        pool = _existing_pool(db, account, call)
        _check_conditions(call, pool)
        _refuse_if_deleting(pool)
        moment = now()
        merged = {**pool.properties, **{key: value for key, value in changes.items() if key not in SERVER_FIELDS}}
        change_properties(db, pool, normalize_properties(merged), moment)
        if body.get("tags") is not None:
            tags = tags_of(body["tags"])
            if tags != pool.tags:
                pool.tags = tags
                touch(pool, moment)
        if body.get("identity") is not None and body["identity"] != pool.runtime.get("identity"):
            _set_identity(pool, body["identity"])
            touch(pool, moment)
        store.save_pool(db, pool)
    service.wake(state)
    return _answer(account, pool)


def delete(state: State, call: Call) -> Response:
    """202 + Location while the nodes leave; 204 when there is no such pool."""
    db = state.connection()
    account = accounts.existing_account(state, call, db)
    if store.get_pool(db, account.name, call.params["pool"]) is None:
        return arm_empty(204)
    operation = start_operation(state, call, done=False)
    if call.operation_fault is None:
        with state.transaction() as db:
            pool = store.get_pool(db, account.name, call.params["pool"])
            if pool is None:
                finish_operation(state, operation.id)
            else:
                mark_deleting(db, pool, now(), operation.id)
        service.wake(state)
    return accounts.ACCOUNT_OPERATIONS.accepted(
        state, operation, api_version=call.query.get("api-version") or accounts.API_VERSION,
        subscription=call.params["subscription"], resource_group=call.params["resource_group"],
        account=call.params["account"],
    )


def list_by_account(state: State, call: Call) -> Response:
    """Every pool of the account in one page (`maxresults`, `$select` and `$filter` are not applied)."""
    db = state.connection()
    account = accounts.existing_account(state, call, db)
    return arm_json({"value": [arm_view(account, pool) for pool in store.list_pools(db, account.name)]})


def stop_resize_handler(state: State, call: Call) -> Response:
    with state.transaction() as db:
        account = accounts.existing_account(state, call, db)
        pool = _existing_pool(db, account, call)
        _refuse_if_deleting(pool)
        stop_resize(db, pool, now())
        store.save_pool(db, pool)
    service.wake(state)
    return _answer(account, pool)


def disable_auto_scale_handler(state: State, call: Call) -> Response:
    with state.transaction() as db:
        account = accounts.existing_account(state, call, db)
        pool = _existing_pool(db, account, call)
        _refuse_if_deleting(pool)
        disable_auto_scale(db, pool, now())
        store.save_pool(db, pool)
    service.wake(state)
    return _answer(account, pool)


# ----------------------------------------------------------------------------------------------- pool logic
# Shared with the data plane: it converts its bodies to ARM properties and calls these (in a transaction), then
# `service.wake(state)`.


def new_pool(db: sqlite3.Connection, account: str, name: str, properties: dict[str, Any], moment: float, *,
             tags: dict[str, str] | None = None, identity: Any = None) -> Pool:
    """Insert a pool with `properties` (checked by `normalize_properties`); an auto-scale formula is evaluated at
    once, and a pool with a target above 0 is `Resizing` from the start."""
    stamp = iso8601(moment)
    pool = Pool(
        account=account, name=name, properties=properties,
        status={
            "provisioningState": "Succeeded", "provisioningStateTransitionTime": stamp,
            "allocationState": "Steady", "allocationStateTransitionTime": stamp,
            "currentDedicatedNodes": 0, "currentLowPriorityNodes": 0,
        },
        runtime={}, tags=dict(tags or {}), etag=store.data_plane_etag(), created_at=moment, modified_at=moment,
    )
    _set_identity(pool, identity)
    autoscale.refresh(db, pool, moment)
    nodes.settle_allocation(db, pool, moment)
    store.insert_pool(db, pool)
    return pool


def change_properties(db: sqlite3.Connection, pool: Pool, properties: dict[str, Any], moment: float, *,
                      replace: bool = False) -> None:
    """Give `pool` the (checked) `properties`, if the mutability rules allow every change; the caller saves it.
    `replace`: a PUT (the error says so)."""
    changed = sorted(name for name in set(pool.properties) | set(properties)
                     if pool.properties.get(name) != properties.get(name))
    if not changed:
        return
    fixed = [name for name in changed if name not in ANYTIME and name not in WHEN_EMPTY]
    if fixed:
        raise ServiceError(
            400, "PropertyCannotBeUpdated",
            f"The property '{fixed[0]}' of pool '{pool.name}' cannot be updated; recreate the pool to change it"
            + (" (a PUT on an existing pool replaces all of its properties)." if replace else "."),
        )
    needs_empty = [name for name in changed if name in WHEN_EMPTY]
    if needs_empty and (store.list_nodes(db, pool.account, pool.name) or pool.status["allocationState"] != "Steady"):
        raise ServiceError(
            400, "PropertyCannotBeUpdated",
            f"The property '{needs_empty[0]}' of pool '{pool.name}' can only be updated while the pool is Steady with"
            " no dedicated and no Spot/low-priority nodes; resize it to 0 first.",
        )
    pool.properties = properties
    touch(pool, moment)
    autoscale.refresh(db, pool, moment)
    nodes.settle_allocation(db, pool, moment)


def mark_deleting(db: sqlite3.Connection, pool: Pool, moment: float, operation_id: str | None = None) -> None:
    """The pool turns `Deleting`: its nodes leave (their tasks are stopped), then nodes.py removes it and finishes
    the delete operations."""
    if not pool.deleting:
        pool.status["provisioningState"] = DELETING
        pool.status["provisioningStateTransitionTime"] = iso8601(moment)
    if operation_id is not None:
        pool.runtime.setdefault("deleteOperations", []).append(operation_id)
    store.save_pool(db, pool)


def stop_resize(db: sqlite3.Connection, pool: Pool, moment: float) -> None:
    """Stop a resize where it is: allocations not yet made are cancelled, nodes already leaving still leave; the
    pool is `Stopping`, then `Steady` (nodes.py) with a `ResizeStopped` error. A Steady pool is left as it is.
    The caller saves the pool."""
    nodes.stop_resize(db, pool, moment)
    touch(pool, moment)


def disable_auto_scale(db: sqlite3.Connection, pool: Pool, moment: float) -> None:
    """Auto-scale off: the pool keeps the node counts of the last evaluation, as a fixed scale. The caller saves."""
    scale = pool.properties.get("scaleSettings") or {}
    if "autoScale" not in scale:
        return
    dedicated, low_priority = nodes.targets(pool)
    pool.properties["scaleSettings"] = {"fixedScale": {
        "targetDedicatedNodes": dedicated, "targetLowPriorityNodes": low_priority,
        "resizeTimeout": DEFAULT_RESIZE_TIMEOUT,
    }}
    pool.status.pop("autoScaleRun", None)
    touch(pool, moment)
    autoscale.refresh(db, pool, moment)
    nodes.settle_allocation(db, pool, moment)


def touch(pool: Pool, moment: float) -> None:
    """A client changed the pool: new etag and lastModified."""
    pool.etag, pool.modified_at = store.data_plane_etag(), moment


def arm_view(account: Account, pool: Pool) -> dict[str, Any]:
    """The pool as ARM GET shows it (no secrets)."""
    properties = public_properties(pool.properties)
    status = pool.status
    properties.update({
        "lastModified": iso8601(pool.modified_at),
        "creationTime": iso8601(pool.created_at),
        "provisioningState": status["provisioningState"],
        "provisioningStateTransitionTime": status["provisioningStateTransitionTime"],
        "allocationState": status["allocationState"],
        "allocationStateTransitionTime": status["allocationStateTransitionTime"],
        "currentDedicatedNodes": status["currentDedicatedNodes"],
        "currentLowPriorityNodes": status["currentLowPriorityNodes"],
    })
    if "autoScaleRun" in status and "autoScale" in (pool.properties.get("scaleSettings") or {}):
        properties["autoScaleRun"] = copy.deepcopy(status["autoScaleRun"])
    if "resizeOperationStatus" in status:
        properties["resizeOperationStatus"] = copy.deepcopy(status["resizeOperationStatus"])
    document: dict[str, Any] = {
        "id": f"{account.body['id']}/pools/{pool.name}",
        "name": pool.name,
        "type": TYPE,
        "etag": arm_etag(pool),
        "properties": properties,
    }
    if pool.runtime.get("identity") is not None:
        document["identity"] = copy.deepcopy(pool.runtime["identity"])
    if pool.tags:
        document["tags"] = dict(pool.tags)
    return document


def arm_etag(pool: Pool) -> str:
    return f'W/"{pool.etag}"'


def public_properties(properties: dict[str, Any]) -> dict[str, Any]:
    """A copy of pool properties without their secrets (what GET shows, ARM and data plane alike)."""
    public = copy.deepcopy(properties)
    for mount in public.get("mountConfiguration") or []:
        for kind in MOUNT_KINDS:
            configuration = mount.get(kind)
            if isinstance(configuration, dict):
                for secret in ("accountKey", "sasKey", "password"):
                    configuration.pop(secret, None)
    for user in public.get("userAccounts") or []:
        user.pop("password", None)
        (user.get("linuxUserConfiguration") or {}).pop("sshPrivateKey", None)
    container = ((public.get("deploymentConfiguration") or {}).get("virtualMachineConfiguration") or {}).get(
        "containerConfiguration") or {}
    for registry in container.get("containerRegistries") or []:
        registry.pop("password", None)
    registry = ((public.get("startTask") or {}).get("containerSettings") or {}).get("registry")
    if isinstance(registry, dict):
        registry.pop("password", None)
    return public


# ----------------------------------------------------------------------------------------------- checking bodies


def normalize_properties(properties: Any) -> dict[str, Any]:
    """A pool's ARM `properties` checked (400 `MissingRequiredProperty` / `InvalidPropertyValue` /
    `MountTypeNotSupported`) and completed with the service's defaults; server-owned fields dropped."""
    props = copy.deepcopy(json_object(properties if properties is not None else {}))
    for name in SERVER_FIELDS:
        props.pop(name, None)
    vm_size = props.get("vmSize")
    if not isinstance(vm_size, str) or not vm_size.strip():
        raise _missing("vmSize")
    _check_deployment(props.get("deploymentConfiguration"))
    props["scaleSettings"] = _scale_settings(props.get("scaleSettings"))
    if props.get("startTask") is None:
        props.pop("startTask", None)
    else:
        props["startTask"] = _start_task(props["startTask"])
    if props.get("mountConfiguration") is None:
        props.pop("mountConfiguration", None)
    else:
        _check_mounts(props["mountConfiguration"])
    if props.get("userAccounts") is None:
        props.pop("userAccounts", None)
    else:
        _check_user_accounts(props["userAccounts"])
    if props.get("metadata") is None:
        props.pop("metadata", None)
    else:
        _check_pairs(props["metadata"], "metadata", "name")
    slots = props.setdefault("taskSlotsPerNode", 1)
    if not isinstance(slots, int) or isinstance(slots, bool) or not 1 <= slots <= 256:
        raise _invalid("taskSlotsPerNode", "it must be an integer from 1 to 256")
    props["interNodeCommunication"] = _enum(props.get("interNodeCommunication", "Disabled"),
                                            "interNodeCommunication", "interNodeCommunication")
    policy = props.setdefault("taskSchedulingPolicy", {"nodeFillType": "Spread"})
    if not isinstance(policy, dict):
        raise _invalid("taskSchedulingPolicy", "it must be an object")
    policy["nodeFillType"] = _enum(policy.get("nodeFillType", "Spread"), "nodeFillType",
                                   "taskSchedulingPolicy.nodeFillType")
    return props


def _check_deployment(deployment: Any) -> None:
    if not isinstance(deployment, dict):
        raise _missing("deploymentConfiguration")
    if "cloudServiceConfiguration" in deployment:
        raise _invalid("deploymentConfiguration.cloudServiceConfiguration",
                       "Cloud Services pools are retired; use virtualMachineConfiguration")
    vm = deployment.get("virtualMachineConfiguration")
    if not isinstance(vm, dict):
        raise _missing("deploymentConfiguration.virtualMachineConfiguration")
    if not isinstance(vm.get("imageReference"), dict):
        raise _missing("deploymentConfiguration.virtualMachineConfiguration.imageReference")
    if not isinstance(vm.get("nodeAgentSkuId"), str) or not vm["nodeAgentSkuId"]:
        raise _missing("deploymentConfiguration.virtualMachineConfiguration.nodeAgentSkuId")
    container = vm.get("containerConfiguration")
    if container is not None:
        if not isinstance(container, dict) or not isinstance(container.get("type"), str):
            raise _missing("deploymentConfiguration.virtualMachineConfiguration.containerConfiguration.type")
        container["type"] = _enum(container["type"], "containerType",
                                  "deploymentConfiguration.virtualMachineConfiguration.containerConfiguration.type")
        for index, registry in enumerate(container.get("containerRegistries") or []):
            if not isinstance(registry, dict):
                raise _invalid(f"containerConfiguration.containerRegistries[{index}]", "it must be an object")


def _scale_settings(scale: Any) -> dict[str, Any]:
    if scale is None:
        scale = {"fixedScale": {}}
    if not isinstance(scale, dict):
        raise _invalid("scaleSettings", "it must be an object")
    kinds = [kind for kind in ("fixedScale", "autoScale") if scale.get(kind) is not None]
    if len(kinds) != 1:
        raise _invalid("scaleSettings", "give exactly one of fixedScale and autoScale")
    if kinds == ["fixedScale"]:
        fixed = dict(json_object(scale["fixedScale"]))
        for name in ("targetDedicatedNodes", "targetLowPriorityNodes"):
            value = fixed.setdefault(name, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _invalid(f"scaleSettings.fixedScale.{name}", "it must be an integer of at least 0")
        fixed.setdefault("resizeTimeout", DEFAULT_RESIZE_TIMEOUT)
        _duration(fixed["resizeTimeout"], "scaleSettings.fixedScale.resizeTimeout", timedelta(minutes=5), None)
        if fixed.get("nodeDeallocationOption") is not None:
            fixed["nodeDeallocationOption"] = _enum(fixed["nodeDeallocationOption"], "nodeDeallocationOption",
                                                    "scaleSettings.fixedScale.nodeDeallocationOption")
        return {"fixedScale": fixed}
    auto = dict(json_object(scale["autoScale"]))
    if not isinstance(auto.get("formula"), str) or not auto["formula"].strip():
        raise _missing("scaleSettings.autoScale.formula")
    if len(auto["formula"]) > autoscale.MAX_FORMULA_LENGTH:
        raise ServiceError(400, "AutoScaleFormulaTooLong",
                           f"The autoscale formula is longer than {autoscale.MAX_FORMULA_LENGTH} characters.")
    auto.setdefault("evaluationInterval", DEFAULT_EVALUATION_INTERVAL)
    _duration(auto["evaluationInterval"], "scaleSettings.autoScale.evaluationInterval", timedelta(minutes=5),
              timedelta(hours=168))
    return {"autoScale": auto}


def _start_task(task: Any) -> dict[str, Any]:
    task = dict(json_object(task))
    if not isinstance(task.get("commandLine"), str) or not task["commandLine"].strip():
        raise _missing("startTask.commandLine")
    task.setdefault("maxTaskRetryCount", 0)
    if not isinstance(task["maxTaskRetryCount"], int) or task["maxTaskRetryCount"] < -1:
        raise _invalid("startTask.maxTaskRetryCount", "it must be an integer of at least -1")
    task.setdefault("waitForSuccess", True)
    if not isinstance(task["waitForSuccess"], bool):
        raise _invalid("startTask.waitForSuccess", "it must be true or false")
    if task.get("environmentSettings") is None:
        task.pop("environmentSettings", None)
    else:
        _check_pairs(task["environmentSettings"], "startTask.environmentSettings", "name")
    identity = task.setdefault("userIdentity", {"autoUser": {"scope": "Pool", "elevationLevel": "NonAdmin"}})
    if not isinstance(identity, dict):
        raise _invalid("startTask.userIdentity", "it must be an object")
    auto_user = identity.get("autoUser")
    if isinstance(auto_user, dict):
        auto_user["scope"] = _enum(auto_user.get("scope", "Pool"), "scope", "startTask.userIdentity.autoUser.scope")
        auto_user["elevationLevel"] = _enum(auto_user.get("elevationLevel", "NonAdmin"), "elevationLevel",
                                            "startTask.userIdentity.autoUser.elevationLevel")
    elif not isinstance(identity.get("userName"), str):
        raise _invalid("startTask.userIdentity", "give autoUser or userName")
    return task


def _check_mounts(mounts: Any) -> None:
    if not isinstance(mounts, list):
        raise _invalid("mountConfiguration", "it must be a list")
    seen: set[str] = set()
    for index, mount in enumerate(mounts):
        where = f"mountConfiguration[{index}]"
        if not isinstance(mount, dict):
            raise _invalid(where, "it must be an object")
        kinds = [kind for kind in MOUNT_KINDS if mount.get(kind) is not None]
        if len(kinds) != 1:
            raise _invalid(where, "give exactly one file system to mount")
        if kinds[0] != "azureFileShareConfiguration":
            raise ServiceError(
                400, "MountTypeNotSupported",
                f"{where}.{kinds[0]}: the emulator can mount Azure File shares only (azureFileShareConfiguration);"
                " it has no Blob service for blobfuse and no NFS or CIFS servers.",
            )
        share = mount["azureFileShareConfiguration"]
        if not isinstance(share, dict):
            raise _invalid(f"{where}.azureFileShareConfiguration", "it must be an object")
        for name in ("accountName", "azureFileUrl", "accountKey", "relativeMountPath"):
            if not isinstance(share.get(name), str) or not share[name]:
                raise _missing(f"{where}.azureFileShareConfiguration.{name}")
        path = share["relativeMountPath"]
        parts = path.split("/")
        if path.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise _invalid(f"{where}.azureFileShareConfiguration.relativeMountPath",
                           "it must be a relative path without '.' or '..' segments")
        if path in seen:
            raise _invalid(f"{where}.azureFileShareConfiguration.relativeMountPath", f"{path} is mounted twice")
        seen.add(path)


def _check_user_accounts(users: Any) -> None:
    if not isinstance(users, list):
        raise _invalid("userAccounts", "it must be a list")
    for index, user in enumerate(users):
        if not isinstance(user, dict):
            raise _invalid(f"userAccounts[{index}]", "it must be an object")
        for name in ("name", "password"):
            if not isinstance(user.get(name), str) or not user[name]:
                raise _missing(f"userAccounts[{index}].{name}")
        if user.get("elevationLevel") is not None:
            user["elevationLevel"] = _enum(user["elevationLevel"], "elevationLevel",
                                           f"userAccounts[{index}].elevationLevel")


def _check_pairs(pairs: Any, where: str, key: str) -> None:
    if not isinstance(pairs, list) or not all(isinstance(item, dict) and isinstance(item.get(key), str)
                                              for item in pairs):
        raise _invalid(where, f"it must be a list of objects with a '{key}'")


def _duration(text: Any, where: str, least: timedelta | None, most: timedelta | None) -> timedelta:
    try:
        value = isodate.parse_duration(text) if isinstance(text, str) else None
    except (isodate.ISO8601Error, ValueError):
        value = None
    if not isinstance(value, timedelta):
        raise _invalid(where, f"{text!r} is not an ISO 8601 duration")
    if (least is not None and value < least) or (most is not None and value > most):
        raise _invalid(where, f"it must be between {least} and {most or 'unlimited'}")
    return value


def _enum(value: Any, kind: str, where: str) -> str:
    spelled = _ENUMS[kind].get(value.lower()) if isinstance(value, str) else None
    if spelled is None:
        raise _invalid(where, f"{value!r} is not one of {', '.join(_ENUMS[kind].values())}")
    return spelled


def _missing(path: str) -> ServiceError:
    return ServiceError(400, "MissingRequiredProperty", f"The property '{path}' is required for a pool.")


def _invalid(path: str, reason: str) -> ServiceError:
    return ServiceError(400, "InvalidPropertyValue", f"The value of the property '{path}' is invalid: {reason}.")


# ----------------------------------------------------------------------------------------------- helpers


def _writable_account(state: State, call: Call, db: sqlite3.Connection) -> Account:
    account = accounts.existing_account(state, call, db)
    if accounts.is_deleting(account):
        raise ServiceError(409, "AccountBeingDeleted", f"The account '{account.name}' is being deleted.")
    return account


def _existing_pool(db: sqlite3.Connection, account: Account, call: Call) -> Pool:
    pool = store.get_pool(db, account.name, call.params["pool"])
    if pool is None:
        raise ServiceError(404, "PoolNotFound", f"The specified pool '{call.params['pool']}' does not exist.")
    return pool


def _refuse_if_deleting(pool: Pool) -> None:
    if pool.deleting:
        raise ServiceError(409, "PoolBeingDeleted", f"The pool '{pool.name}' is being deleted.")


def _check_conditions(call: Call, pool: Pool | None) -> None:
    """`If-Match: <etag>|*` and `If-None-Match: *` (azure-core's MatchConditions) -> 412 when not met."""
    if_match = call.headers.get("if-match")
    if_none_match = call.headers.get("if-none-match")
    current = pool.etag if pool is not None else None
    failed = False
    if if_match is not None:
        wanted = {_bare_etag(tag) for tag in if_match.split(",")}
        failed = current is None or ("*" not in wanted and current not in wanted)
    if if_none_match is not None and current is not None:
        wanted = {_bare_etag(tag) for tag in if_none_match.split(",")}
        failed = failed or "*" in wanted or current in wanted
    if failed:
        raise ServiceError(412, "ConditionNotMet",
                           "The condition specified using HTTP conditional header(s) is not met.")


def _bare_etag(tag: str) -> str:
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    return tag.strip('"')


def _set_identity(pool: Pool, identity: Any) -> None:
    if identity is None:
        pool.runtime.pop("identity", None)
    else:
        pool.runtime["identity"] = json_object(identity)


def _answer(account: Account, pool: Pool) -> Response:
    tag = arm_etag(pool)
    return arm_json(arm_view(account, pool), 200, {"ETag": tag})

