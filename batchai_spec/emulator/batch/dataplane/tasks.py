"""Tasks: add, addtaskcollection (at most 100, a status per task), get, list, PUT (constraints), delete, terminate,
reactivate, subtasksinfo.

New tasks are `active`; the task runner moves them (see the package docstring). `batch_tasks.body` is the task as
the service answers it minus the server-owned fields, `status` the server-owned fields, `runtime` the runner's.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from batchai_spec.emulator.batch import service
from batchai_spec.emulator.batch.dataplane import odata
from batchai_spec.emulator.batch.dataplane.jobs import copy_fields, copy_state_fields, object_value, task_constraints
from batchai_spec.emulator.batch.dataplane.rows import (
    dumps, integer, job_row, loads, refuse_job_state, remove_directory, task_row, user_identity,
)
from batchai_spec.emulator.batch.dataplane.wire import (
    ID_PATTERN, BatchError, Request, answer, check_conditions, conflict, created, entity_headers,
    invalid_property, missing_property,
)
from batchai_spec.emulator.batch.store import data_plane_etag, next_seq
from batchai_spec.emulator.batch.task_rows import ENDED_BY_USER
from batchai_spec.emulator.clock import iso8601, now

MAX_TASKS_PER_COLLECTION = 100
# What a task ended by a terminate request shows (the service's TaskEnded failure).


def task_spec(body: Any, job: dict[str, Any]) -> dict[str, Any]:
    """A new task as stored, with the service's defaults; raises the error the service answers for it."""
    if not isinstance(body, dict):
        raise invalid_property("task", body, "A task must be an object.")
    task_id = body.get("id")
    if not task_id:
        raise missing_property("id")
    if not isinstance(task_id, str) or not ID_PATTERN.match(task_id):
        raise invalid_property("id", task_id, "The id may hold letters, digits, hyphens and underscores, at most 64.")
    if not body.get("commandLine"):
        raise missing_property("commandLine")
    for name, code, what in (("jobPreparationTask", "TaskIdSameAsJobPreparationTask", "job preparation"),
                             ("jobReleaseTask", "TaskIdSameAsJobReleaseTask", "job release")):
        if name in job and job[name]["id"].lower() == task_id.lower():
            raise conflict(code, f"The specified task id is same as the {what} task.")
    if body.get("dependsOn") is not None and not job.get("usesTaskDependencies"):
        raise BatchError(400, "TaskDependenciesNotSpecifiedOnJob", "A task was specified as depending on other tasks,"
                         " but the job did not specify that it would use task dependencies.")
    spec: dict[str, Any] = {"id": task_id}
    copy_fields(body, spec, "displayName")
    spec["commandLine"] = body["commandLine"]
    if body.get("containerSettings") is not None:
        container = dict(object_value(body["containerSettings"], "containerSettings"))
        if not container.get("imageName"):
            raise missing_property("containerSettings.imageName")
        container.setdefault("workingDirectory", "taskWorkingDirectory")
        spec["containerSettings"] = container
    copy_fields(body, spec, "resourceFiles", "outputFiles", "environmentSettings", "affinityInfo", "exitConditions")
    spec["userIdentity"] = user_identity(body.get("userIdentity"))
    if body.get("multiInstanceSettings") is not None:
        settings = dict(object_value(body["multiInstanceSettings"], "multiInstanceSettings"))
        settings["numberOfInstances"] = integer(settings.get("numberOfInstances", 1),
                                                "multiInstanceSettings.numberOfInstances", 1)
        spec["multiInstanceSettings"] = settings
    copy_fields(body, spec, "authenticationTokenSettings")
    spec["constraints"] = task_constraints(body.get("constraints"), job["constraints"]["maxTaskRetryCount"])
    spec["requiredSlots"] = integer(body.get("requiredSlots", 1), "requiredSlots", 1)
    if body.get("dependsOn") is not None:
        spec["dependsOn"] = _depends_on(body["dependsOn"])
    copy_fields(body, spec, "applicationPackageReferences")
    return spec


