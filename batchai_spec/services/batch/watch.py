"""Reads that follow running work on Azure Batch, in the neutral types of batchai_spec/statuses.py: a pool's
allocation and its nodes (a start task that failed, an unusable node: with their errors), a job's run (its task), its
files: stdout.txt and stderr.txt as Batch keeps them (read live with `ocp-range`), the rest from the run's
directories on the share, which the launcher writes in Batch AI's layout."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlparse

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from batchai_spec.errors import UserError
from batchai_spec.job_inputs import share_path
from batchai_spec.services.azure.downloads import CommonReads
from batchai_spec.services.azure.runs import JobLayout, ShareLocation, job_directories, segment_of, walk
from batchai_spec.services.batch.bodies import TASK_ID, job_id
from batchai_spec.services.batch.ownership import BODY_METADATA, RUN_METADATA, metadata_of
from batchai_spec.statuses import LOG_FILES, STDOUTERR, ClusterStatus, JobStatus, OutputFile

if TYPE_CHECKING:
    from batchai_spec.services.batch.connection import BatchConnection

# Task files are read through the data plane, not by URL: their OutputFile.url says where.
TASK_FILE_SCHEME = "batch-task-file"
# Batch's node states (lower-cased: the node list's `starttaskfailed`, the node counts' `startTaskFailed`) in the
# words of Batch AI's node counts, which the readiness wait reads (idle, running and unusable nodes).
NODE_COUNTS = {
    "idle": "idle",
    "running": "running",
    "unusable": "unusable",
    "starttaskfailed": "unusable",
    "creating": "preparing",
    "starting": "preparing",
    "waitingforstarttask": "preparing",
    "rebooting": "preparing",
    "reimaging": "preparing",
    "leavingpool": "leaving",
}
TERMINATED_BY_USER = "UserTerminate"  # the terminate reason `cancel` gives


def run_state(job: Any, task: Any) -> str:
    """Batch AI's execution state of a job's run, from the Batch job and its task (None: not created yet)."""
    if task is not None and task.state == "completed":
        info = task.execution_info
        return "succeeded" if info is not None and info.result == "success" else "failed"
    if job.state in ("terminating", "deleting"):
        return "terminating"
    if task is None:
        return "failed" if job.state == "completed" else "queued"
    return "running" if task.state in ("preparing", "running") else "queued"


def finished_state(job: Any) -> str | None:
    """The state of a completed job's run without reading its task: it ends with its task (onAllTasksComplete) or
    its task's failure (onTaskFailure), and says which."""
    if job.state != "completed":
        return None
    reason = job.execution_info.termination_reason if job.execution_info else None
    return "succeeded" if reason == "AllTasksComplete" else "failed"


def job_errors(job: Any, task: Any) -> list[dict[str, Any]]:
    errors = []
    info = task.execution_info if task is not None else None
    if info is not None and info.failure_info is not None:
        errors.append({"code": info.failure_info.code, "message": info.failure_info.message})
    reason = job.execution_info.termination_reason if job.execution_info else None
    if reason == TERMINATED_BY_USER:
        errors.append({"code": "JobTerminated", "message": "the job was terminated at the user's request"})
    return errors


def job_status(job: Any, task: Any) -> JobStatus:
    body = json.loads(metadata_of(job.metadata).get(BODY_METADATA) or "{}")
    info = task.execution_info if task is not None else None
    return JobStatus(
        run_state(job, task),
        info.exit_code if info is not None else None,
        job_errors(job, task),
        info.start_time if info is not None else None,
        info.end_time if info is not None else None,
        tuple(directory["id"] for directory in body.get("launch", {}).get("output_directories", [])),
        metadata_of(job.metadata).get(RUN_METADATA),
    )


