"""Jobs: create (LRO; the job queues), get, delete (LRO; stops a running job first), terminate (LRO; ends when
the job has stopped), list, listOutputFiles and listRemoteLoginInformation (POST first page, GET next pages)."""

from __future__ import annotations

import uuid

from starlette.responses import Response

from batchai_spec.emulator.batchai import ids, store
from batchai_spec.emulator.batchai.api.clusters import check_mount_urls, login_entries
from batchai_spec.emulator.batchai.api.common import (
    EXPERIMENT, accepted, delete, existing, listed, live_parent, location_of, operation_started, parse,
    resource_response, same_body, workspace_id,
)
from batchai_spec.emulator.batchai.errors import conflict, invalid, not_found
from batchai_spec.emulator.batchai.models import JobCreate
from batchai_spec.emulator.batchai.output_files import directory_location, list_files
from batchai_spec.emulator.batchai.paging import int_query
from batchai_spec.emulator.batchai.runner import ACTIVE, set_execution_state
from batchai_spec.emulator.batchai.service import wake
from batchai_spec.emulator.batchai.store import Resource
from batchai_spec.emulator.batchai.times import iso_millis
from batchai_spec.emulator.batchai.views import job_view
from batchai_spec.emulator.clock import now
from batchai_spec.emulator.routing import Call, Router
from batchai_spec.emulator.state import State

JOB = EXPERIMENT + "/jobs/{job}"
DEFAULT_LINK_EXPIRY_MINUTES = 60


def add_routes(router: Router) -> None:
    router.add("GET", EXPERIMENT + "/jobs", list_in_experiment)
    router.add("PUT", JOB, create)
    router.add("GET", JOB, get)
    router.add("DELETE", JOB, remove)
    router.add("POST", JOB + "/terminate", terminate)
    router.add(("POST", "GET"), JOB + "/listOutputFiles", list_output_files)
    router.add(("POST", "GET"), JOB + "/listRemoteLoginInformation", remote_login_information)


def job_ids(state: State, call: Call) -> tuple[str, str, str]:
    """(workspace id, experiment id, job id) of the call's path."""
    workspace = workspace_id(state, call)
    ids.check_name("experiment", call.params["experiment"])
    ids.check_name("job", call.params["job"])
    experiment = ids.child_id(workspace, "experiment", call.params["experiment"])
    return workspace, experiment, ids.child_id(experiment, "job", call.params["job"])


def _names(call: Call) -> tuple[str, str, str]:
    return call.params["workspace"], call.params["experiment"], call.params["job"]


def create(state: State, call: Call) -> Response:
    workspace_key, experiment_key, resource_id = job_ids(state, call)
    request = parse(JobCreate, call).dump()
    properties = request["properties"]
    cluster_ref = ids.parse_cluster_id(properties["cluster"]["id"], "properties.cluster.id")
    check_mount_urls(properties.get("mountVolumes"), "properties.mountVolumes")
    moment = now()
    with state.transaction() as db:
        workspace = existing(db, workspace_key, "workspace", call.params["workspace"])
        experiment = live_parent(db, experiment_key, "experiment", call.params["experiment"])
        cluster = store.get(db, cluster_ref.id, "cluster")
        if cluster is None:
            raise not_found("cluster", cluster_ref.cluster)
        job = store.get(db, resource_id, "job")
        if job is not None:
            same_body(job, request, "job")
        elif call.operation_fault is None:
            if cluster.status["provisioningState"] == "deleting":
                raise conflict(f"The cluster {cluster.name} is being deleted; no job can be submitted to it.")
            job_uuid = str(uuid.uuid4())
            segment = (f"{call.params['subscription']}/{call.params['resource_group']}/workspaces/{workspace.name}"
                       f"/experiments/{experiment.name}/jobs/{call.params['job']}/{job_uuid}")
            job = store.create(
                db, "job", resource_id, experiment.id, request, moment,
                status={"executionState": "queued", "executionStateTransitionTime": iso_millis(moment)},
                runtime={"uuid": job_uuid, "outputSegment": segment, "experimentName": experiment.name,
                         "clusterKey": cluster.key},
            )
        operation = operation_started(state, call, _names(call), done=True,
                                      result=job_view(job) if job is not None else None)
    wake(state)
    return accepted(state, call, operation, location_of(workspace))


def get(state: State, call: Call) -> Response:
    job = _existing_job(state, call)
    return resource_response(job_view(job), job)


def _existing_job(state: State, call: Call) -> Resource:
    workspace_key, experiment_key, resource_id = job_ids(state, call)
    connection = state.connection()
    existing(connection, workspace_key, "workspace", call.params["workspace"])
    existing(connection, experiment_key, "experiment", call.params["experiment"])
    return existing(connection, resource_id, "job", call.params["job"])


def remove(state: State, call: Call) -> Response:
    workspace_key, _, resource_id = job_ids(state, call)
    return delete(state, call, resource_id, "job", workspace_key, _names(call))


def terminate(state: State, call: Call) -> Response:
    """A queued or running job goes `terminating`, then `failed` (JobTerminated) once its processes are gone;
    terminating a finished job changes nothing."""
    workspace_key, _, resource_id = job_ids(state, call)
    with state.transaction() as db:
        workspace = existing(db, workspace_key, "workspace", call.params["workspace"])
        job = existing(db, resource_id, "job", call.params["job"])
        execution = job.status["executionState"]
        stoppable = execution in ("queued", *ACTIVE) and call.operation_fault is None
        operation = operation_started(state, call, _names(call), done=not stoppable)
        if stoppable:
            job.runtime.setdefault("stop", "terminate")
            job.runtime.setdefault("terminateOperations", []).append(operation.id)
            if execution != "terminating":
                set_execution_state(job, "terminating", now())
            store.save(db, job)
    wake(state)
    return accepted(state, call, operation, location_of(workspace))


def list_in_experiment(state: State, call: Call) -> Response:
    workspace_key = workspace_id(state, call)
    ids.check_name("experiment", call.params["experiment"])
    experiment_key = ids.child_id(workspace_key, "experiment", call.params["experiment"])
    connection = state.connection()
    existing(connection, workspace_key, "workspace", call.params["workspace"])
    existing(connection, experiment_key, "experiment", call.params["experiment"])
    return listed(call, [job_view(job) for job in store.children(connection, ids.key(experiment_key), "job")])


def list_output_files(state: State, call: Call) -> Response:
    job = _existing_job(state, call)
    output_directory_id = call.query.get("outputdirectoryid")
    if not output_directory_id:
        raise invalid("outputdirectoryid", "the query parameter is required")
    expiry = int_query(call, "linkexpiryinminutes", DEFAULT_LINK_EXPIRY_MINUTES, 5, 600)
    location = directory_location(job, output_directory_id)
    return listed(call, list_files(state, location, call.query.get("directory", "."), expiry))


def remote_login_information(state: State, call: Call) -> Response:
    job = _existing_job(state, call)
    nodes = store.nodes_of_job(state.connection(), job.key) if job.status["executionState"] in ACTIVE else []
    return listed(call, login_entries(nodes))
