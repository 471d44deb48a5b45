"""Pools and compute nodes as the data plane shows them: views of the `batch_pools` / `batch_nodes` rows that
Microsoft.Batch on ARM writes (ARM spelling, `properties` camelCase with PascalCase enums), rendered in the data
plane's spelling (`targetDedicatedNodes` at the top, lower-case enums, `nodeAgentSKUId`, `steady`).

Also the data-plane operations on pools: create (POST /pools), delete, resize, stopresize, enable/disable
autoscale, removenodes, node reboot, node counts. The writes go through the ARM part's pool logic (batch/pools.py:
the body converted to ARM `properties`, checked by the same rules, the same mutability) and wake the scheduler; the
pool and node steps (batch/nodes.py) carry them out.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from batchai_spec.emulator.batch import autoscale, service, store
from batchai_spec.emulator.batch import nodes as arm_nodes
from batchai_spec.emulator.batch import pools as arm_pools
from batchai_spec.emulator.batch.store import Node, Pool
from batchai_spec.emulator.batch.dataplane import odata
from batchai_spec.emulator.batch.dataplane.rows import integer, loads
from batchai_spec.emulator.batch.dataplane.wire import (
    ID_PATTERN, BatchError, Request, accepted, answer, check_conditions, conflict, created, entity_headers,
    invalid_property, missing_property, normalize_duration, not_found,
)
from batchai_spec.emulator.clock import iso8601, now

_NODE_STATES = ("creating", "idle", "leavingPool", "offline", "preempted", "rebooting", "reimaging", "running",
                "starting", "startTaskFailed", "unusable", "unknown", "upgradingOS", "waitingForStartTask")
# The states a node can be rebooted from (not while it is being created, started or removed).
_REBOOTABLE = {"idle", "running", "starttaskfailed", "unusable", "offline"}
_NODE_AGENT_VERSION = "1.12.9"
_RECENT_TASKS = 10


# --- ARM spelling <-> data-plane spelling ----------------------------------------------------------------------


def _lower_first(text: Any) -> Any:
    return text[:1].lower() + text[1:] if isinstance(text, str) and text else text


def _upper_first(text: Any) -> Any:
    return text[:1].upper() + text[1:] if isinstance(text, str) and text else text


def _identity_to_data(identity: dict[str, Any] | None) -> dict[str, Any]:
    identity = identity or {}
    if identity.get("userName") or identity.get("username"):
        return {"username": identity.get("userName") or identity.get("username")}
    auto = identity.get("autoUser") or {}
    return {"autoUser": {"scope": str(auto.get("scope") or "pool").lower(),
                         "elevationLevel": str(auto.get("elevationLevel") or "nonadmin").lower()}}


def _identity_to_arm(identity: dict[str, Any] | None) -> dict[str, Any] | None:
    if not identity:
        return None
    if identity.get("username"):
        return {"userName": identity["username"]}
    auto = identity.get("autoUser") or {}
    levels = {"admin": "Admin", "nonadmin": "NonAdmin"}
    return {"autoUser": {"scope": _upper_first(str(auto.get("scope") or "pool").lower()),
                         "elevationLevel": levels.get(str(auto.get("elevationLevel") or "nonadmin").lower(),
                                                      "NonAdmin")}}


def _start_task_to_data(task: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"commandLine": task.get("commandLine", "")}
    if task.get("containerSettings"):
        container = dict(task["containerSettings"])
        if "workingDirectory" in container:
            container["workingDirectory"] = _lower_first(container["workingDirectory"])
        out["containerSettings"] = container
    for name in ("resourceFiles", "environmentSettings"):
        if task.get(name):
            out[name] = task[name]
    out["userIdentity"] = _identity_to_data(task.get("userIdentity"))
    out["maxTaskRetryCount"] = task.get("maxTaskRetryCount", 0)
    out["waitForSuccess"] = task.get("waitForSuccess", True)
    return out


def _start_task_to_arm(task: dict[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in task.items() if key != "userIdentity"}
    identity = _identity_to_arm(task.get("userIdentity"))
    if identity:
        out["userIdentity"] = identity
    if isinstance(out.get("containerSettings"), dict) and "workingDirectory" in out["containerSettings"]:
        out["containerSettings"] = {**out["containerSettings"],
                                    "workingDirectory": _upper_first(out["containerSettings"]["workingDirectory"])}
    return out


def _vm_to_data(vm: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    image = dict(vm.get("imageReference") or {})
    if image and "virtualMachineImageId" not in image:
        image.setdefault("version", "latest")
    out["imageReference"] = image
    out["nodeAgentSKUId"] = vm.get("nodeAgentSkuId") or vm.get("nodeAgentSKUId")
    for name, value in vm.items():
        if name in ("imageReference", "nodeAgentSkuId", "nodeAgentSKUId"):
            continue
        if name == "containerConfiguration":
            value = {**value, "type": _lower_first(value.get("type") or "DockerCompatible")}
        elif name == "diskEncryptionConfiguration":
            value = {**value, "targets": [str(target).lower() for target in value.get("targets", [])]}
        elif name == "nodePlacementConfiguration":
            value = {**value, "policy": str(value.get("policy", "regional")).lower()}
        out[name] = value
    return out


def _vm_to_arm(vm: dict[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in vm.items() if key != "nodeAgentSKUId"}
    out["nodeAgentSkuId"] = vm.get("nodeAgentSKUId") or vm.get("nodeAgentSkuId")
    if isinstance(out.get("containerConfiguration"), dict):
        out["containerConfiguration"] = {**out["containerConfiguration"], "type": _upper_first(
            out["containerConfiguration"].get("type") or "dockerCompatible")}
    if isinstance(out.get("diskEncryptionConfiguration"), dict):
        names = {"osdisk": "OsDisk", "temporarydisk": "TemporaryDisk"}
        out["diskEncryptionConfiguration"] = {**out["diskEncryptionConfiguration"], "targets": [
            names.get(str(target).lower(), target) for target in out["diskEncryptionConfiguration"].get("targets", [])]}
    return out


def render_pool(request: Request, pool: Pool) -> dict[str, Any]:
    """A pool in the data plane's spelling, from what the ARM part keeps (its secrets left out)."""
    properties, status = arm_pools.public_properties(pool.properties), pool.status
    scale = properties.get("scaleSettings") or {}
    auto = scale.get("autoScale")
    dedicated, low_priority = arm_nodes.targets(pool, held=False)
    created_at = iso8601(pool.created_at)
    view: dict[str, Any] = {"id": pool.name}
    if properties.get("displayName"):
        view["displayName"] = properties["displayName"]
    view.update({
        "url": request.url("pools", pool.name), "eTag": pool.etag, "lastModified": iso8601(pool.modified_at),
        "creationTime": created_at, "state": "deleting" if pool.deleting else "active",
        "stateTransitionTime": status.get("provisioningStateTransitionTime") or created_at,
        "allocationState": str(status.get("allocationState") or "Steady").lower(),
        "allocationStateTransitionTime": status.get("allocationStateTransitionTime") or created_at,
        "vmSize": str(properties.get("vmSize", "")).lower(),
    })
    if not auto:
        view["resizeTimeout"] = normalize_duration((scale.get("fixedScale") or {}).get("resizeTimeout", "PT15M"),
                                                   "resizeTimeout")
    view.update(currentDedicatedNodes=status.get("currentDedicatedNodes", 0), targetDedicatedNodes=dedicated,
                currentLowPriorityNodes=status.get("currentLowPriorityNodes", 0), targetLowPriorityNodes=low_priority)
    errors = (status.get("resizeOperationStatus") or {}).get("errors")
    if errors:
        view["resizeErrors"] = errors
    view["enableAutoScale"] = bool(auto)
    if auto:
        view["autoScaleFormula"] = auto.get("formula", "")
        view["autoScaleEvaluationInterval"] = normalize_duration(auto.get("evaluationInterval", "PT15M"),
                                                                 "autoScaleEvaluationInterval")
        if status.get("autoScaleRun"):
            view["autoScaleRun"] = auto_scale_run(status["autoScaleRun"])
    view["enableInterNodeCommunication"] = properties.get("interNodeCommunication") == "Enabled"
    if properties.get("networkConfiguration"):
        view["networkConfiguration"] = properties["networkConfiguration"]
    if properties.get("startTask"):
        view["startTask"] = _start_task_to_data(properties["startTask"])
    # As recorded: certificate references show once set (even empty), application packages only when there are.
    if "certificates" in properties:
        view["certificateReferences"] = properties["certificates"]
    if properties.get("applicationPackages"):
        view["applicationPackageReferences"] = properties["applicationPackages"]
    if properties.get("userAccounts"):
        view["userAccounts"] = [_user_account_to_data(account) for account in properties["userAccounts"]]
    if properties.get("metadata"):
        view["metadata"] = properties["metadata"]
    # taskSlotsPerNode was maxTasksPerNode before api-version 2020-09-01.12.0.
    slots = "maxTasksPerNode" if request.query.get("api-version", "") < "2020-09-01" else "taskSlotsPerNode"
    view[slots] = properties.get("taskSlotsPerNode", 1)
    policy = properties.get("taskSchedulingPolicy") or {}
    view["taskSchedulingPolicy"] = {"nodeFillType": _upper_first(str(policy.get("nodeFillType", "Spread")).lower())}
    vm = (properties.get("deploymentConfiguration") or {}).get("virtualMachineConfiguration")
    if vm:
        view["virtualMachineConfiguration"] = _vm_to_data(vm)
    if properties.get("mountConfiguration"):
        view["mountConfiguration"] = properties["mountConfiguration"]
    if properties.get("targetNodeCommunicationMode"):
        view["targetNodeCommunicationMode"] = str(properties["targetNodeCommunicationMode"]).lower()
    return view


