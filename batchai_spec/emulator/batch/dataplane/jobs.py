"""Jobs: add, get, list, PATCH (merge), PUT (replace), delete, terminate, disable, enable, task counts, job
preparation and release task status.

`batch_jobs.body` holds the job as the service answers it minus the server-owned fields: the request normalised
with the service's defaults (durations rewritten, enums lower-cased, unlimited constraints filled in);
`batch_jobs.status` the server-owned fields (see the package docstring for who writes what).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from batchai_spec.emulator.batch import service
from batchai_spec.emulator.batch.dataplane import odata
from batchai_spec.emulator.batch.dataplane.rows import (
    RETENTION_DEFAULT, boolean, choice, dumps, integer, job_row, loads, refuse_job_state, user_identity,
)
from batchai_spec.emulator.batch.dataplane.wire import (
    ID_PATTERN, UNLIMITED, BatchError, Request, accepted, answer, check_conditions, conflict, created,
    entity_headers, invalid_property, missing_property, normalize_duration,
)
from batchai_spec.emulator.batch.store import data_plane_etag, next_seq
from batchai_spec.emulator.clock import iso8601, now

# What PATCH may change (and PUT replaces, defaults for what it leaves out).
UPDATABLE = ("priority", "maxParallelTasks", "allowTaskPreemption", "constraints", "poolInfo", "metadata",
             "onAllTasksComplete")
JOB_DEFAULT_PREPARATION_ID = "jobpreparation"
JOB_DEFAULT_RELEASE_ID = "jobrelease"


# --- normalising what clients send -----------------------------------------------------------------------------


def job_constraints(value: Any) -> dict[str, Any]:
    value = object_value(value, "constraints")
    return {
        "maxWallClockTime": normalize_duration(value.get("maxWallClockTime", UNLIMITED), "maxWallClockTime"),
        "maxTaskRetryCount": integer(value.get("maxTaskRetryCount", 0), "maxTaskRetryCount", -1),
    }


def task_constraints(value: Any, default_retries: int) -> dict[str, Any]:
    value = object_value(value, "constraints")
    return {
        "maxWallClockTime": normalize_duration(value.get("maxWallClockTime", UNLIMITED), "maxWallClockTime"),
        "retentionTime": normalize_duration(value.get("retentionTime", RETENTION_DEFAULT), "retentionTime"),
        "maxTaskRetryCount": integer(value.get("maxTaskRetryCount", default_retries), "maxTaskRetryCount", -1),
    }


def object_value(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_property(name, value, f"{name} must be an object.")
    return value


def _command_line(task: dict[str, Any], name: str) -> str:
    command = task.get("commandLine")
    if not command:
        raise missing_property(f"{name}.commandLine")
    return command


def copy_fields(source: dict[str, Any], target: dict[str, Any], *names: str) -> None:
    for name in names:
        if source.get(name) is not None:
            target[name] = source[name]


def copy_state_fields(status: dict[str, Any], entity: dict[str, Any]) -> None:
    """The state fields a job's or a task's `status` holds, in the order the service lists them."""
    for name in ("state", "stateTransitionTime", "previousState", "previousStateTransitionTime"):
        if name in status:
            entity[name] = status[name]


def job_manager_task(value: Any, job_retries: int) -> dict[str, Any]:
    task = object_value(value, "jobManagerTask")
    if not task.get("id"):
        raise missing_property("jobManagerTask.id")
    out: dict[str, Any] = {"id": task["id"]}
    copy_fields(task, out, "displayName")
    out["commandLine"] = _command_line(task, "jobManagerTask")
    copy_fields(task, out, "containerSettings", "resourceFiles", "outputFiles", "environmentSettings")
    out["constraints"] = task_constraints(task.get("constraints"), job_retries)
    out["requiredSlots"] = integer(task.get("requiredSlots", 1), "requiredSlots", 1)
    out["userIdentity"] = user_identity(task.get("userIdentity"))
    out["runExclusive"] = boolean(task.get("runExclusive", True), "runExclusive")
    copy_fields(task, out, "applicationPackageReferences", "authenticationTokenSettings")
    out["allowLowPriorityNode"] = boolean(task.get("allowLowPriorityNode", True), "allowLowPriorityNode")
    out["killJobOnCompletion"] = boolean(task.get("killJobOnCompletion", True), "killJobOnCompletion")
    return out


def _job_node_task(value: Any, name: str, default_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A job preparation or release task (`name`) as given, and the start of it as stored: its id (`default_id`
    when it has none), commandLine and the fields kept as given, in the service's order."""
    task = object_value(value, name)
    out: dict[str, Any] = {"id": task.get("id") or default_id, "commandLine": _command_line(task, name)}
    copy_fields(task, out, "containerSettings", "resourceFiles", "environmentSettings")
    return task, out


