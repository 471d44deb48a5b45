"""The whole spec: resource group, storage, workspace, file servers, clusters and experiments, and the references
between them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field, model_validator

from batchai_spec.spec.base import (
    KeyPath,
    Location,
    LocatedValueError,
    ResourceGroupName,
    ResourceName,
    SpecModel,
    Tags,
    did_you_mean,
    ensure_unique,
)
from batchai_spec.spec.cluster import Cluster
from batchai_spec.spec.file_server import FileServer
from batchai_spec.spec.job import Experiment, Job
from batchai_spec.spec.mounts import (
    JOB_MOUNT_ROOT,
    MOUNT_ROOT,
    MountVolumes,
    mount_table,
    mounted_storage_problem,
    split_mount_reference,
)
from batchai_spec.spec.storage import FileShare, Storage, path_problem


class ResourceGroup(SpecModel):
    name: ResourceGroupName = Field(description="Resource group name (letters, digits, -, _, ., parentheses; 1-90; not ending in '.').")
    location: Location = Field(description="Azure region of the resource group, e.g. eastus; the default of the other resources.")
    tags: Tags = Field({}, description="Tags of the resource group.")
    delete_on_destroy: bool = Field(
        False, description="true: destroy deletes the resource group too. Never deleted otherwise, even when the spec created it."
    )


class Workspace(SpecModel):
    name: ResourceName = Field(
        description="Batch AI workspace name (letters, digits, -, _; 1-64); on Azure Batch the Batch account's name "
        "(3-24 lowercase letters and digits)."
    )
    location: Location | None = Field(None, description="Azure region; defaults to the resource group's location.")
    tags: Tags = Field({}, description="Tags of the workspace (batchai-spec adds its ownership tags).")


class Spec(SpecModel):
    """A batchai-spec file: everything needed to train on Azure Batch AI or Azure Batch, reconciled by plan / apply /
    destroy."""

    model_config = SpecModel.model_config | {"title": "batchai-spec"}

    version: Literal[1] = Field(description="Version of the spec format: 1.")
    name: ResourceName = Field(description="Identity of the spec, recorded in ownership tags (letters, digits, -, _; 1-64).")
    service: Literal["batchai", "batch"] = Field(
        "batchai",
        description="Which Azure service realises the spec: batchai (the quickstart's own, retired 2019; the local "
        "emulator serves it) or batch (Azure Batch, alive today); `--service` overrides it.",
    )
    resource_group: ResourceGroup = Field(description="The resource group holding everything.")
    storage: Storage | None = Field(None, description="Storage account and file shares with their directories and uploads.")
    workspace: Workspace = Field(
        description="The Batch AI workspace holding file servers, clusters and experiments (on Azure Batch: the Batch account)."
    )
    file_servers: tuple[FileServer, ...] = Field((), description="NFS file servers that clusters and jobs mount by name.")
    clusters: tuple[Cluster, ...] = Field((), description="GPU clusters.")
    experiments: tuple[Experiment, ...] = Field((), description="Experiments and their jobs.")

    @model_validator(mode="after")
    def _references_resolve(self) -> Spec:
        ensure_unique(
            ((("file_servers", index, "name"), server.name) for index, server in enumerate(self.file_servers)), "file server name"
        )
        ensure_unique(((("clusters", index, "name"), cluster.name) for index, cluster in enumerate(self.clusters)), "cluster name")
        ensure_unique(
            ((("experiments", index, "name"), experiment.name) for index, experiment in enumerate(self.experiments)),
            "experiment name",
        )
        shares = [share.name for share in self.storage.file_shares] if self.storage else []
        servers = [server.name for server in self.file_servers]
        for loc, mounts in self._mount_volumes():
            for index, mount in enumerate(mounts.azure_file_shares):
                if mount.share is not None and mount.share not in shares:
                    raise LocatedValueError(
                        (*loc, "azure_file_shares", index, "share"),
                        f"share '{mount.share}' is not declared in storage.file_shares" + did_you_mean(mount.share, shares),
                    )
            for index, mount in enumerate(mounts.file_servers):
                if mount.file_server is not None and mount.file_server not in servers:
                    raise LocatedValueError(
                        (*loc, "file_servers", index, "file_server"),
                        f"file server '{mount.file_server}' is not declared in file_servers" + did_you_mean(mount.file_server, servers),
                    )
        clusters = {cluster.name.lower(): cluster for cluster in self.clusters}
        for experiment_index, experiment in enumerate(self.experiments):
            for job_index, job in enumerate(experiment.jobs):
                loc = ("experiments", experiment_index, "jobs", job_index)
                cluster = clusters.get(job.cluster.lower())
                if cluster is None:
                    raise LocatedValueError(
                        (*loc, "cluster"),
                        f"cluster '{job.cluster}' is not declared in clusters" + did_you_mean(job.cluster, (c.name for c in self.clusters)),
                    )
                if job.node_count > cluster.scale.max_nodes:
                    raise LocatedValueError(
                        (*loc, "node_count"), f"the job needs {job.node_count} nodes; cluster '{cluster.name}' scales to at most {cluster.scale.max_nodes}"
                    )
                self._check_job_output_storage(loc, job, cluster)
        return self

    def _check_job_output_storage(self, loc: KeyPath, job: Job, cluster: Cluster) -> None:
        """Batch AI writes a job's stdout/stderr and output directories to, and lists them from, an Azure File share
        or blob container that the job's cluster or the job itself mounts: $AZ_BATCHAI_MOUNT_ROOT/NAME[/SUB/PATH]
        or $AZ_BATCHAI_JOB_MOUNT_ROOT/NAME[/SUB/PATH]. Anything else (a local path, an unknown mount) is refused."""
        cluster_index = next(index for index, candidate in enumerate(self.clusters) if candidate is cluster)
        owners = {MOUNT_ROOT: f"cluster {cluster.name}", JOB_MOUNT_ROOT: "the job"}
        mounts = [
            *mount_table(cluster.node_setup.mount_volumes if cluster.node_setup else None, MOUNT_ROOT, owners[MOUNT_ROOT]),
            *mount_table(job.mount_volumes, JOB_MOUNT_ROOT, owners[JOB_MOUNT_ROOT]),
        ]
        none_hint = (
            f"mount an Azure File share or blob container in clusters[{cluster_index}].node_setup.mount_volumes (then "
            "$AZ_BATCHAI_MOUNT_ROOT/<its relative_mount_path>) or in the job's mount_volumes ($AZ_BATCHAI_JOB_MOUNT_ROOT/...)"
        )
        checks = [(("std_out_err_path_prefix",), job.std_out_err_path_prefix, "a job's stdout and stderr")]
        checks += [
            (("output_directories", index, "path_prefix"), output.path_prefix, "a job's output directories")
            for index, output in enumerate(job.output_directories)
        ]
        for key, path, what in checks:
            problem = mounted_storage_problem(path, mounts, owners, what, listable_only=True, none_hint=none_hint)
            if problem:
                raise LocatedValueError((*loc, *key), problem)
        for index, output in enumerate(job.output_directories):
            suffix = (output.path_suffix or "").rstrip("/")
            root, name, _ = split_mount_reference(output.path_prefix) or ("", "", "")
            kind = next((mount.kind for mount in mounts if (mount.root, mount.name) == (root, name)), "")
            problem = suffix and path_problem(suffix, azure_files=kind == "azure_file_shares")
            if problem:
                raise LocatedValueError((*loc, "output_directories", index, "path_suffix"), problem)

    def _mount_volumes(self) -> Iterator[tuple[KeyPath, MountVolumes]]:
        for index, cluster in enumerate(self.clusters):
            if cluster.node_setup and cluster.node_setup.mount_volumes:
                yield ("clusters", index, "node_setup", "mount_volumes"), cluster.node_setup.mount_volumes
        for experiment_index, experiment in enumerate(self.experiments):
            for job_index, job in enumerate(experiment.jobs):
                if job.mount_volumes:
                    yield ("experiments", experiment_index, "jobs", job_index, "mount_volumes"), job.mount_volumes

    def cluster(self, name: str) -> Cluster:
        """The cluster of that name (names are case-insensitive, like ARM's)."""
        for cluster in self.clusters:
            if cluster.name.lower() == name.lower():
                return cluster
        raise KeyError(name)

    def file_share(self, name: str) -> FileShare:
        """The file share of that name in this spec's storage."""
        for share in self.storage.file_shares if self.storage else ():
            if share.name == name:
                return share
        raise KeyError(name)

    @property
    def workspace_location(self) -> str:
        return self.workspace.location or self.resource_group.location

    @property
    def storage_location(self) -> str | None:
        return (self.storage.account.location or self.resource_group.location) if self.storage else None