def auto_scale_run(run: dict[str, Any]) -> dict[str, Any]:
    """An AutoScaleRun from ARM's spelling (`evaluationTime`) to the data plane's (`timestamp`)."""
    return {"timestamp": run.get("evaluationTime"),
            **{key: value for key, value in run.items() if key in ("results", "error")}}


def _user_account_to_data(account: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": account.get("name"),
                           "elevationLevel": str(account.get("elevationLevel") or "NonAdmin").lower()}
    if account.get("linuxUserConfiguration"):
        out["linuxUserConfiguration"] = account["linuxUserConfiguration"]
    if account.get("windowsUserConfiguration"):
        out["windowsUserConfiguration"] = {key: _lower_first(value) if key == "loginMode" else value
                                           for key, value in account["windowsUserConfiguration"].items()}
    return out


def _pool_to_arm(body: dict[str, Any]) -> dict[str, Any]:
    """What POST /pools asks for, in ARM spelling (batch/pools.py checks and completes it)."""
    properties: dict[str, Any] = {}
    if body.get("displayName"):
        properties["displayName"] = body["displayName"]
    properties["vmSize"] = body["vmSize"]
    if body.get("virtualMachineConfiguration"):
        properties["deploymentConfiguration"] = {
            "virtualMachineConfiguration": _vm_to_arm(body["virtualMachineConfiguration"])}
    elif body.get("cloudServiceConfiguration"):  # retired: batch/pools.py refuses it
        properties["deploymentConfiguration"] = {"cloudServiceConfiguration": body["cloudServiceConfiguration"]}
    properties["scaleSettings"] = _scale_to_arm(body)
    properties["interNodeCommunication"] = "Enabled" if body.get("enableInterNodeCommunication") else "Disabled"
    for name in ("networkConfiguration", "metadata", "taskSlotsPerNode", "mountConfiguration",
                 "targetNodeCommunicationMode"):
        if body.get(name) is not None:
            properties[name] = body[name]
    if body.get("maxTasksPerNode") is not None:
        properties.setdefault("taskSlotsPerNode", body["maxTasksPerNode"])
    if body.get("taskSchedulingPolicy"):
        properties["taskSchedulingPolicy"] = {"nodeFillType": _upper_first(
            str(body["taskSchedulingPolicy"].get("nodeFillType", "spread")).lower())}
    if body.get("startTask"):
        properties["startTask"] = _start_task_to_arm(body["startTask"])
    if body.get("userAccounts"):
        properties["userAccounts"] = [
            {**account, "elevationLevel": {"admin": "Admin"}.get(str(account.get("elevationLevel", "")).lower(),
                                                                  "NonAdmin")}
            for account in body["userAccounts"]
        ]
    if body.get("certificateReferences"):
        properties["certificates"] = body["certificateReferences"]
    if body.get("applicationPackageReferences"):
        properties["applicationPackages"] = body["applicationPackageReferences"]
    return properties