def job_preparation_task(value: Any) -> dict[str, Any]:
    task, out = _job_node_task(value, "jobPreparationTask", JOB_DEFAULT_PREPARATION_ID)
    out["constraints"] = task_constraints(task.get("constraints"), 0)
    out["userIdentity"] = user_identity(task.get("userIdentity"))
    out["waitForSuccess"] = boolean(task.get("waitForSuccess", True), "waitForSuccess")
    out["rerunOnNodeRebootAfterSuccess"] = boolean(
        task.get("rerunOnNodeRebootAfterSuccess", True), "rerunOnNodeRebootAfterSuccess")
    return out


def job_release_task(value: Any) -> dict[str, Any]:
    task, out = _job_node_task(value, "jobReleaseTask", JOB_DEFAULT_RELEASE_ID)
    out["maxWallClockTime"] = normalize_duration(task.get("maxWallClockTime", "PT15M"), "maxWallClockTime")
    out["retentionTime"] = normalize_duration(task.get("retentionTime", RETENTION_DEFAULT), "retentionTime")
    out["userIdentity"] = user_identity(task.get("userIdentity"))
    return out


def pool_info(value: Any) -> dict[str, Any]:
    if value is None:
        raise missing_property("poolInfo")
    info = object_value(value, "poolInfo")
    if not info.get("poolId") and not info.get("autoPoolSpecification"):
        raise invalid_property("poolInfo", value, "poolInfo needs a poolId or an autoPoolSpecification.")
    return info


def _updatable(name: str, value: Any) -> Any:
    if name == "priority":
        return integer(value, name, -1000, 1000)
    if name == "maxParallelTasks":
        value = integer(value, name, -1)
        if value == 0:
            raise invalid_property(name, value, "maxParallelTasks must be -1 or greater than 0.")
        return value
    if name == "allowTaskPreemption":
        return boolean(value, name)
    if name == "constraints":
        return job_constraints(value)
    if name == "poolInfo":
        return pool_info(value)
    if name == "metadata":
        if not isinstance(value, list):
            raise invalid_property(name, value, "metadata must be a list of name/value pairs.")
        return value
    if name == "onAllTasksComplete":
        return choice(value, name, ("noaction", "terminatejob"))
    raise AssertionError(name)


_DEFAULTS = {"priority": 0, "maxParallelTasks": -1, "allowTaskPreemption": False, "constraints": None,
             "onAllTasksComplete": "noaction"}