def _depends_on(value: Any) -> dict[str, Any]:
    """`dependsOn` as the service accepts it: `taskIds` strings, `taskIdRanges` of integers with start <= end."""
    depends = dict(object_value(value, "dependsOn"))
    ids = depends.get("taskIds")
    if ids is not None:
        if not isinstance(ids, list) or not all(isinstance(item, str) and item for item in ids):
            raise invalid_property("dependsOn.taskIds", ids, "The task ids must be non-empty strings.")
    ranges = depends.get("taskIdRanges")
    if ranges is not None:
        if not isinstance(ranges, list):
            raise invalid_property("dependsOn.taskIdRanges", ranges, "The task id ranges must be a list.")
        for item in ranges:
            if not isinstance(item, dict):
                raise invalid_property("dependsOn.taskIdRanges", item, "A task id range must be an object.")
            start = integer(item.get("start"), "dependsOn.taskIdRanges.start", 0)
            end = integer(item.get("end"), "dependsOn.taskIdRanges.end", 0)
            if start > end:
                raise invalid_property("dependsOn.taskIdRanges", item, "The start must not be after the end.")
    return depends


def _insert(db, request: Request, job_row_, spec: dict[str, Any], moment: float) -> str:
    if db.execute("SELECT 1 FROM batch_tasks WHERE account = ? AND job_id = ? AND task_id = ?",
                  (request.account, job_row_["job_id"], spec["id"])).fetchone():
        raise conflict("TaskExists", "The specified task already exists.")
    etag = data_plane_etag()
    status = {"state": "active", "stateTransitionTime": iso8601(moment),
              "executionInfo": {"retryCount": 0, "requeueCount": 0}}
    db.execute(
        "INSERT INTO batch_tasks (account, job_id, task_id, body, status, runtime, etag, created_at, modified_at,"
        " seq) VALUES (?, ?, ?, ?, ?, '{}', ?, ?, ?, ?)",
        (request.account, job_row_["job_id"], spec["id"], dumps(spec), dumps(status), etag, moment, moment,
         next_seq(db, "batch_tasks")),
    )
    return etag


def _job_accepting_tasks(db, request: Request):
    row = job_row(db, request.account, request.params["job"])
    refuse_job_state(loads(row["status"]).get("state", "active"))
    return row


def create_task(request: Request) -> Response:
    body = request.body()
    moment = now()
    with request.state.transaction() as db:
        job = _job_accepting_tasks(db, request)
        spec = task_spec(body, loads(job["body"]))
        etag = _insert(db, request, job, spec, moment)
    service.wake(request.state)
    return created(request.url("jobs", job["job_id"], "tasks", spec["id"]), etag, moment)


def add_task_collection(request: Request) -> Response:
    """Each task added or refused on its own (`Success` / `ClientError` with the error), as the service answers."""
    tasks = request.body().get("value")
    if not isinstance(tasks, list):
        raise missing_property("value")
    if len(tasks) > MAX_TASKS_PER_COLLECTION:
        raise invalid_property("value", len(tasks),
                               f"A task collection may hold at most {MAX_TASKS_PER_COLLECTION} tasks.")
    moment = now()
    results = []
    with request.state.transaction() as db:
        job = _job_accepting_tasks(db, request)
        job_spec = loads(job["body"])
        for body in tasks:
            task_id = body.get("id") if isinstance(body, dict) else None
            try:
                spec = task_spec(body, job_spec)
                etag = _insert(db, request, job, spec, moment)
            except BatchError as error:
                result: dict[str, Any] = {"status": "ClientError", "taskId": task_id, "error": {
                    "code": error.code, "message": {"lang": "en-US", "value": error.message}}}
                if error.values:
                    result["error"]["values"] = [{"key": key, "value": value} for key, value in error.values]
                results.append(result)
                continue
            results.append({"status": "Success", "taskId": spec["id"], "eTag": etag,
                            "lastModified": iso8601(moment),
                            "location": request.url("jobs", job["job_id"], "tasks", spec["id"])})
    service.wake(request.state)
    return request.json({"value": results}, "taskaddresult")


# --- rendering -------------------------------------------------------------------------------------------------

_SPEC_ORDER = ("commandLine", "containerSettings", "resourceFiles", "outputFiles", "environmentSettings",
               "affinityInfo", "exitConditions", "userIdentity", "multiInstanceSettings",
               "authenticationTokenSettings", "constraints", "requiredSlots", "dependsOn",
               "applicationPackageReferences")


