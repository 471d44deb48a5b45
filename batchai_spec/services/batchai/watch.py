"""Reads that follow running work: cluster allocation, job state, output files and their bytes (ranged)."""

from __future__ import annotations

import posixpath
from typing import Any

from azure.mgmt.batchai import models as batchai_models

from batchai_spec.services.azure.clients import Clients
from batchai_spec.services.azure.downloads import CommonReads
from batchai_spec.statuses import LOG_FILES, ClusterStatus, JobStatus, OutputFile

# Batch AI ran these one process per node; on several nodes each wrote its own files (reference §8.2).
PER_NODE_LOGS = {"pytorch": "{}-{}.txt", "caffe2": "{}-{}.txt", "tensorflow": "{}-wk-{}.txt"}


def run_id_of(job: batchai_models.Job) -> str | None:
    """The uuid of the job's run: the last part of its output directories' segment (a job created again under the
    same name is another run)."""
    return (job.job_output_directory_path_segment or "").strip("/").rsplit("/", 1)[-1] or None


def job_status(job: batchai_models.Job) -> JobStatus:
    info = job.execution_info
    errors = [error.as_dict() for error in (info.errors if info and info.errors else [])]
    return JobStatus(
        job.execution_state,
        info.exit_code if info else None,
        errors,
        info.start_time if info else None,
        info.end_time if info else None,
        tuple(directory.id for directory in job.output_directories or []),
        run_id_of(job),
        log_files=log_files(job),
        failed_stderr=next((detail.get("value") for error in errors[:1] for detail in error.get("details") or []
                            if detail.get("name") == "stderr"), None),
    )


def log_files(job: batchai_models.Job) -> tuple[str, str]:
    """The stdout and stderr files of the job's first (master) process."""
    pattern = PER_NODE_LOGS.get(str(job.tool_type or "").lower())
    if pattern is None or (job.node_count or 1) == 1:
        return LOG_FILES
    return pattern.format("stdout", 0), pattern.format("stderr", 0)


class Watch(CommonReads):
    """Batch AI's answers to what following running work reads (batchai_spec/statuses.py)."""

    def __init__(self, clients: Clients):
        super().__init__(clients.endpoint.connection_verify)
        self.clients = clients

    def cluster(self, ids: dict[str, str]) -> ClusterStatus:
        cluster = self.clients.batchai.clusters.get(ids["resource_group"], ids["workspace"], ids["cluster"])
        counts = cluster.node_state_counts.as_dict() if cluster.node_state_counts else {}
        return ClusterStatus(
            cluster.allocation_state,
            cluster.current_node_count or 0,
            counts,
            [error.as_dict() for error in cluster.errors or []],
        )

    def job(self, ids: dict[str, str]) -> JobStatus:
        return job_status(self.clients.batchai.jobs.get(ids["resource_group"], ids["workspace"], ids["experiment"], ids["job"]))

    def output_files(self, ids: dict[str, str], directory_id: str, directory: str = ".") -> list[OutputFile]:
        """Every file of one output directory (or `stdouterr`), walking its sub-directories."""
        options = batchai_models.JobsListOutputFilesOptions(outputdirectoryid=directory_id, directory=directory)
        found: list[OutputFile] = []
        items = self.clients.batchai.jobs.list_output_files(
            ids["resource_group"], ids["workspace"], ids["experiment"], ids["job"], options
        )
        for item in items:
            path = item.name if directory == "." else posixpath.join(directory, item.name)
            if item.file_type == "directory":
                found += self.output_files(ids, directory_id, path)
            else:
                found.append(OutputFile(directory_id, path, item.download_url, item.content_length or 0))
        return found

    def begin_terminate(self, ids: dict[str, str]) -> Any:
        """Asks the service to stop a queued or running job (POST terminate): the poller of that operation."""
        return self.clients.batchai.jobs.begin_terminate(ids["resource_group"], ids["workspace"], ids["experiment"], ids["job"])