def job_spec(body: dict[str, Any]) -> dict[str, Any]:
    """A new job as stored: every property in the order the service answers it, defaults filled in."""
    job_id = body.get("id")
    if not job_id:
        raise missing_property("id")
    if not isinstance(job_id, str) or not ID_PATTERN.match(job_id):
        raise invalid_property("id", job_id, "The id may hold letters, digits, hyphens and underscores, at most 64.")
    info = pool_info(body.get("poolInfo"))
    constraints = job_constraints(body.get("constraints"))
    spec: dict[str, Any] = {"id": job_id}
    copy_fields(body, spec, "displayName")
    spec["priority"] = _updatable("priority", body.get("priority", 0))
    spec["maxParallelTasks"] = _updatable("maxParallelTasks", body.get("maxParallelTasks", -1))
    spec["usesTaskDependencies"] = boolean(body.get("usesTaskDependencies", False), "usesTaskDependencies")
    spec["allowTaskPreemption"] = _updatable("allowTaskPreemption", body.get("allowTaskPreemption", False))
    spec["constraints"] = constraints
    if body.get("jobManagerTask") is not None:
        spec["jobManagerTask"] = job_manager_task(body["jobManagerTask"], constraints["maxTaskRetryCount"])
    if body.get("jobPreparationTask") is not None:
        spec["jobPreparationTask"] = job_preparation_task(body["jobPreparationTask"])
    if body.get("jobReleaseTask") is not None:
        if "jobPreparationTask" not in spec:
            raise invalid_property("jobReleaseTask", body["jobReleaseTask"],
                                   "A job release task needs a job preparation task.")
        spec["jobReleaseTask"] = job_release_task(body["jobReleaseTask"])
    copy_fields(body, spec, "commonEnvironmentSettings")
    spec["poolInfo"] = info
    if body.get("metadata") is not None:
        spec["metadata"] = _updatable("metadata", body["metadata"])
    spec["onAllTasksComplete"] = _updatable("onAllTasksComplete", body.get("onAllTasksComplete", "noaction"))
    spec["onTaskFailure"] = choice(body.get("onTaskFailure", "noaction"), "onTaskFailure",
                                   ("noaction", "performexitoptionsjobaction"))
    copy_fields(body, spec, "networkConfiguration")
    return spec


# --- rendering -------------------------------------------------------------------------------------------------

_LEADING = ("id", "displayName")
_BODY_ORDER = ("priority", "maxParallelTasks", "usesTaskDependencies", "allowTaskPreemption", "constraints",
               "jobManagerTask", "jobPreparationTask", "jobReleaseTask", "commonEnvironmentSettings", "poolInfo",
               "metadata")


def render(request: Request, row) -> dict[str, Any]:
    spec, status = loads(row["body"]), loads(row["status"])
    job: dict[str, Any] = {name: spec[name] for name in _LEADING if name in spec}
    job["url"] = request.url("jobs", spec["id"])
    job["eTag"] = row["etag"]
    job["lastModified"] = iso8601(row["modified_at"])
    job["creationTime"] = iso8601(row["created_at"])
    copy_state_fields(status, job)
    job.update((name, spec[name]) for name in _BODY_ORDER if name in spec)
    if "executionInfo" in status:
        job["executionInfo"] = status["executionInfo"]
    job.update((name, spec[name]) for name in ("onAllTasksComplete", "onTaskFailure", "networkConfiguration")
               if name in spec)
    if "stats" in status:
        job["stats"] = status["stats"]
    return job


# --- handlers --------------------------------------------------------------------------------------------------


def create_job(request: Request) -> Response:
    spec = job_spec(request.body())
    moment = now()
    etag = data_plane_etag()
    status = {"state": "active", "stateTransitionTime": iso8601(moment),
              "executionInfo": {"startTime": iso8601(moment), "poolId": spec["poolInfo"].get("poolId")}}
    if not status["executionInfo"]["poolId"]:
        del status["executionInfo"]["poolId"]
    with request.state.transaction() as db:
        if db.execute("SELECT 1 FROM batch_jobs WHERE account = ? AND job_id = ?",
                      (request.account, spec["id"])).fetchone():
            raise conflict("JobExists", "The specified job already exists.")
        db.execute(
            "INSERT INTO batch_jobs (account, job_id, body, status, runtime, etag, created_at, modified_at, seq)"
            " VALUES (?, ?, ?, ?, '{}', ?, ?, ?, ?)",
            (request.account, spec["id"], dumps(spec), dumps(status), etag, moment, moment,
             next_seq(db, "batch_jobs")),
        )
        if "jobManagerTask" in spec:
            _add_job_manager_task(db, request.account, spec, moment)
    service.wake(request.state)
    return created(request.url("jobs", spec["id"]), etag, moment)


