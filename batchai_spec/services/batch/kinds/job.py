"""job.EXPERIMENT/NAME on Azure Batch: a Batch job on the cluster's pool with one task (multi-instance over
node_count nodes) that runs batchai-spec's launcher, which runs the toolkit as Batch AI did and writes Batch AI's
output layout. A run to completion: any change means a new run. The job's metadata carries its record (owner,
fingerprints, the digest of its inputs, its names in the spec, its run's uuid, and what it runs, without secrets);
its secrets go to a file on the share (services/batch/secrets.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from batchai_spec.graph import Graph, Resource, SpecWalk, prune
from batchai_spec.kinds import Cannot, Declaration, Policy
from batchai_spec.observed import Observed, Run
from batchai_spec.parallel import in_parallel
from batchai_spec.sensitive import without_write_only
from batchai_spec.services.azure import runs
from batchai_spec.services.azure.bodies import named_list, plain, secret_list
from batchai_spec.services.azure.errors import already_gone
from batchai_spec.services.azure.ownership import OWNER_METADATA
from batchai_spec.services.batch import bodies
from batchai_spec.services.batch.bodies import TASK_ID, job_id, wire
from batchai_spec.services.batch.connection import BatchConnection
from batchai_spec.services.batch.ownership import (
    BODY_METADATA,
    EXPERIMENT_METADATA,
    INPUTS_METADATA,
    JOB_METADATA,
    RUN_METADATA,
    SECRETS_METADATA,
    as_metadata,
    metadata_of,
    owner_metadata,
    read_metadata,
)
from batchai_spec.services.batch.secrets import delete_secrets, write_secrets
from batchai_spec.services.batch.watch import finished_state, job_status, run_state
from batchai_spec.services.declarations import SpecJob

# Batch AI's toolkit keys as its toolType names, which the launcher takes.
TOOL_TYPES = {"custom_mpi": "custommpi", "custom_toolkit": "custom"}
# Read from the job itself; the rest of the body from its metadata (what it runs is its task's, read only when needed).
OWN_FIELDS = ("pool_id", "priority", "max_wall_clock_time")


class Job(SpecJob):
    fields = {name: Policy.REPLACE for name in (*OWN_FIELDS, "task", "launch", "secrets")}
    loose_dependencies = {"cluster": "while-active", "file": "inputs"}

    def needs(self, walk: SpecWalk, job, cluster):
        return bodies.launcher_addresses(cluster, walk.spec)

    def is_input(self, file: Resource) -> bool:
        """The launcher is no input of the jobs (a new launcher does not run them again)."""
        return not file.ids["path"].startswith(f"{bodies.LAUNCHER_DIRECTORY}/")

    def facts(self, walk: SpecWalk, ids: dict[str, str], job, cluster) -> dict[str, Any]:
        spec = walk.spec
        return {
            "mount": bodies.launcher_mount(cluster, spec),
            "segment": runs.segment_of(walk.subscription_id, ids),
            "secrets": bodies.secrets_file(cluster, spec, job_id(ids["experiment"], ids["job"])) if job.secrets else None,
        }

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        job, spec = declaration.node, walk.spec
        mount = declaration.extra["mount"]
        toolkit_name, settings = self.toolkit_settings(job)
        container = None
        if job.container is not None:  # its registry's credentials are the pool's (pool.py)
            container = {
                "image_name": job.container.image,
                "container_run_options": f"--shm-size {job.container.shm_size}" if job.container.shm_size else None,
            }
        task = {
            "command_line": bodies.launcher_command(mount, "job"),
            "container_settings": container,
            "environment_settings": named_list(job.environment_variables),
            "multi_instance_settings": {
                "number_of_instances": job.node_count,
                "coordination_command_line": bodies.launcher_command(mount, "worker"),
            }
            if job.node_count > 1
            else None,
            # Batch AI ran jobs as root (the data plane's enums are lower case; ARM's, in pools, are not).
            "user_identity": {"auto_user": {"scope": "task", "elevation_level": "admin"}},
        }
        launch = {
            "tool_type": TOOL_TYPES.get(toolkit_name, toolkit_name),
            "settings": settings,
            "node_count": job.node_count,
            "input_directories": [{"id": key, "path": path} for key, path in sorted(job.input_directories.items())],
            "output_directories": sorted((plain(directory) for directory in job.output_directories), key=lambda d: d["id"]),
            "std_out_err_path_prefix": job.std_out_err_path_prefix,
            "job_preparation": job.job_preparation.command_line if job.job_preparation else None,
        }
        return prune(
            {
                "pool_id": spec.cluster(job.cluster).name,
                "priority": bodies.PRIORITIES[job.scheduling_priority],
                "max_wall_clock_time": self.wall_clock(job),
                "task": task,
                "launch": launch,
                "secrets": secret_list(job.secrets),
            }
        )

    def live_dependencies(self, live: Observed) -> set[str]:
        return {f"cluster.{live.state['pool_id']}"} if live.state.get("pool_id") else set()

    def list_under(self, connection: BatchConnection, experiment: Observed, graph: Graph) -> list[Observed]:
        ids = experiment.ids
        account = connection.observed[f"workspace.{ids['workspace']}"]
        salt = connection.accounts.stored_salt(ids)
        jobs = [(job, metadata_of(job.metadata)) for job in connection.account_jobs(account)]

        def observed(job: Any, metadata: dict[str, str]) -> Observed:
            job_ids = {**ids, "job": metadata[JOB_METADATA]}
            owned, stored = read_metadata(metadata, connection.spec_name, salt)
            state = {
                "pool_id": job.pool_info.pool_id if job.pool_info else None,
                "priority": job.priority,
                "max_wall_clock_time": self.wall_clock(job) if job.constraints else None,
                **json.loads(metadata.get(BODY_METADATA) or "{}"),
            }
            run = _run(connection, job_ids, job, metadata)
            if run.state is None:  # a job whose task was never made (an apply cut short): not the run asked for
                state.pop("task", None)
            return Observed(self.address(job_ids), self.name, job_ids, state, owned=owned, stored=stored, run=run)

        # One read of its task per job (its run's state and exit code), all at once: a sweep is many jobs.
        return in_parallel(
            [
                lambda job=job, metadata=metadata: observed(job, metadata)
                for job, metadata in jobs
                if metadata.get(EXPERIMENT_METADATA) == ids["experiment"] and JOB_METADATA in metadata
            ],
            connection.parallelism,
        )

    def create(self, connection: BatchConnection, resource: Resource, progress=None) -> None:
        """The job, its task, then `terminatejob` once all tasks complete (set after the task exists: a job without
        tasks counts as complete). Safe to retry: a job an interrupted try made is carried on with."""
        ids, data = resource.ids, connection.data(resource.ids)
        batch_job = job_id(ids["experiment"], ids["job"])
        body = connection.revealed(resource)
        run_id = str(uuid.uuid4())
        try:
            data.create_job(self._job_body(connection, resource, batch_job, run_id))
        except ResourceExistsError as error:
            if _code(error) != "JobExists":  # another conflict: the service's answer, not a job made before
                raise
            existing = metadata_of(data.get_job(batch_job).metadata)
            if existing.get(OWNER_METADATA) != connection.spec_name or RUN_METADATA not in existing:
                raise
            run_id = existing[RUN_METADATA]
        write_secrets(connection, resource.extra["secrets"], {item["name"]: item["value"] for item in body.get("secrets", [])})
        try:
            data.create_task(batch_job, self._task_body(body, resource, run_id))
        except ResourceExistsError as error:
            if _code(error) != "TaskExists":  # not the task an interrupted try made: a job without it would end at once
                raise
        try:
            data.update_job(batch_job, {"onAllTasksComplete": "terminatejob"})
        except ResourceExistsError as error:
            if _code(error) != "JobCompleted":  # a try whose answer was lost set it, and the job has run since
                raise

    def _job_body(self, connection: BatchConnection, resource: Resource, batch_job: str, run_id: str) -> dict[str, Any]:
        desired, ids = resource.desired, resource.ids
        recorded = without_write_only({key: desired[key] for key in ("task", "launch") if key in desired})
        metadata = {
            **owner_metadata(connection.spec_name, connection.fingerprints(resource)),
            INPUTS_METADATA: resource.extra["inputs_digest"],
            EXPERIMENT_METADATA: ids["experiment"],
            JOB_METADATA: ids["job"],
            RUN_METADATA: run_id,
            BODY_METADATA: json.dumps(recorded, sort_keys=True, separators=(",", ":")),
        }
        if resource.extra["secrets"] is not None:
            metadata[SECRETS_METADATA] = json.dumps(resource.extra["secrets"], sort_keys=True)
        return {
            "id": batch_job,
            "displayName": f"{ids['experiment']}/{ids['job']}",
            "poolInfo": {"poolId": desired["pool_id"]},
            "priority": desired["priority"],
            "constraints": {"maxWallClockTime": desired["max_wall_clock_time"], "maxTaskRetryCount": 0},
            # A failed task ends the job (its exit options' default action), so a finished job says how it ended.
            "onTaskFailure": "performexitoptionsjobaction",
            "metadata": as_metadata(metadata),
        }

    def _task_body(self, body: dict[str, Any], resource: Resource, run_id: str) -> dict[str, Any]:
        task, launch, ids = dict(body["task"]), body["launch"], resource.ids
        mount = resource.extra["mount"]
        description = {
            "version": 1,
            "tool_type": launch["tool_type"],
            "settings": wire(launch.get("settings", {})),
            "node_count": launch["node_count"],
            "input_directories": launch.get("input_directories", []),
            "output_directories": wire(launch.get("output_directories", [])),
            "std_out_err_path_prefix": launch["std_out_err_path_prefix"],
            "output_segment": f"{resource.extra['segment']}/{run_id}",
            "job_preparation": launch.get("job_preparation"),
            "secrets_file": bodies.secrets_path(mount, job_id(ids["experiment"], ids["job"])) if body.get("secrets") else None,
        }
        task["environment_settings"] = [
            *task.get("environment_settings", []),
            {"name": bodies.LAUNCH_VARIABLE, "value": bodies.description(description)},
        ]
        return {"id": TASK_ID, **wire(task), "constraints": {"maxTaskRetryCount": 0}}

    update = Cannot("a job runs to completion: a change means a new run")

    def terminate(self, connection: BatchConnection, live: Observed) -> None:
        with already_gone():
            connection.data(live.ids).begin_terminate_job(
                job_id(live.ids["experiment"], live.ids["job"]), {"terminateReason": "Replaced"}
            ).result()

    def delete(self, connection: BatchConnection, live: Observed) -> None:
        """Deletes the job; first its run's end is written on the run's directory on the share (which outlives
        the job) for `outputs` to show, and its secrets file goes."""
        ids, data = live.ids, connection.data(live.ids)
        batch_job = job_id(ids["experiment"], ids["job"])
        try:
            job = data.get_job(batch_job)
        except ResourceNotFoundError:
            return  # already gone
        try:
            task = data.get_task(batch_job, TASK_ID)
        except ResourceNotFoundError:
            task = None
        try:
            layout, run_id = connection.watch.layout(ids, job)
            if run_id:
                runs.record_run(connection.clients, layout, run_id, runs.run_record(job_status(job, task)))
        except HttpResponseError:  # a share or account that is gone leaves nothing to record on
            pass
        metadata = metadata_of(job.metadata)
        with already_gone():
            data.begin_delete_job(batch_job).result()
        if metadata.get(OWNER_METADATA) == connection.spec_name and SECRETS_METADATA in metadata:
            delete_secrets(connection, json.loads(metadata[SECRETS_METADATA]))


def _run(connection: BatchConnection, ids: dict[str, str], job: Any, metadata: dict[str, str]) -> Run:
    """The job's run: a finished job says how it ended; an active one's task says whether it runs (None: no task);
    the task says its exit code and start either way (`status` shows a finished job's exit code, as on Batch AI)."""
    state = finished_state(job)
    started = job.execution_info.start_time if job.execution_info else None
    exit_code = None
    try:
        task = connection.data(ids).get_task(job.id, TASK_ID)
    except ResourceNotFoundError:
        task = None
    if state is None:
        state = run_state(job, task) if task is not None else None
    info = task.execution_info if task is not None else None
    if info is not None:
        started, exit_code = info.start_time or started, info.exit_code
    return Run(state, exit_code, metadata.get(RUN_METADATA), started.timestamp() if started else None)


def _code(error: ResourceExistsError) -> str | None:
    """The Batch error code of a 409 (azure-core makes every 409 a ResourceExistsError, whatever its code)."""
    return getattr(getattr(error, "error", None), "code", None)


JOB = Job()
