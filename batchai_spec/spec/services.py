"""What a spec may hold on each service: the checks that depend on which service realises it (Batch AI or Azure
Batch), found at validate time with the key path of the offending value. SDK-free: `validate` runs it without the
service's packages.

An error stops every command for that service (validate, plan, apply, destroy...) with the located message and exit
code 1, like any other spec error; a warning is printed by `validate` and carried in plans.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batchai_spec.spec.base import KeyPath, format_key_path
from batchai_spec.spec.errors import MAX_LISTED_PROBLEMS, SpecError
from batchai_spec.spec.mounts import JOB_MOUNT_ROOT, split_mount_reference

if TYPE_CHECKING:
    from batchai_spec.spec.loader import LoadedSpec
    from batchai_spec.spec.model import Spec

# Supported Batch images (publisher, offer, sku; lower case) -> their node agent SKU (reference batch-api.md §6).
NODE_AGENTS = {
    ("microsoft-dsvm", "ubuntu-hpc", "2204"): "batch.node.ubuntu 22.04",
    ("microsoft-dsvm", "ubuntu-hpc", "2404"): "batch.node.ubuntu 24.04",
    ("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts"): "batch.node.ubuntu 22.04",
    ("canonical", "ubuntu-24_04-lts", "server"): "batch.node.ubuntu 24.04",
    ("microsoft-azure-batch", "ubuntu-server-container", "20-04-lts"): "batch.node.ubuntu 20.04",
    ("canonical", "0001-com-ubuntu-server-focal", "20_04-lts"): "batch.node.ubuntu 20.04",
    ("canonical", "ubuntuserver", "18.04-lts"): "batch.node.ubuntu 18.04",
    ("canonical", "ubuntuserver", "16.04-lts"): "batch.node.ubuntu 16.04",
}
# Ubuntu HPC 22.04: GPU drivers and a container runtime included; supported until June 2027 (Azure/Batch#200).
DEFAULT_BATCH_IMAGE = {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204", "version": "latest"}
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
# Azure Batch account names: 3-24 lowercase letters and digits (Microsoft.Batch/batchAccounts naming rules).
BATCH_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
_PER_POOL = "Azure Batch mounts file systems per pool: move it to the cluster's node_setup.mount_volumes"
_UNSUPPORTED_MOUNTS = {
    "azure_blob_file_systems": "blob container mounts (azure_blob_file_systems)",
    "file_servers": "file server mounts (file_servers)",
    "unmanaged_file_systems": "unmanaged file systems (unmanaged_file_systems)",
}


@dataclass(frozen=True)
class ServiceProblem:
    """Something `service` cannot realise (error) or realises differently than the spec reads (warning)."""

    path: KeyPath  # key path into the spec, as the loader's located errors use
    message: str
    error: bool = True


def problems(spec: Spec, service: str) -> list[ServiceProblem]:
    """Every problem of the spec on `service` ("batchai" or "batch"), in the spec's order."""
    return list(_batch(spec) if service == "batch" else _batchai(spec))


def _batchai(spec: Spec) -> Iterator[ServiceProblem]:
    for index, cluster in enumerate(spec.clusters):
        if cluster.image is not None and cluster.image.node_agent_sku_id is not None:
            yield ServiceProblem(
                ("clusters", index, "image", "node_agent_sku_id"),
                "node_agent_sku_id is for Azure Batch only (service: batch); Batch AI picks its node agent itself",
            )


def _batch(spec: Spec) -> Iterator[ServiceProblem]:
    if not BATCH_ACCOUNT_NAME.match(spec.workspace.name):
        yield ServiceProblem(
            ("workspace", "name"),
            f"'{spec.workspace.name}' cannot name a Batch account, which the workspace becomes on Azure Batch: "
            "3-24 lowercase letters and digits",
        )
    if spec.file_servers:
        yield ServiceProblem(
            ("file_servers",),
            "Batch AI's managed NFS file servers have no Azure Batch counterpart: mount an Azure file share of "
            "storage.file_shares instead",
        )
    own_shares = {share.name for share in spec.storage.file_shares} if spec.storage else set()
    for index, cluster in enumerate(spec.clusters):
        yield from _batch_cluster(("clusters", index), cluster, own_shares)
    for experiment_index, experiment in enumerate(spec.experiments):
        for job_index, job in enumerate(experiment.jobs):
            yield from _batch_job(("experiments", experiment_index, "jobs", job_index), job)