def render(request: Request, row, job_spec: dict[str, Any]) -> dict[str, Any]:
    spec, status, runtime = loads(row["body"]), loads(row["status"]), loads(row["runtime"])
    task: dict[str, Any] = {"id": spec["id"]}
    copy_fields(spec, task, "displayName")
    task["url"] = request.url("jobs", row["job_id"], "tasks", spec["id"])
    task["eTag"] = row["etag"]
    task["creationTime"] = iso8601(row["created_at"])
    task["lastModified"] = iso8601(row["modified_at"])
    copy_state_fields(status, task)
    task.update((name, spec[name]) for name in _SPEC_ORDER if name in spec)
    task["executionInfo"] = {"retryCount": 0, "requeueCount": 0, **status.get("executionInfo", {})}
    node_info = node_info_urls(request, status.get("nodeInfo")) or _node_info(request, row, runtime, job_spec)
    if node_info:
        task["nodeInfo"] = node_info
    if "stats" in status:
        task["stats"] = status["stats"]
    return task


def _node_info(request: Request, row, runtime: dict[str, Any], job_spec: dict[str, Any]) -> dict[str, Any] | None:
    """Where the runner put the task (`runtime.node`), in the service's terms, when it did not write nodeInfo."""
    node = runtime.get("node")
    pool = runtime.get("pool") or job_spec.get("poolInfo", {}).get("poolId")
    if not node or not pool:
        return None
    directory = f"workitems/{row['job_id']}/job-1/{row['task_id']}"
    node_url = request.url("pools", pool, "nodes", node)
    return {"affinityId": f"TVM:{node}", "nodeUrl": node_url, "poolId": pool, "nodeId": node,
            "taskRootDirectory": directory, "taskRootDirectoryUrl": f"{node_url}/files/{directory}"}


def node_info_urls(request: Request, info: dict[str, Any] | None) -> dict[str, Any] | None:
    """nodeInfo with its URLs on the endpoint the client uses (the runner knows nodes, not the data plane's URL)."""
    if not info or not info.get("poolId") or not info.get("nodeId"):
        return info
    info = dict(info)
    info["nodeUrl"] = request.url("pools", info["poolId"], "nodes", info["nodeId"])
    if info.get("taskRootDirectory"):
        directory = str(info["taskRootDirectory"]).replace("\\", "/")
        info["taskRootDirectoryUrl"] = f"{info['nodeUrl']}/files/{directory}"
    return info


def get_task(request: Request) -> Response:
    db = request.state.connection()
    job = job_row(db, request.account, request.params["job"])
    row = task_row(db, request.account, job["job_id"], request.params["task"])
    check_conditions(request.call, row["etag"], row["modified_at"])
    return request.json(odata.select(render(request, row, loads(job["body"])), request), "tasks/@Element",
                        headers=entity_headers(row["etag"], row["modified_at"]))


def list_tasks(request: Request) -> Response:
    db = request.state.connection()
    job = job_row(db, request.account, request.params["job"])
    job_spec = loads(job["body"])
    rows = db.execute("SELECT * FROM batch_tasks WHERE account = ? AND job_id = ? ORDER BY seq",
                      (request.account, job["job_id"])).fetchall()
    return odata.page(request, [render(request, row, job_spec) for row in rows], "tasks")


def replace_task(request: Request) -> Response:
    """PUT: only the constraints change; left out, they go back to the defaults."""
    body = request.body()
    moment = now()
    with request.state.transaction() as db:
        job = job_row(db, request.account, request.params["job"])
        row = task_row(db, request.account, job["job_id"], request.params["task"])
        check_conditions(request.call, row["etag"], row["modified_at"])
        if loads(row["status"]).get("state") == "completed":
            raise conflict("TaskCompleted", "The specified task is already in a completed state.")
        spec = loads(row["body"])
        spec["constraints"] = task_constraints(body.get("constraints"),
                                               loads(job["body"])["constraints"]["maxTaskRetryCount"])
        etag = data_plane_etag()
        _write(db, row, etag, moment, body=spec)
    service.wake(request.state)
    return answer(200, b"", {**entity_headers(etag, moment),
                             "DataServiceId": request.url("jobs", job["job_id"], "tasks", row["task_id"])})


def delete_task(request: Request) -> Response:
    """Gone at once (200), its files with it; a runner whose task row vanished ends its processes."""
    with request.state.transaction() as db:
        job = job_row(db, request.account, request.params["job"])
        row = task_row(db, request.account, job["job_id"], request.params["task"])
        check_conditions(request.call, row["etag"], row["modified_at"])
        db.execute("DELETE FROM batch_tasks WHERE account = ? AND job_id = ? AND task_id = ?",
                   (request.account, job["job_id"], row["task_id"]))
    runtime = loads(row["runtime"])
    for directory in {runtime.get("taskDir"), *(runtime.get("taskDirs") or {}).values()}:
        remove_directory(request.state.root, directory)
    service.wake(request.state)
    return answer(200)


