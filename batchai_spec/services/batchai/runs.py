"""Where a live Batch AI job's runs lie on its shares, from what the service holds of it (its path prefixes, its
cluster's and its own Azure File mounts): for a job the spec may no longer declare. The share side of runs is
batchai_spec/services/azure/runs.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable
from urllib.parse import urlparse

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.batchai import models as batchai_models

from batchai_spec.job_inputs import share_path
from batchai_spec.services.azure.clients import Clients
from batchai_spec.services.azure.runs import JobLayout, ShareLocation, job_directories


def live_layout(
    clients: Clients, job: batchai_models.Job, address: str, resource_group_of: Callable[[str], str | None]
) -> tuple[JobLayout, str | None]:
    """The layout of a live job from what the service holds (its prefixes, its cluster's and its own Azure File
    mounts), for a job the spec may no longer declare; and the uuid of its run. Mounts of accounts whose resource
    group `resource_group_of` does not know are left out (no key to reach them)."""
    segment = (job.job_output_directory_path_segment or "").strip("/")
    parent, _, run_id = segment.rpartition("/")
    cluster_mounts = None
    if job.cluster is not None and job.cluster.id:
        parts = job.cluster.id.strip("/").split("/")
        names = {key.lower(): value for key, value in zip(parts[::2], parts[1::2])}  # ARM ids ignore case
        try:
            cluster = clients.batchai.clusters.get(names["resourcegroups"], names["workspaces"], names["clusters"])
            cluster_mounts = cluster.node_setup.mount_volumes if cluster.node_setup else None
        except (ResourceNotFoundError, KeyError):
            cluster_mounts = None
    mounts = {
        "AZ_BATCHAI_MOUNT_ROOT": _live_mount_table(cluster_mounts, resource_group_of),
        "AZ_BATCHAI_JOB_MOUNT_ROOT": _live_mount_table(job.mount_volumes, resource_group_of),
    }

    def resolve(prefix: str) -> ShareLocation | None:
        on_share = share_path(prefix, mounts)
        return None if on_share is None else replace(on_share[0], path=on_share[1])

    directories, elsewhere = job_directories(job.std_out_err_path_prefix, job.output_directories or [], resolve)
    return JobLayout(address, parent, directories, elsewhere), (run_id or None)


def _live_mount_table(volumes: Any, resource_group_of: Callable[[str], str | None]) -> dict[str, ShareLocation]:
    table = {}
    for mount in (volumes.azure_file_shares or []) if volumes is not None else []:
        share = urlparse(mount.azure_file_url or "").path.strip("/").split("/")[0]
        resource_group = resource_group_of(mount.account_name)
        if share and resource_group:
            table[mount.relative_mount_path] = ShareLocation(resource_group, mount.account_name, share, "")
    return table


