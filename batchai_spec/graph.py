"""The desired state: a spec becomes a graph of resources with addresses, dependencies and desired bodies.

Desired bodies are plain dicts in the shape of the Azure SDK models' attributes (snake_case, as `Model.as_dict()`
returns them), with server defaults filled in, so that a live read normalised the same way compares equal.
Write-only values are `Sensitive`. This module knows the spec, never the SDKs.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Mapping, TypeVar

from batchai_spec.file_hashes import sha256_of
from batchai_spec.sensitive import Sensitive
from batchai_spec.spec import LoadedSpec, resolve_uploads
from batchai_spec.spec.storage import self_and_parents

# Apply order; destroy walks it backwards.
KINDS = (
    "resource_group",
    "storage_account",
    "file_share",
    "directory",
    "file",
    "workspace",
    "cluster",
    "experiment",
    "job",
)

DEFAULT_IMAGE = {"publisher": "Canonical", "offer": "UbuntuServer", "sku": "16.04-LTS", "version": "latest"}
TOOLKIT_ATTRIBUTES = {
    "cntk": "cntk_settings",
    "pytorch": "py_torch_settings",
    "tensorflow": "tensor_flow_settings",
    "caffe": "caffe_settings",
    "caffe2": "caffe2_settings",
    "chainer": "chainer_settings",
    "custom_toolkit": "custom_toolkit_settings",
    "custom_mpi": "custom_mpi_settings",
    "horovod": "horovod_settings",
}
_MOUNT_REFERENCE = re.compile(r"^\$(?:\{)?(AZ_BATCHAI_MOUNT_ROOT|AZ_BATCHAI_JOB_MOUNT_ROOT)(?:\})?/([^/]+)(?:/(.*))?$")
_DIRECTORY_REFERENCE = re.compile(r"^\$(?:\{)?AZ_BATCHAI_INPUT_([A-Za-z0-9_]+)(?:\})?(?:/(.*))?$")
T = TypeVar("T")


@dataclass(frozen=True)
class Resource:
    kind: str
    address: str
    # Identifiers the adapters need: resource_group, account, share, path, workspace, cluster, experiment, job.
    ids: dict[str, str]
    # None for a resource the spec only references (an existing storage account): read, never changed.
    desired: dict[str, Any] | None
    depends_on: tuple[str, ...] = ()
    # Key path of the declaration in the spec file, for error locations.
    spec_path: tuple[Any, ...] = ()
    # Kind-specific facts that are not part of the body: a file's local source, a job's input files.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def managed(self) -> bool:
        return self.desired is not None


@dataclass
class Graph:
    spec_name: str
    resources: dict[str, Resource]
    # file:line:column of a key path of the spec, for errors found at plan time.
    locate: Callable[[tuple[Any, ...]], str] = lambda path: "spec"

    def declared_at(self, address: str) -> str:
        return self.locate(self.resources[address].spec_path)

    def __iter__(self):
        return iter(self.resources.values())

    def by_kind(self, kind: str) -> list[Resource]:
        return [resource for resource in self.resources.values() if resource.kind == kind]



def canonical_location(value: str | None) -> str | None:
    """ARM locations compare without case or spaces ('East US' is 'eastus')."""
    return value.replace(" ", "").lower() if value else value


def azure_file_url(account: str, share: str) -> str:
    """The share URL a cluster mounts, in Azure's form (the emulator accepts it too, so plans match across targets)."""
    return f"https://{account}.file.core.windows.net/{share}"


def cluster_id(subscription_id: str, resource_group: str, workspace: str, cluster: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.BatchAI"
        f"/workspaces/{workspace}/clusters/{cluster}"
    )


def mount_table(volumes) -> dict[str, str]:
    """relative mount path -> share name, for the shares of this spec a mount list (of the spec) makes visible."""
    if volumes is None:
        return {}
    return {mount.relative_mount_path: mount.share for mount in volumes.azure_file_shares if mount.share}