def _batch_cluster(loc: KeyPath, cluster, own_shares: set[str]) -> Iterator[ServiceProblem]:
    image = cluster.image
    if image is not None and image.node_agent_sku_id is None and image.virtual_machine_image_id is None:
        key = (image.publisher.lower(), image.offer.lower(), image.sku.lower())
        if key not in NODE_AGENTS:
            yield ServiceProblem(
                (*loc, "image"),
                f"no node agent SKU is known for {image.publisher}/{image.offer}/{image.sku}: set node_agent_sku_id "
                "(`az batch pool supported-images list` lists the pairs)",
            )
    if image is not None and image.virtual_machine_image_id is not None and image.node_agent_sku_id is None:
        yield ServiceProblem((*loc, "image", "virtual_machine_image_id"), "a custom image needs node_agent_sku_id on Azure Batch")
    if cluster.scale.auto is not None and cluster.scale.auto.initial_node_count:
        yield ServiceProblem(
            (*loc, "scale", "auto", "initial_node_count"),
            "Azure Batch auto-scale formulas have no initial count: the pool starts with the nodes its pending tasks need",
            error=False,
        )
    if cluster.vm_priority == "lowpriority":
        yield ServiceProblem(
            (*loc, "vm_priority"), "Azure Batch allocates Spot nodes for low-priority targets since March 2026", error=False
        )
    account = cluster.user_account
    if account.ssh_public_key:  # with a password too, the key is left out all the same
        yield ServiceProblem(
            (*loc, "user_account", "ssh_public_key"),
            "Azure Batch creates pool user accounts with a password only; the SSH key is not installed: log in with "
            "`az batch node user create --ssh-public-key`",
            error=False,
        )
    setup = cluster.node_setup
    mounts = setup.mount_volumes if setup else None
    for collection, what in _UNSUPPORTED_MOUNTS.items():
        if mounts is not None and getattr(mounts, collection):
            yield ServiceProblem(
                (*loc, "node_setup", "mount_volumes", collection), f"{what} are not supported on Azure Batch by batchai-spec yet"
            )
    if setup is not None and setup.performance_counters is not None:
        yield ServiceProblem(
            (*loc, "node_setup", "performance_counters"),
            "Azure Batch has no counterpart of Batch AI's performance counters: remove them",
        )
    for index, mount in enumerate(mounts.azure_file_shares if mounts else ()):
        if not _PLAIN_PATH.match(mount.relative_mount_path):
            yield ServiceProblem(
                (*loc, "node_setup", "mount_volumes", "azure_file_shares", index, "relative_mount_path"),
                "on Azure Batch the mount path is part of the tasks' command lines: use letters, digits, '.', '_', "
                "'-' and '/' only",
            )
    shares = [mount.share for mount in (mounts.azure_file_shares if mounts else ()) if mount.share in own_shares]
    if not shares:
        where = (*loc, "node_setup", "mount_volumes") if mounts is not None else (*loc, "node_setup") if setup else loc
        yield ServiceProblem(
            where,
            "Azure Batch runs jobs through a launcher that batchai-spec uploads to a file share the pool mounts: "
            "mount one of storage.file_shares in node_setup.mount_volumes",
        )


def _batch_job(loc: KeyPath, job) -> Iterator[ServiceProblem]:
    if job.mount_volumes is not None:
        yield ServiceProblem((*loc, "mount_volumes"), f"a job's own mount_volumes: {_PER_POOL}")
    paths: list[tuple[KeyPath, str]] = [(("std_out_err_path_prefix",), job.std_out_err_path_prefix)]
    paths += [(("output_directories", index, "path_prefix"), output.path_prefix) for index, output in enumerate(job.output_directories)]
    paths += [(("input_directories", name), path) for name, path in job.input_directories.items()]
    for key, path in paths:
        reference = split_mount_reference(path)
        if reference is not None and reference[0] == JOB_MOUNT_ROOT:
            yield ServiceProblem((*loc, *key), f"${JOB_MOUNT_ROOT} holds the job's own mounts: {_PER_POOL} and use $AZ_BATCHAI_MOUNT_ROOT")


def check(loaded: LoadedSpec, service: str) -> list[str]:
    """Raise a SpecError with every error of the spec on `service` (one located line each, as for other spec errors);
    return its warnings, located the same way (`file:line:column: key.path: message`)."""
    found = sorted(
        ((loaded.source_location(problem.path), problem) for problem in problems(loaded.spec, service)),
        key=lambda pair: (pair[0].line or 0, pair[0].column or 0),
    )
    errors = [_located(where, problem) for where, problem in found if problem.error]
    if errors:
        if len(errors) > MAX_LISTED_PROBLEMS:
            errors = [*errors[:MAX_LISTED_PROBLEMS], f"... and {len(errors) - MAX_LISTED_PROBLEMS} more problems"]
        raise SpecError("\n".join(errors))
    return [_located(where, problem) for where, problem in found if not problem.error]


def _located(where, problem: ServiceProblem) -> str:
    return f"{where}: {format_key_path(problem.path) or '(top level)'}: {problem.message}{where.note}"