def _add_job_manager_task(db, account: str, spec: dict[str, Any], moment: float) -> None:
    """The job manager task is a task of the job (Batch lists it with the others, and a job whose only task it is
    is not complete while it is not). Its own settings ride in the task body under `jobManager` (not shown)."""
    manager = spec["jobManagerTask"]
    task = {name: manager[name] for name in ("id", "displayName", "commandLine", "containerSettings",
                                             "resourceFiles", "outputFiles", "environmentSettings", "userIdentity",
                                             "authenticationTokenSettings", "constraints", "requiredSlots",
                                             "applicationPackageReferences") if name in manager}
    task["jobManager"] = {name: manager[name] for name in ("runExclusive", "allowLowPriorityNode",
                                                           "killJobOnCompletion")}
    status = {"state": "active", "stateTransitionTime": iso8601(moment),
              "executionInfo": {"retryCount": 0, "requeueCount": 0}}
    db.execute(
        "INSERT INTO batch_tasks (account, job_id, task_id, body, status, runtime, etag, created_at, modified_at, seq)"
        " VALUES (?, ?, ?, ?, ?, '{}', ?, ?, ?, ?)",
        (account, spec["id"], task["id"], dumps(task), dumps(status), data_plane_etag(), moment, moment,
         next_seq(db, "batch_tasks")),
    )


def get_job(request: Request) -> Response:
    row = job_row(request.state.connection(), request.account, request.params["job"])
    check_conditions(request.call, row["etag"], row["modified_at"])
    return request.json(odata.select(render(request, row), request), "jobs/@Element",
                        headers=entity_headers(row["etag"], row["modified_at"]))


def list_jobs(request: Request) -> Response:
    rows = request.state.connection().execute(
        "SELECT * FROM batch_jobs WHERE account = ? ORDER BY seq", (request.account,)).fetchall()
    return odata.page(request, [render(request, row) for row in rows], "jobs")


def update_job(request: Request) -> Response:
    """PATCH merges the properties sent (an object it names is replaced whole, as recorded for constraints)."""
    return _change(request, replace=False)


def replace_job(request: Request) -> Response:
    """PUT replaces every updatable property; what the request leaves out goes back to its default."""
    return _change(request, replace=True)


def _change(request: Request, replace: bool) -> Response:
    body = request.body()
    if replace and body.get("poolInfo") is None:
        raise missing_property("poolInfo")
    moment = now()
    with request.state.transaction() as db:
        row = job_row(db, request.account, request.params["job"])
        check_conditions(request.call, row["etag"], row["modified_at"])
        status = loads(row["status"])
        refuse_job_state(status.get("state", "active"))
        spec = loads(row["body"])
        for name in UPDATABLE:
            if name in body and body[name] is not None:
                spec[name] = _updatable(name, body[name])
            elif replace:
                if name == "metadata":
                    spec.pop(name, None)
                elif name in _DEFAULTS:
                    spec[name] = job_constraints(None) if name == "constraints" else _DEFAULTS[name]
        spec = {name: spec[name] for name in _ordered_names(spec)}
        if spec["poolInfo"].get("poolId"):
            status.setdefault("executionInfo", {})["poolId"] = spec["poolInfo"]["poolId"]
        etag = data_plane_etag()
        db.execute("UPDATE batch_jobs SET body = ?, status = ?, etag = ?, modified_at = ? WHERE account = ?"
                   " AND job_id = ?", (dumps(spec), dumps(status), etag, moment, request.account, row["job_id"]))
    service.wake(request.state)
    return answer(200, b"", {**entity_headers(etag, moment), "DataServiceId": request.url("jobs", spec["id"])})


def _ordered_names(spec: dict[str, Any]) -> list[str]:
    order = ("id", "displayName") + _BODY_ORDER + ("onAllTasksComplete", "onTaskFailure", "networkConfiguration")
    return [name for name in order if name in spec] + [name for name in spec if name not in order]