def job_mounts(cluster, job) -> dict[str, dict[str, str]]:
    """The mount tables a job's paths are read with: `$AZ_BATCHAI_MOUNT_ROOT` (its cluster's mounts) and
    `$AZ_BATCHAI_JOB_MOUNT_ROOT` (its own), each relative mount path -> share of this spec."""
    return {
        "AZ_BATCHAI_MOUNT_ROOT": mount_table(cluster.node_setup.mount_volumes if cluster.node_setup else None),
        "AZ_BATCHAI_JOB_MOUNT_ROOT": mount_table(job.mount_volumes),
    }


def share_path(path: str, mounts: Mapping[str, Mapping[str, T]]) -> tuple[T, str] | None:
    """`$AZ_BATCHAI_MOUNT_ROOT/afs/a/b` -> (what the table holds for mount `afs`, 'a/b'), for tables as
    `job_mounts` returns (or any value per relative mount path); None for a path on no mount of the tables."""
    match = _MOUNT_REFERENCE.match(path.rstrip("/"))
    if not match:
        return None
    share = mounts.get(match.group(1), {}).get(match.group(2))
    if share is None:
        return None
    return share, (match.group(3) or "").strip("/")


def _dump(model: Any) -> Any:
    """A spec model as a plain dict with secrets kept as Sensitive."""
    from pydantic import BaseModel, SecretStr

    if isinstance(model, SecretStr):
        return Sensitive(model.get_secret_value())
    if isinstance(model, BaseModel):
        return {name: _dump(getattr(model, name)) for name in type(model).model_fields}
    if isinstance(model, dict):
        return {key: _dump(value) for key, value in model.items()}
    if isinstance(model, (list, tuple)):
        return [_dump(value) for value in model]
    return model


def prune(tree: Any) -> Any:
    """Drop None values and empty collections: the service omits unset properties instead of sending null."""
    if isinstance(tree, dict):
        pruned = {key: prune(value) for key, value in tree.items()}
        return {key: value for key, value in pruned.items() if value not in (None, {}, [])}
    if isinstance(tree, list):
        return [prune(value) for value in tree]
    return tree


def _named_list(mapping: dict[str, Any] | None, value_key: str = "value") -> list[dict[str, Any]]:
    return [{"name": name, value_key: value} for name, value in sorted((mapping or {}).items())]