def terminate_task(request: Request) -> Response:
    """A task not yet started completes now with the TaskEnded failure; a running one is marked
    `runtime.terminateRequested` for the runner, which ends its processes and completes it the same way."""
    moment = now()
    with request.state.transaction() as db:
        job = job_row(db, request.account, request.params["job"])
        row = task_row(db, request.account, job["job_id"], request.params["task"])
        check_conditions(request.call, row["etag"], row["modified_at"])
        status, runtime = loads(row["status"]), loads(row["runtime"])
        state = status.get("state", "active")
        if state == "completed":
            raise conflict("TaskCompleted", "The specified task is already in a completed state.")
        if state == "active":
            status = completed_status(status, moment, ENDED_BY_USER)
        else:
            runtime["terminateRequested"] = True
        _write(db, row, data_plane_etag(), moment, status=status, runtime=runtime)
    service.wake(request.state)
    return answer(204)


def completed_status(status: dict[str, Any], moment: float, failure: dict[str, Any] | None,
                     exit_code: int | None = None) -> dict[str, Any]:
    """The status of a task that completes at `moment` (with a failure, or with an exit code)."""
    execution = {key: value for key, value in status.get("executionInfo", {}).items()
                 if key not in ("result", "failureInfo", "exitCode")}
    execution["endTime"] = iso8601(moment)
    if exit_code is not None:
        execution["exitCode"] = exit_code
    if failure is not None:
        execution["failureInfo"] = failure
    execution["result"] = "failure" if failure is not None or exit_code not in (0, None) else "success"
    return {**status, "previousState": status.get("state", "active"),
            "previousStateTransitionTime": status.get("stateTransitionTime"), "state": "completed",
            "stateTransitionTime": iso8601(moment), "executionInfo": execution}


def reactivate_task(request: Request) -> Response:
    """A failed task becomes active again, its retry count back to 0 (the runner may run it again)."""
    moment = now()
    with request.state.transaction() as db:
        job = job_row(db, request.account, request.params["job"])
        refuse_job_state(loads(job["status"]).get("state", "active"))
        row = task_row(db, request.account, job["job_id"], request.params["task"])
        check_conditions(request.call, row["etag"], row["modified_at"])
        status = loads(row["status"])
        if status.get("state") != "completed":
            raise conflict("TaskNotCompleted", "The specified task is not in a completed state, and the requested"
                           " operation can be performed only on completed tasks.")
        execution = status.get("executionInfo", {})
        if execution.get("result") == "success":
            raise conflict("TaskSucceeded", "The specified task has already completed successfully, and the"
                           " requested operation cannot be performed on successful tasks.")
        status = {"state": "active", "stateTransitionTime": iso8601(moment), "previousState": "completed",
                  "previousStateTransitionTime": status.get("stateTransitionTime"),
                  "executionInfo": {"retryCount": 0, "requeueCount": execution.get("requeueCount", 0)}}
        _write(db, row, data_plane_etag(), moment, status=status, runtime={})
    service.wake(request.state)
    return answer(204)


def list_subtasks(request: Request) -> Response:
    db = request.state.connection()
    job = job_row(db, request.account, request.params["job"])
    row = task_row(db, request.account, job["job_id"], request.params["task"])
    subtasks = [{**subtask, "nodeInfo": node_info_urls(request, subtask.get("nodeInfo"))} if subtask.get("nodeInfo")
                else subtask for subtask in loads(row["runtime"]).get("subtasks", [])]
    return request.json({"value": subtasks}, "subtaskinfo")


def _write(db, row, etag: str, moment: float, *, body=None, status=None, runtime=None) -> None:
    db.execute(
        "UPDATE batch_tasks SET body = ?, status = ?, runtime = ?, etag = ?, modified_at = ? WHERE account = ? AND"
        " job_id = ? AND task_id = ?",
        (dumps(body if body is not None else loads(row["body"])),
         dumps(status if status is not None else loads(row["status"])),
         dumps(runtime if runtime is not None else loads(row["runtime"])), etag, moment,
         row["account"], row["job_id"], row["task_id"]),
    )