def _transition(request: Request, to: str, allowed: tuple[str, ...], runtime_update: dict[str, Any] | None = None,
                terminate_reason: str | None = None, errors: dict[str, tuple[str, str]] | None = None) -> Response:
    """Write the state a request asks for; the task runner finishes it."""
    moment = now()
    with request.state.transaction() as db:
        row = job_row(db, request.account, request.params["job"])
        check_conditions(request.call, row["etag"], row["modified_at"])
        status = loads(row["status"])
        current = status.get("state", "active")
        refuse_job_state(current, allowed=allowed, errors=errors)
        status.update(previousState=current, previousStateTransitionTime=status.get("stateTransitionTime"),
                      state=to, stateTransitionTime=iso8601(moment))
        if terminate_reason is not None:
            status.setdefault("executionInfo", {})["terminateReason"] = terminate_reason
        runtime = {**loads(row["runtime"]), **(runtime_update or {})}
        etag = data_plane_etag()
        db.execute("UPDATE batch_jobs SET status = ?, runtime = ?, etag = ?, modified_at = ? WHERE account = ?"
                   " AND job_id = ?", (dumps(status), dumps(runtime), etag, moment, request.account, row["job_id"]))
    service.wake(request.state)
    return accepted(request.url("jobs", row["job_id"]), etag=etag, modified_at=moment)


def delete_job(request: Request) -> Response:
    """202 (no entity headers, as recorded) and `deleting`; the job goes once none of its tasks runs."""
    _transition(request, "deleting", ("active", "disabling", "disabled", "enabling", "terminating", "completed"))
    return answer(202)


def terminate_job(request: Request) -> Response:
    reason = request.body().get("terminateReason") or "UserTerminate"
    return _transition(request, "terminating", ("active", "disabling", "disabled", "enabling"),
                       terminate_reason=reason)


def disable_job(request: Request) -> Response:
    body = request.body()
    if not body.get("disableTasks"):
        raise missing_property("disableTasks")
    option = choice(body["disableTasks"], "disableTasks", ("requeue", "terminate", "wait"))
    disabled = ("JobDisabled", "The specified job is disabled.")
    return _transition(request, "disabling", ("active",), {"disableTasks": option},
                       errors={"disabling": disabled, "disabled": disabled})


def enable_job(request: Request) -> Response:
    invalid = ("OperationInvalidForCurrentState", "The specified operation is not valid for the current state of the"
               " resource.")
    return _transition(request, "enabling", ("disabled",), errors={"active": invalid, "enabling": invalid})


def task_counts(request: Request) -> Response:
    db = request.state.connection()
    row = job_row(db, request.account, request.params["job"])
    counts = dict.fromkeys(("active", "running", "completed", "succeeded", "failed"), 0)
    slots = dict(counts)
    for task in db.execute("SELECT body, status FROM batch_tasks WHERE account = ? AND job_id = ?",
                           (request.account, row["job_id"])):
        status = loads(task["status"])
        required = loads(task["body"]).get("requiredSlots", 1)
        state = status.get("state", "active")
        kinds = {"active": ["active"], "preparing": ["running"], "running": ["running"]}.get(state, ["completed"])
        if state == "completed":
            kinds.append("succeeded" if status.get("executionInfo", {}).get("result") == "success" else "failed")
        for kind in kinds:
            counts[kind] += 1
            slots[kind] += required
    return request.json({"taskCounts": counts, "taskSlotCounts": slots}, "taskcountsresult/@Element")


def preparation_and_release_status(request: Request) -> Response:
    row = job_row(request.state.connection(), request.account, request.params["job"])
    if "jobPreparationTask" not in loads(row["body"]):
        raise BatchError(409, "JobPreparationTaskNotSpecified",
                         "The specified job does not have job preparation task.")
    entries = []
    for entry in (loads(row["runtime"]).get("preparationAndRelease") or {}).values():
        entry = dict(entry)
        if entry.get("poolId") and entry.get("nodeId"):
            entry["nodeUrl"] = request.url("pools", entry["poolId"], "nodes", entry["nodeId"])
            for name in ("jobPreparationTaskExecutionInfo", "jobReleaseTaskExecutionInfo"):
                info = entry.get(name)
                if isinstance(info, dict) and info.get("taskRootDirectory"):
                    directory = str(info["taskRootDirectory"]).replace("\\", "/")
                    entry[name] = {**info, "taskRootDirectoryUrl": f"{entry['nodeUrl']}/files/{directory}"}
        entries.append(entry)
    return odata.page(request, entries, "jobpreparationandreleasetaskstatuslist")