def _scale_to_arm(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("enableAutoScale"):
        if not body.get("autoScaleFormula"):
            raise missing_property("autoScaleFormula")
        return {"autoScale": {"formula": body["autoScaleFormula"], "evaluationInterval": normalize_duration(
            body.get("autoScaleEvaluationInterval", "PT15M"), "autoScaleEvaluationInterval")}}
    return {"fixedScale": {
        "targetDedicatedNodes": integer(body.get("targetDedicatedNodes", 0), "targetDedicatedNodes", 0),
        "targetLowPriorityNodes": integer(body.get("targetLowPriorityNodes", 0), "targetLowPriorityNodes", 0),
        "resizeTimeout": normalize_duration(body.get("resizeTimeout", "PT15M"), "resizeTimeout"),
    }}


# --- pools -----------------------------------------------------------------------------------------------------


def list_pools(request: Request) -> Response:
    pools = store.list_pools(request.state.connection(), request.account)
    return odata.page(request, [render_pool(request, pool) for pool in pools], "pools")


def _pool(request: Request) -> Pool:
    pool = store.get_pool(request.state.connection(), request.account, request.params["pool"])
    if pool is None:
        raise not_found("PoolNotFound", "pool")
    check_conditions(request.call, pool.etag, pool.modified_at)
    return pool


def get_pool(request: Request) -> Response:
    pool = _pool(request)
    return request.json(odata.select(render_pool(request, pool), request), "pools/@Element",
                        headers=entity_headers(pool.etag, pool.modified_at))


def pool_exists(request: Request) -> Response:
    pool = _pool(request)
    return answer(200, b"", entity_headers(pool.etag, pool.modified_at))


def create_pool(request: Request) -> Response:
    """Stored like an ARM PUT: the body in ARM spelling, checked and completed by the ARM part's rules."""
    body = request.body()
    pool_id = body.get("id")
    if not pool_id:
        raise missing_property("id")
    if not isinstance(pool_id, str) or not ID_PATTERN.match(pool_id):
        raise invalid_property("id", pool_id, "The id may hold letters, digits, hyphens and underscores, at most 64.")
    if not body.get("vmSize"):
        raise missing_property("vmSize")
    if body.get("enableAutoScale") and (body.get("targetDedicatedNodes") or body.get("targetLowPriorityNodes")):
        raise invalid_property("targetDedicatedNodes", body.get("targetDedicatedNodes"),
                               "A pool with auto-scaling enabled takes no target node counts.")
    _check_application_packages(body)
    properties = arm_pools.normalize_properties(_pool_to_arm(body))
    moment = now()
    with request.state.transaction() as db:
        if store.get_pool(db, request.account, pool_id) is not None:
            raise conflict("PoolExists", "The specified pool already exists.")
        pool = arm_pools.new_pool(db, request.account, pool_id, properties, moment)
    service.wake(request.state)
    return created(request.url("pools", pool_id), pool.etag, pool.modified_at)


def _change_pool(request: Request, change, status_code: int = 202) -> Response:
    """`change(pool, db, moment)` on the pool (ARM's Pool object) in a transaction; saved, then the scheduler woken."""
    moment = now()
    with request.state.transaction() as db:
        pool = _pool(request)  # read in the transaction: the thread's one connection
        if pool.deleting:
            raise conflict("PoolBeingDeleted", "The specified pool has been marked for deletion and is being"
                           " reclaimed.")
        change(pool, db, moment)
        store.save_pool(db, pool)
    service.wake(request.state)
    return accepted(request.url("pools", pool.name), status_code, pool.etag, pool.modified_at)


def _with_scale(pool, db, moment: float, scale: dict[str, Any]) -> None:
    properties = {**pool.properties, "scaleSettings": scale}
    arm_pools.change_properties(db, pool, arm_pools.normalize_properties(properties), moment)


def update_pool(request: Request) -> Response:
    """PATCH: the properties sent replace theirs (startTask, metadata, application packages, certificates, node
    communication mode); 200 with an empty body."""
    body = request.body()
    changes = _updatable_to_arm(body, replace=False)
    return _change_pool(request, lambda pool, db, moment: _with_properties(pool, db, moment, changes), 200)


def replace_pool_properties(request: Request) -> Response:
    """POST updateproperties: the same properties replaced whole (a start task left out is removed); 204."""
    body = request.body()
    for name in ("applicationPackageReferences", "metadata"):  # (certificateReferences: until 2024-07-01.20.0)
        if body.get(name) is None:
            raise missing_property(name)
    changes = _updatable_to_arm(body, replace=True)
    return _change_pool(request, lambda pool, db, moment: _with_properties(pool, db, moment, changes), 204)


def _check_application_packages(body: dict[str, Any]) -> None:
    """The emulator's accounts have no applications: every package reference is one that does not exist."""
    references = body.get("applicationPackageReferences") or []
    if references:
        raise BatchError(409, "InvalidApplicationPackageReferences", "One or more of the specified application"
                         " package references are invalid.",
                         [(str(reference.get("applicationId")), "The specified application package does not exist.")
                          for reference in references if isinstance(reference, dict)])


def _updatable_to_arm(body: dict[str, Any], replace: bool) -> dict[str, Any]:
    """The data plane's updatable pool properties in ARM spelling; with `replace`, None for the ones left out."""
    _check_application_packages(body)
    names = {"startTask": "startTask", "metadata": "metadata", "certificateReferences": "certificates",
             "applicationPackageReferences": "applicationPackages",
             "targetNodeCommunicationMode": "targetNodeCommunicationMode"}
    changes: dict[str, Any] = {}
    for data_name, arm_name in names.items():
        value = body.get(data_name)
        if value is None:
            if replace:
                changes[arm_name] = None
            continue
        changes[arm_name] = _start_task_to_arm(value) if data_name == "startTask" else value
    return changes


def _with_properties(pool, db, moment: float, changes: dict[str, Any]) -> None:
    properties = {**pool.properties, **{name: value for name, value in changes.items() if value is not None}}
    for name in [name for name, value in changes.items() if value is None]:
        properties.pop(name, None)
    arm_pools.change_properties(db, pool, arm_pools.normalize_properties(properties), moment)


def evaluate_auto_scale(request: Request) -> Response:
    """The formula evaluated against the pool now, changing nothing (the ARM part's evaluator)."""
    formula = request.body().get("autoScaleFormula")
    if not formula:
        raise missing_property("autoScaleFormula")
    db = request.state.connection()
    pool = _pool(request)
    if not autoscale.is_auto_scale(pool):
        raise BatchError(409, "AutoScalingNotEnabled", "Auto-scaling is not enabled on the specified pool.")
    run = autoscale.evaluate(db, pool, now(), formula)
    return request.json(auto_scale_run(run), "Microsoft.Azure.Batch.Protocol.Entities.AutoScaleRun")


def delete_pool(request: Request) -> Response:
    """202 and `deleting`: the pool's nodes leave (their tasks are stopped), then the ARM part removes it."""
    _change_pool(request, lambda pool, db, moment: arm_pools.mark_deleting(db, pool, moment))
    return answer(202)


def _require_steady(pool) -> None:
    if str(pool.status.get("allocationState", "Steady")).lower() != "steady":
        raise conflict("PoolBeingResized", "The specified pool is being resized")


def _fixed_scale(pool) -> dict[str, Any]:
    scale = pool.properties.get("scaleSettings") or {}
    if "autoScale" in scale:
        raise conflict("InvalidAutoScalingSettings",
                       "The specified operation is not valid on a pool with auto-scaling enabled.")
    return dict(scale.get("fixedScale") or {})


def resize_pool(request: Request) -> Response:
    body = request.body()

    def resize(pool, db, moment):
        _require_steady(pool)
        fixed = _fixed_scale(pool)
        fixed["targetDedicatedNodes"] = integer(body.get("targetDedicatedNodes", 0), "targetDedicatedNodes", 0)
        fixed["targetLowPriorityNodes"] = integer(body.get("targetLowPriorityNodes", 0), "targetLowPriorityNodes",
                                                  0)
        fixed["resizeTimeout"] = normalize_duration(body.get("resizeTimeout", "PT15M"), "resizeTimeout")
        if body.get("nodeDeallocationOption"):
            fixed["nodeDeallocationOption"] = body["nodeDeallocationOption"]
        _with_scale(pool, db, moment, {"fixedScale": fixed})

    return _change_pool(request, resize)


def stop_resize(request: Request) -> Response:
    return _change_pool(request, lambda pool, db, moment: arm_pools.stop_resize(db, pool, moment))


def enable_auto_scale(request: Request) -> Response:
    body = request.body()

    def enable(pool, db, moment):
        current = (pool.properties.get("scaleSettings") or {}).get("autoScale") or {}
        formula = body.get("autoScaleFormula") or current.get("formula")
        if not formula:
            raise missing_property("autoScaleFormula")
        interval = body.get("autoScaleEvaluationInterval") or current.get("evaluationInterval") or "PT15M"
        _with_scale(pool, db, moment, {"autoScale": {
            "formula": formula, "evaluationInterval": normalize_duration(interval, "autoScaleEvaluationInterval")}})

    return _change_pool(request, enable, 200)


def disable_auto_scale(request: Request) -> Response:
    return _change_pool(request, lambda pool, db, moment: arm_pools.disable_auto_scale(db, pool, moment), 200)


def remove_nodes(request: Request) -> Response:
    """The named nodes leave (those running a task as `nodeDeallocationOption` says) and the targets shrink by as
    many, so that no other node goes."""
    body = request.body()
    wanted = body.get("nodeList")
    if not isinstance(wanted, list) or not wanted:
        raise missing_property("nodeList")
    if len(wanted) > 100:
        raise invalid_property("nodeList", len(wanted), "At most 100 nodes can be removed at a time.")
    option = str(body.get("nodeDeallocationOption") or "requeue").lower()
    if option not in ("requeue", "terminate", "taskcompletion", "retaineddata"):
        raise invalid_property("nodeDeallocationOption", option, "The value must be requeue, terminate,"
                               " taskcompletion or retaineddata.")
    context = service.context(request.state)
    leaving_s = context.config.delays.node_leaving_s if context is not None else 0.0

    def remove(pool, db, moment):
        _require_steady(pool)
        fixed = _fixed_scale(pool)
        by_id = {node.node_id.lower(): node for node in store.list_nodes(db, pool.account, pool.name)}
        leaving = []
        for node_id in wanted:
            node = by_id.get(str(node_id).lower())
            if node is None:
                raise not_found("NodeNotFound", "node")
            leaving.append(node)
        for node in leaving:
            node.runtime["schedulingState"] = "disabled"
            if node.task_key is not None and option in ("taskcompletion", "retaineddata"):
                node.runtime["leaveAfterTask"] = True
            elif node.state != "leavingpool":
                node.state, node.since, node.due_at = "leavingpool", moment, moment + leaving_s
            store.save_node(db, node)
        dedicated = sum(1 for node in leaving if node.runtime.get("isDedicated", True))
        fixed["targetDedicatedNodes"] = max(0, fixed.get("targetDedicatedNodes", 0) - dedicated)
        fixed["targetLowPriorityNodes"] = max(0, fixed.get("targetLowPriorityNodes", 0) - (len(leaving) - dedicated))
        fixed["nodeDeallocationOption"] = option
        if body.get("resizeTimeout"):
            fixed["resizeTimeout"] = normalize_duration(body["resizeTimeout"], "resizeTimeout")
        _with_scale(pool, db, moment, {"fixedScale": fixed})

    return _change_pool(request, remove)


# --- nodes -----------------------------------------------------------------------------------------------------


def render_node(request: Request, pool: dict[str, Any], node: Node, tasks: list) -> dict[str, Any]:
    """A node in the data plane's spelling; `pool` its pool's view, `tasks` the task rows that ran on it."""
    runtime = node.runtime
    since = iso8601(node.since)
    statuses = [loads(task["status"]) for task in tasks]
    running = [task for task, status in zip(tasks, statuses) if status.get("state") in ("preparing", "running")]
    finished = [status for status in statuses if status.get("state") == "completed"]
    view: dict[str, Any] = {
        "id": node.node_id, "url": request.url("pools", pool["id"], "nodes", node.node_id),
        "state": node.state.lower(), "schedulingState": runtime.get("schedulingState", "enabled"),
        "stateTransitionTime": since, "lastBootTime": runtime.get("lastBootTime", since),
        "allocationTime": runtime.get("allocationTime", since), "ipAddress": runtime.get("ip", ""),
        "affinityId": f"TVM:{node.node_id}", "vmSize": pool.get("vmSize", ""),
        "totalTasksRun": len(finished) + len(running),
        "totalTasksSucceeded": sum(1 for status in finished
                                   if status.get("executionInfo", {}).get("result") == "success"),
        "runningTasksCount": len(running),
        "runningTaskSlotsCount": sum(loads(task["body"]).get("requiredSlots", 1) for task in running),
    }
    recent = sorted(zip(tasks, statuses), key=lambda pair: pair[0]["seq"], reverse=True)[:_RECENT_TASKS]
    if recent:
        view["recentTasks"] = [
            {"taskUrl": request.url("jobs", task["job_id"], "tasks", task["task_id"]), "jobId": task["job_id"],
             "taskId": task["task_id"], "taskState": status.get("state", "active"),
             "executionInfo": status.get("executionInfo", {})}
            for task, status in recent
        ]
    if runtime.get("startTask"):  # the start task the node ran (the pool's may have changed since)
        view["startTask"] = _start_task_to_data(arm_pools.public_properties({"startTask": runtime["startTask"]})[
            "startTask"])
    elif "startTask" in pool:
        view["startTask"] = pool["startTask"]
    if runtime.get("startTaskInfo"):
        view["startTaskInfo"] = runtime["startTaskInfo"]
    view["isDedicated"] = runtime.get("isDedicated", True)
    if runtime.get("errors"):
        view["errors"] = runtime["errors"]
    view["nodeAgentInfo"] = {"version": _NODE_AGENT_VERSION, "lastUpdateTime": view["lastBootTime"]}
    image = pool.get("virtualMachineConfiguration", {}).get("imageReference")
    if image:
        view["virtualMachineInfo"] = {"imageReference": {**image, "exactVersion": image.get("version", "latest")}}
    return view


def _nodes(request: Request) -> tuple[Pool, dict[str, Any], dict[str, list]]:
    """The pool, its view, and the task rows that ran on each node (by lower-cased node id)."""
    db = request.state.connection()
    pool = _pool(request)
    tasks: dict[str, list] = {}
    for task in db.execute("SELECT * FROM batch_tasks WHERE account = ? AND json_extract(runtime, '$.node') IS NOT"
                           " NULL ORDER BY seq", (request.account,)):
        tasks.setdefault(str(loads(task["runtime"]).get("node")).lower(), []).append(task)
    return pool, render_pool(request, pool), tasks


def list_nodes(request: Request) -> Response:
    pool, view, tasks = _nodes(request)
    nodes = store.list_nodes(request.state.connection(), request.account, pool.name)
    return odata.page(request, [render_node(request, view, node, tasks.get(node.node_id.lower(), []))
                                for node in nodes], "nodes")


def get_node(request: Request) -> Response:
    pool, view, tasks = _nodes(request)
    node = store.get_node(request.state.connection(), request.account, pool.name, request.params["node"])
    if node is None:
        raise not_found("NodeNotFound", "node")
    rendered = render_node(request, view, node, tasks.get(node.node_id.lower(), []))
    return request.json(odata.select(rendered, request), "nodes/@Element")


def reboot_node(request: Request) -> Response:
    """202; the node boots again (`starting`: mounts and start task anew, then `idle`), and a task that ran on it
    is requeued or ended by the task runner as the pool's nodeDeallocationOption says."""
    option = str(request.body().get("nodeRebootOption") or "requeue").lower()
    if option not in ("requeue", "terminate", "taskcompletion", "retaineddata"):
        raise invalid_property("nodeRebootOption", option, "The value must be requeue, terminate, taskcompletion"
                               " or retaineddata.")
    context = service.context(request.state)
    boot_s = context.config.delays.node_preparation_s if context is not None else 0.0
    moment = now()
    with request.state.transaction() as db:
        pool = _pool(request)
        node = store.get_node(db, request.account, pool.name, request.params["node"])
        if node is None:
            raise not_found("NodeNotFound", "node")
        if str(node.state).lower() not in _REBOOTABLE:
            raise conflict("OperationNotValidOnNode", "The specified operation is not valid on the node.")
        node.state, node.since, node.due_at = "starting", moment, moment + boot_s
        node.runtime.pop("errors", None)
        node.runtime["rebootOption"] = option
        store.save_node(db, node)
    service.wake(request.state)
    return accepted(request.url("pools", pool.name, "nodes", node.node_id, "reboot"))


def node_counts(request: Request) -> Response:
    """Per pool (by id), dedicated and low-priority nodes counted by state."""
    db = request.state.connection()
    spelled = {state.lower(): state for state in _NODE_STATES}
    items = []
    for pool in sorted(store.list_pools(db, request.account), key=lambda pool: pool.name):
        counts = {kind: {**dict.fromkeys(_NODE_STATES, 0), "total": 0} for kind in ("dedicated", "lowPriority")}
        for node in store.list_nodes(db, request.account, pool.name):
            kind = counts["dedicated" if node.runtime.get("isDedicated", True) else "lowPriority"]
            state = spelled.get(node.state.lower())
            if state is not None:
                kind[state] += 1
            kind["total"] += 1
        items.append({"poolId": pool.name, **counts})
    return odata.page(request, items, "poolnodecounts")