def _secret_list(mapping: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [{"name": name, "value": _dump(value)} for name, value in sorted((mapping or {}).items())]


class _Builder:
    def __init__(self, loaded: LoadedSpec, subscription_id: str, sha256: Callable[[Path], str], require_sources: bool):
        self.loaded = loaded
        self.sha256 = sha256
        self.require_sources = require_sources
        self.spec = loaded.spec
        self.subscription_id = subscription_id
        self.resources: dict[str, Resource] = {}
        self.rg = self.spec.resource_group.name
        self.account = self.spec.storage.account.name if self.spec.storage else None
        # share path -> file address, for jobs that read them
        self.files_by_share: dict[str, list[Resource]] = {}

    def add(self, resource: Resource) -> Resource:
        self.resources[resource.address] = resource
        return resource

    def build(self) -> Graph:
        spec = self.spec
        rg_address = f"resource_group.{self.rg}"
        self.add(
            Resource(
                "resource_group",
                rg_address,
                {"resource_group": self.rg},
                {"location": canonical_location(spec.resource_group.location), "tags": dict(spec.resource_group.tags or {})},
                spec_path=("resource_group",),
                extra={"delete_on_destroy": spec.resource_group.delete_on_destroy},
            )
        )
        if spec.storage:
            self._storage(rg_address)
        self._batchai(rg_address)
        return Graph(spec.name, self.resources, self.loaded.location)

    def _storage(self, rg_address: str) -> None:
        storage = self.spec.storage
        account = storage.account
        account_address = f"storage_account.{account.name}"
        self.add(
            Resource(
                "storage_account",
                account_address,
                {"resource_group": self.rg, "account": account.name},
                None
                if account.existing
                else {
                    "location": canonical_location(self.spec.storage_location),
                    "sku": account.sku,
                    "kind": account.kind,
                    "tags": {},
                },
                depends_on=(rg_address,),
                spec_path=("storage", "account"),
            )
        )
        # Commands that only read or delete what exists need no upload source on this machine.
        skip_missing = None if self.require_sources else (lambda missing: None)
        uploads = resolve_uploads(self.spec, self.loaded.spec_dir, error_at=self.loaded.error, on_missing=skip_missing)
        for index, share in enumerate(storage.file_shares):
            share_address = f"file_share.{share.name}"
            self.add(
                Resource(
                    "file_share",
                    share_address,
                    {"resource_group": self.rg, "account": account.name, "share": share.name},
                    {"quota": share.quota_gb},
                    depends_on=(account_address,),
                    spec_path=("storage", "file_shares", index),
                )
            )
            directories = set(share.implied_directories())
            share_uploads = [upload for upload in uploads if upload.share == share.name]
            for upload in share_uploads:  # files a glob found in sub-directories
                directories.update(self_and_parents(PurePosixPath(upload.destination).parent))
            for directory in sorted(directories):
                parent = posixpath.dirname(directory)
                self.add(
                    Resource(
                        "directory",
                        f"directory.{share.name}/{directory}",
                        {"account": account.name, "share": share.name, "path": directory},
                        {},
                        depends_on=(f"directory.{share.name}/{parent}" if parent else share_address,),
                        spec_path=("storage", "file_shares", index, "directories"),
                    )
                )
            for upload in share_uploads:
                parent = posixpath.dirname(upload.destination)
                size = upload.local_path.stat().st_size
                resource = self.add(
                    Resource(
                        "file",
                        f"file.{share.name}/{upload.destination}",
                        {"account": account.name, "share": share.name, "path": upload.destination},
                        {"sha256": self.sha256(upload.local_path), "size": size},
                        depends_on=(f"directory.{share.name}/{parent}" if parent else share_address,),
                        spec_path=upload.loc,
                        extra={"source": upload.local_path},
                    )
                )
                self.files_by_share.setdefault(share.name, []).append(resource)

    def _batchai(self, rg_address: str) -> None:
        spec = self.spec
        workspace = spec.workspace.name
        workspace_address = f"workspace.{workspace}"
        self.add(
            Resource(
                "workspace",
                workspace_address,
                {"resource_group": self.rg, "workspace": workspace},
                {
                    "location": canonical_location(spec.workspace_location),
                    "tags": dict(spec.workspace.tags or {}),
                },
                depends_on=(rg_address,),
                spec_path=("workspace",),
            )
        )
        for index, cluster in enumerate(spec.clusters):
            body = self._cluster_body(cluster)
            self.add(
                Resource(
                    "cluster",
                    f"cluster.{cluster.name}",
                    {"resource_group": self.rg, "workspace": workspace, "cluster": cluster.name},
                    body,
                    depends_on=(workspace_address, *self._mount_dependencies(cluster.node_setup)),
                    spec_path=("clusters", index),
                )
            )
        for exp_index, experiment in enumerate(spec.experiments):
            experiment_address = f"experiment.{experiment.name}"
            self.add(
                Resource(
                    "experiment",
                    experiment_address,
                    {"resource_group": self.rg, "workspace": workspace, "experiment": experiment.name},
                    {},
                    depends_on=(workspace_address,),
                    spec_path=("experiments", exp_index),
                )
            )
            for job_index, job in enumerate(experiment.jobs):
                self._job(experiment.name, experiment_address, job, ("experiments", exp_index, "jobs", job_index))

    # -- clusters -------------------------------------------------------------------------------------------------

    def _cluster_body(self, cluster) -> dict[str, Any]:
        scale = cluster.scale
        if scale.manual is not None:
            scale_settings = {"manual": _dump(scale.manual)}
        else:
            scale_settings = {"auto_scale": _dump(scale.auto)}
        image = _dump(cluster.image) if cluster.image else dict(DEFAULT_IMAGE)
        user = cluster.user_account
        body = {
            "vm_size": cluster.vm_size.upper(),
            "vm_priority": cluster.vm_priority,
            "scale_settings": scale_settings,
            "virtual_machine_configuration": {"image_reference": image},
            "user_account_settings": {
                "admin_user_name": user.admin_user_name,
                "admin_user_ssh_public_key": user.ssh_public_key,
                "admin_user_password": _dump(user.admin_user_password),
            },
            "node_setup": self._node_setup(cluster.node_setup),
            "subnet": {"id": cluster.subnet_id} if cluster.subnet_id else None,
        }
        return prune(body)

    def _node_setup(self, node_setup) -> dict[str, Any] | None:
        if node_setup is None:
            return None
        setup_task = None
        if node_setup.setup_task is not None:
            task = node_setup.setup_task
            setup_task = {
                "command_line": task.command_line,
                "environment_variables": _named_list(task.environment_variables),
                "secrets": _secret_list(task.secrets),
                "std_out_err_path_prefix": task.std_out_err_path_prefix,
            }
        counters = None
        if node_setup.performance_counters is not None:
            pc = node_setup.performance_counters
            counters = {
                "app_insights_reference": {
                    "component": {"id": pc.app_insights_component_id},
                    "instrumentation_key": _dump(pc.instrumentation_key),
                }
            }
        return {
            "setup_task": setup_task,
            "mount_volumes": self._mount_volumes(node_setup.mount_volumes),
            "performance_counters_settings": counters,
        }

    def _mount_volumes(self, volumes) -> dict[str, Any] | None:
        if volumes is None:
            return None
        shares = []
        for mount in volumes.azure_file_shares:
            if mount.share is not None:
                account = self.account
                url = azure_file_url(account, mount.share)
                key = Sensitive(None, derived_from=f"storage_account_key:{account}")
            else:
                account, url, key = mount.account_name, mount.azure_file_url, _dump(mount.account_key)
            shares.append(
                {
                    "account_name": account,
                    "azure_file_url": url,
                    "credentials": {"account_key": key},
                    "relative_mount_path": mount.relative_mount_path,
                    "file_mode": mount.file_mode,
                    "directory_mode": mount.directory_mode,
                }
            )
        blobs = [
            {
                "account_name": mount.account_name,
                "container_name": mount.container_name,
                "credentials": {"account_key": _dump(mount.account_key)},
                "relative_mount_path": mount.relative_mount_path,
                "mount_options": mount.mount_options,
            }
            for mount in volumes.azure_blob_file_systems
        ]
        servers = [
            {
                "file_server": {"id": mount.file_server_id},
                "relative_mount_path": mount.relative_mount_path,
                "source_directory": mount.source_directory,
                "mount_options": mount.mount_options,
            }
            for mount in volumes.file_servers
        ]
        unmanaged = [
            {"mount_command": mount.mount_command, "relative_mount_path": mount.relative_mount_path}
            for mount in volumes.unmanaged_file_systems
        ]
        return {
            "azure_file_shares": shares,
            "azure_blob_file_systems": blobs,
            "file_servers": servers,
            "unmanaged_file_systems": unmanaged,
        }

    def _mount_dependencies(self, node_setup) -> tuple[str, ...]:
        volumes = node_setup.mount_volumes if node_setup else None
        return tuple(f"file_share.{share}" for share in sorted(set(mount_table(volumes).values())))

    # -- jobs -----------------------------------------------------------------------------------------------------

    def _job(self, experiment: str, experiment_address: str, job, spec_path: tuple[Any, ...]) -> None:
        cluster = self.spec.cluster(job.cluster)
        toolkit_name, toolkit = job.toolkit
        container = None
        if job.container is not None:
            registry = job.container.registry
            container = {
                "image_source_registry": {
                    "image": job.container.image,
                    "server_url": registry.server_url if registry else None,
                    "credentials": {"username": registry.username, "password": _dump(registry.password)}
                    if registry and registry.username
                    else None,
                },
                "shm_size": job.container.shm_size,
            }
        settings = _dump(toolkit)
        if toolkit_name == "cntk" and settings.get("process_count") is None:
            settings["process_count"] = job.node_count  # the service fills it in so
        body = {
            "scheduling_priority": job.scheduling_priority,
            "cluster": {"id": cluster_id(self.subscription_id, self.rg, self.spec.workspace.name, cluster.name)},
            "mount_volumes": self._mount_volumes(job.mount_volumes),
            "node_count": job.node_count,
            "container_settings": container,
            TOOLKIT_ATTRIBUTES[toolkit_name]: settings,
            "job_preparation": {"command_line": job.job_preparation.command_line} if job.job_preparation else None,
            "std_out_err_path_prefix": job.std_out_err_path_prefix,
            "input_directories": [{"id": key, "path": path} for key, path in sorted(job.input_directories.items())],
            "output_directories": sorted(
                (_dump(directory) for directory in job.output_directories), key=lambda d: d["id"]
            ),
            "environment_variables": _named_list(job.environment_variables),
            "secrets": _secret_list(job.secrets),
            "constraints": {"max_wall_clock_time": _iso_duration(job.constraints.max_wall_clock_time)},
        }
        inputs = self._input_files(job, cluster)
        self.add(
            Resource(
                "job",
                f"job.{experiment}/{job.name}",
                {
                    "resource_group": self.rg,
                    "workspace": self.spec.workspace.name,
                    "experiment": experiment,
                    "job": job.name,
                },
                prune(body),
                depends_on=(experiment_address, f"cluster.{cluster.name}", *(f.address for f in inputs)),
                spec_path=spec_path,
                extra={
                    "input_files": tuple(f.address for f in inputs),
                    "inputs_digest": _inputs_digest(inputs),
                    "mounts": job_mounts(cluster, job),  # where its output paths lie (batchai_spec.azure.runs)
                },
            )
        )

    def _input_files(self, job, cluster) -> list[Resource]:
        """The uploaded files a job reads: those under its input directories, and those its scripts and command
        lines name, on the shares mounted for it."""
        mounts = job_mounts(cluster, job)
        paths = list(job.input_directories.values())
        _, toolkit = job.toolkit
        # Paths the job's commands name: script and config paths, and every word of its command lines.
        texts = [value for name, value in toolkit if isinstance(value, str) and name != "language_type"]
        if job.job_preparation is not None:
            texts.append(job.job_preparation.command_line)
        for word in (word for text in texts for word in text.split()):
            match = _DIRECTORY_REFERENCE.match(word)
            if match and match.group(1) in job.input_directories:
                word = posixpath.join(job.input_directories[match.group(1)], match.group(2) or "")
            paths.append(word)
        read: dict[str, Resource] = {}
        for path in paths:
            on_share = share_path(path, mounts)
            if on_share is None:
                continue
            share, prefix = on_share
            for file in self.files_by_share.get(share, []):
                file_path = file.ids["path"]
                if not prefix or file_path == prefix or file_path.startswith(prefix + "/"):
                    read[file.address] = file
        return [read[address] for address in sorted(read)]


def _iso_duration(value) -> str:
    import isodate

    return isodate.duration_isoformat(value)


def _inputs_digest(files: list[Resource]) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.address}\0{file.desired['sha256']}\n".encode())
    return digest.hexdigest()[:16]


def build_graph(
    loaded: LoadedSpec,
    subscription_id: str,
    sha256: Callable[[Path], str] = sha256_of,
    *,
    require_sources: bool = True,
) -> Graph:
    """The spec's desired resources in apply order (parents before children); `sha256` hashes upload sources.
    Without `require_sources`, uploads whose source is missing are left out instead of failing."""
    return _Builder(loaded, subscription_id, sha256, require_sources).build()