class Watch(CommonReads):
    def __init__(self, connection: BatchConnection):
        super().__init__(connection.clients.endpoint.connection_verify)
        self.connection = connection
        self.clients = connection.clients
        self._mounts: dict[tuple[str, str, str], dict[str, ShareLocation]] = {}
        self._lock = threading.Lock()

    # -- pools ----------------------------------------------------------------------------------------------------

    def cluster(self, ids: dict[str, str]) -> ClusterStatus:
        pool = self.clients.batch.pool.get(ids["resource_group"], ids["workspace"], ids["cluster"])
        properties = pool.properties
        nodes = list(self.connection.data(ids).list_nodes(ids["cluster"]))
        counts = Counter(f"{NODE_COUNTS.get(node.state, node.state)}_node_count" for node in nodes)
        errors = [error for node in nodes for error in _node_errors(node)]
        resize = properties.resize_operation_status
        wanted = _target(properties.scale_settings)
        if properties.allocation_state == "Steady" and resize is not None and len(nodes) < (wanted or 0):
            # The service gave up on the nodes it could not get (quota, capacity): waiting would never end.
            errors += [{"code": error.code, "message": error.message} for error in resize.errors or []]
        return ClusterStatus((properties.allocation_state or "").lower() or None, len(nodes), dict(counts), errors)

    # -- jobs -----------------------------------------------------------------------------------------------------

    def _job_and_task(self, ids: dict[str, str]) -> tuple[Any, Any]:
        data = self.connection.data(ids)
        job = data.get_job(job_id(ids["experiment"], ids["job"]))
        try:
            task = data.get_task(job.id, TASK_ID)
        except ResourceNotFoundError:
            task = None
        return job, task

    def job(self, ids: dict[str, str]) -> JobStatus:
        return job_status(*self._job_and_task(ids))

    def begin_terminate(self, ids: dict[str, str]) -> Any:
        """Terminate the job: its running task is stopped, and the poller ends once the job is no longer terminating."""
        return self.connection.data(ids).begin_terminate_job(
            job_id(ids["experiment"], ids["job"]), {"terminateReason": TERMINATED_BY_USER}
        )

    # -- files ----------------------------------------------------------------------------------------------------

    def layout(self, ids: dict[str, str], job: Any) -> tuple[JobLayout, str | None]:
        """Where the job's runs lie on the shares its pool mounts (its stdouterr and output directories, from what it
        runs), and the uuid of its run."""
        metadata = metadata_of(job.metadata)
        launch = json.loads(metadata.get(BODY_METADATA) or "{}").get("launch", {})
        pool = job.pool_info.pool_id if job.pool_info else None
        directories, elsewhere = job_directories(
            launch.get("std_out_err_path_prefix"),
            launch.get("output_directories", []),
            lambda prefix: self._on_share(ids, pool, prefix) if pool else None,
        )
        segment = segment_of(self.clients.endpoint.subscription_id, ids)
        return JobLayout(f"job.{ids['experiment']}/{ids['job']}", segment, directories, elsewhere), metadata.get(RUN_METADATA)

    def output_files(self, ids: dict[str, str], directory_id: str, directory: str = ".") -> list[OutputFile]:
        """Every file of one output directory of the job's run, or its stdouterr: Batch's stdout.txt and stderr.txt
        of the task, and what the launcher wrote beside them on the share (execution.log, the preparation's)."""
        job = self.connection.data(ids).get_job(job_id(ids["experiment"], ids["job"]))
        layout, run_id = self.layout(ids, job)
        found = []
        for place in layout.directories if run_id else ():
            if place.directory_id == directory_id:
                run = place.prefix.join(layout.segment, run_id, place.inside)
                found = [OutputFile(directory_id, path, self._sas_url(run.join(path)), size) for path, size in walk(self.clients, run)]
        if directory_id == STDOUTERR:
            found = [file for file in found if file.path not in LOG_FILES] + self._task_logs(ids, job.id)
        return found

    def _task_logs(self, ids: dict[str, str], batch_job: str) -> list[OutputFile]:
        try:
            files = list(self.connection.data(ids).list_task_files(batch_job, TASK_ID))
        except HttpResponseError as error:  # the task has not run (409 TaskFilesUnavailable) or is not there
            if error.status_code in (404, 409):
                return []
            raise
        return [
            OutputFile(
                STDOUTERR,
                file.name,
                f"{TASK_FILE_SCHEME}:{ids['resource_group']}/{ids['workspace']}/{batch_job}/{file.name}",
                int(file.properties.content_length),
            )
            for file in files
            if file.name in LOG_FILES and not file.is_directory
        ]

    def _on_share(self, ids: dict[str, str], pool: str, prefix: str) -> ShareLocation | None:
        """A `$AZ_BATCHAI_MOUNT_ROOT/MOUNT/...` prefix as a place on a share, through the pool's mounts."""
        on_share = share_path(prefix, {"AZ_BATCHAI_MOUNT_ROOT": self._pool_mounts(ids, pool)})
        return None if on_share is None else on_share[0].join(on_share[1])

    def _pool_mounts(self, ids: dict[str, str], pool: str) -> dict[str, ShareLocation]:
        key = (ids["resource_group"], ids["workspace"], pool)
        with self._lock:
            known = self._mounts.get(key)
        if known is not None:
            return known
        properties = self.clients.batch.pool.get(*key).properties
        table = {}
        for mount in properties.mount_configuration or []:
            share = mount.azure_file_share_configuration
            if share is None:
                continue
            resource_group = self.connection.resource_group_of_account(share.account_name, look_up=True)
            if resource_group is not None:
                name = urlparse(share.azure_file_url).path.strip("/").split("/")[0]
                table[share.relative_mount_path] = ShareLocation(resource_group, share.account_name, name, "")
        with self._lock:
            self._mounts[key] = table
        return table

    def _sas_url(self, location: ShareLocation) -> str:
        """A read-only URL of a file on a share, valid for a day: what Batch AI's listOutputFiles gave."""
        from azure.storage.fileshare import FileSasPermissions, generate_file_sas

        key = self.clients.account_key(location.resource_group, location.account)
        sas = generate_file_sas(
            location.account,
            location.share,
            location.path.split("/"),
            account_key=key,
            permission=FileSasPermissions(read=True),
            expiry=datetime.now(timezone.utc) + timedelta(days=1),
        )
        return f"{self.clients.endpoint.file_endpoint(location.account)}/{location.share}/{quote(location.path)}?{sas}"

    def read_from(self, url: str, offset: int) -> bytes:
        if not url.startswith(f"{TASK_FILE_SCHEME}:"):
            return super().read_from(url, offset)
        resource_group, account, batch_job, name = url.partition(":")[2].split("/", 3)
        data = self.clients.batch_account(resource_group, account)
        # No range from the start: a range on an empty file is refused (416), and the SDK logs its failure aloud.
        ranged = {"ocp_range": f"bytes={offset}-"} if offset else {}
        try:
            return b"".join(data.download_task_file(batch_job, TASK_ID, name, **ranged))
        except HttpResponseError as error:
            if error.status_code == 416:  # nothing past the end yet
                return b""
            raise

    def download(self, files: list[OutputFile], root: Path) -> None:
        by_url = [file for file in files if not file.url.startswith(f"{TASK_FILE_SCHEME}:")]
        super().download(by_url, root)
        root = root.resolve()
        for file in files:
            if file in by_url:
                continue
            destination = (root / file.directory_id / file.path).resolve()
            try:
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(self.read_from(file.url, 0))
            except OSError as error:
                raise UserError(f"cannot write {destination}: {error.strerror or error}") from error


def _target(scale: Any) -> int | None:
    fixed = scale.fixed_scale if scale is not None else None
    if fixed is None:
        return None
    return (fixed.target_dedicated_nodes or 0) + (fixed.target_low_priority_nodes or 0)


def _node_errors(node: Any) -> list[dict[str, Any]]:
    """What went wrong on a node: its errors, and a failed start task's failure with its exit code."""
    errors = [{"code": error.code, "message": f"node {node.id}: {error.message}"} for error in node.errors or []]
    info = node.start_task_info
    if node.state == "starttaskfailed" and info is not None:
        failure = info.failure_info
        message = failure.message if failure is not None else "the start task failed"
        code = failure.code if failure is not None else "StartTaskFailed"
        errors.append({"code": code, "message": f"node {node.id}: start task exited with {info.exit_code}: {message}"})
    return errors
