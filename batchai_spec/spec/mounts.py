"""Volumes mounted on cluster nodes (node setup) or for one job: Azure File shares, blob containers, NFS servers."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, StringConstraints, model_validator

from batchai_spec.spec.base import (
    SIMILARITY,
    FileMode,
    LocatedValueError,
    NonEmptyText,
    RelativePath,
    ResourceName,
    SpecModel,
    ensure_unique,
)
from batchai_spec.spec.storage import ShareName, StorageAccountName, name_problem, path_problem

ArmResourceId = Annotated[str, StringConstraints(pattern=r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/.+$")]
RELATIVE_MOUNT_PATH = "Path of the mount below $AZ_BATCHAI_MOUNT_ROOT (cluster) or $AZ_BATCHAI_JOB_MOUNT_ROOT (job)."


class AzureFileShareMount(SpecModel):
    share: ShareName | None = Field(
        None, description="A share declared in this spec's storage (its account key is read from Azure at apply time)."
    )
    account_name: StorageAccountName | None = Field(None, description="External share: its storage account.")
    azure_file_url: Annotated[str, StringConstraints(pattern=r"^https://[^/]+/[a-z0-9-]+/?$")] | None = Field(
        None, description="External share: its URL, https://ACCOUNT.file.core.windows.net/SHARE."
    )
    account_key: SecretStr | None = Field(None, description="External share: the storage account key (secret).")
    relative_mount_path: RelativePath = Field(description=RELATIVE_MOUNT_PATH)
    file_mode: FileMode = Field("0777", description="Octal permissions of mounted files.")
    directory_mode: FileMode = Field("0777", description="Octal permissions of mounted directories.")

    @model_validator(mode="after")
    def _declared_or_external(self) -> AzureFileShareMount:
        external = {"account_name": self.account_name, "azure_file_url": self.azure_file_url, "account_key": self.account_key}
        given = [key for key, value in external.items() if value is not None]
        if self.share is not None and given:
            raise LocatedValueError((given[0],), "give either `share` (a share of this spec) or an external share's keys, not both")
        if self.share is None and len(given) < len(external):
            missing = [key for key in external if key not in given]
            raise LocatedValueError(
                (), f"give `share` (a share of this spec), or all of account_name, azure_file_url, account_key (missing: {', '.join(missing)})"
            )
        if self.azure_file_url is not None and self.account_name is not None:
            endpoint = f"{self.account_name}.file.core.windows.net"
            if (urlsplit(self.azure_file_url).hostname or "").lower() != endpoint:
                raise LocatedValueError(
                    ("azure_file_url",),
                    f"expected https://{endpoint}/SHARE: the file endpoint of account_name '{self.account_name}'",
                )
        return self

    @property
    def share_name(self) -> str:
        """The mounted share's name: this spec's share, or the last component of an external share's URL."""
        return self.share or (self.azure_file_url or "").rstrip("/").rsplit("/", 1)[-1]


class AzureBlobFileSystemMount(SpecModel):
    account_name: StorageAccountName = Field(description="Storage account of the container.")
    container_name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", min_length=3, max_length=63)] = Field(
        description="Blob container to mount with blobfuse."
    )
    account_key: SecretStr = Field(description="The storage account key (secret).")
    relative_mount_path: RelativePath = Field(description=RELATIVE_MOUNT_PATH)
    mount_options: str | None = Field(None, description="Extra blobfuse mount options.")


class FileServerMount(SpecModel):
    file_server: ResourceName | None = Field(None, description="A file server declared in this spec's file_servers.")
    file_server_id: ArmResourceId | None = Field(None, description="External file server: the ARM id of a Batch AI file server.")
    relative_mount_path: RelativePath = Field(description=RELATIVE_MOUNT_PATH)
    source_directory: str | None = Field(None, description="Directory of the server to mount; the whole server if absent.")
    mount_options: str | None = Field(None, description="Extra NFS mount options.")

    @model_validator(mode="after")
    def _declared_or_external(self) -> FileServerMount:
        if self.file_server is not None and self.file_server_id is not None:
            raise LocatedValueError(
                ("file_server_id",), "give either `file_server` (a file server of this spec) or `file_server_id`, not both"
            )
        if self.file_server is None and self.file_server_id is None:
            raise LocatedValueError(
                (), "give `file_server` (a file server of this spec) or `file_server_id` (an external file server's ARM id)"
            )
        return self

    @property
    def server_name(self) -> str:
        """The mounted server's name: this spec's file server, or the last component of an external one's id."""
        return self.file_server or (self.file_server_id or "").rstrip("/").rsplit("/", 1)[-1]


class UnmanagedFileSystemMount(SpecModel):
    mount_command: NonEmptyText = Field(description="Mount command; the service appends the mount path to it.")
    relative_mount_path: RelativePath = Field(description=RELATIVE_MOUNT_PATH)


class MountVolumes(SpecModel):
    azure_file_shares: tuple[AzureFileShareMount, ...] = Field((), description="Azure File shares to mount.")
    azure_blob_file_systems: tuple[AzureBlobFileSystemMount, ...] = Field((), description="Blob containers to mount.")
    file_servers: tuple[FileServerMount, ...] = Field((), description="Batch AI file servers (NFS) to mount.")
    unmanaged_file_systems: tuple[UnmanagedFileSystemMount, ...] = Field((), description="Any file system with a mount command.")

    @model_validator(mode="after")
    def _unique_mount_paths(self) -> MountVolumes:
        paths = [
            ((collection, index, "relative_mount_path"), mount.relative_mount_path)
            for collection in type(self).model_fields
            for index, mount in enumerate(getattr(self, collection))
        ]
        for loc, path in paths:
            # Batch AI mounts each volume at one directory of the mount root: $AZ_BATCHAI_MOUNT_ROOT/NAME.
            if "/" in path:
                raise LocatedValueError(
                    loc,
                    "expected a single directory name, without '/': Batch AI mounts each volume at "
                    "$AZ_BATCHAI_MOUNT_ROOT/NAME (cluster) or $AZ_BATCHAI_JOB_MOUNT_ROOT/NAME (job)",
                )
            problem = name_problem(path, azure_files=False)
            if problem:
                raise LocatedValueError(loc, problem)
        ensure_unique(paths, "relative_mount_path", case_sensitive=True)
        return self

    def mounted(self) -> Iterator[tuple[str, str, str]]:
        """(relative_mount_path, kind, what is mounted there) per mount; kind is a MountVolumes collection."""
        for share in self.azure_file_shares:
            yield share.relative_mount_path, "azure_file_shares", f"Azure File share {share.share_name}"
        for container in self.azure_blob_file_systems:
            yield container.relative_mount_path, "azure_blob_file_systems", f"blob container {container.container_name}"
        for server in self.file_servers:
            yield server.relative_mount_path, "file_servers", f"file server {server.server_name}"
        for system in self.unmanaged_file_systems:
            yield system.relative_mount_path, "unmanaged_file_systems", "unmanaged file system"


MOUNT_ROOT = "AZ_BATCHAI_MOUNT_ROOT"
JOB_MOUNT_ROOT = "AZ_BATCHAI_JOB_MOUNT_ROOT"


@dataclass(frozen=True)
class Mount:
    """One volume as a node sees it: $ROOT/NAME."""

    root: str  # MOUNT_ROOT (cluster mounts) or JOB_MOUNT_ROOT (the job's own)
    name: str  # relative_mount_path
    kind: str  # the MountVolumes collection: azure_file_shares, azure_blob_file_systems, ...
    what: str  # e.g. "Azure File share data"
    owner: str  # e.g. "cluster gpu", "the job"

    @property
    def listable(self) -> bool:
        """Batch AI lists job output files only from Azure File shares and blob containers."""
        return self.kind in ("azure_file_shares", "azure_blob_file_systems")

    def __str__(self) -> str:
        return f"${self.root}/{self.name} ({self.what}, mounted by {self.owner})"


def mount_table(volumes: MountVolumes | None, root: str, owner: str) -> list[Mount]:
    return [Mount(root, name, kind, what, owner) for name, kind, what in (volumes.mounted() if volumes else ())]


def split_mount_reference(path: str) -> tuple[str, str, str] | None:
    """(root variable, mount name, rest) of `$ROOT/NAME/rest` or `${ROOT}/NAME/rest`; None for any other path."""
    for root in (MOUNT_ROOT, JOB_MOUNT_ROOT):
        for spelling in (f"${root}/", f"${{{root}}}/"):
            if path.startswith(spelling):
                name, _, rest = path[len(spelling) :].partition("/")
                return root, name, rest
    return None


def mounted_storage_problem(
    path: str, mounts: list[Mount], owners: dict[str, str], what: str, *, listable_only: bool, none_hint: str
) -> str | None:
    """Why `path` is not on one of `mounts` (where Batch AI can write `what`), or None.

    `owners`: who mounts under each root variable that is defined there (e.g. {MOUNT_ROOT: "cluster gpu"}).
    `listable_only`: only Azure File shares and blob containers, the storage Batch AI lists job output files from.
    `none_hint` says where to mount one when no mount qualifies.
    """
    usable = [mount for mount in mounts if mount.listable or not listable_only]
    storage = "an Azure File share or blob container" if listable_only else "a volume"
    if usable:
        hint = "start it with " + " or ".join(str(mount) for mount in usable) + ", optionally followed by /SUB/PATH"
    else:
        hint = f"none is mounted: {none_hint}"
    reference = split_mount_reference(path)
    if reference is None or reference[0] not in owners:
        return f"'{path}' is not on mounted storage; Batch AI writes {what} only to {storage} mounted for it: {hint}"
    root, name, rest = reference
    mount = next((mount for mount in mounts if (mount.root, mount.name) == (root, name)), None)
    if mount is None:
        close = difflib.get_close_matches(name, [m.name for m in mounts if m.root == root], n=1, cutoff=SIMILARITY)
        suggestion = f" (did you mean ${root}/{close[0]}?)" if close else ""
        return f"${root}/{name} is not a volume mounted by {owners[root]}{suggestion}; {hint}"
    if listable_only and not mount.listable:
        article = "an" if mount.what[0] in "AEIOUaeiou" else "a"
        return (
            f"${root}/{name} is {article} {mount.what}; Batch AI lists job output files only from Azure File shares "
            f"and blob containers, so {what} must be on one: {hint}"
        )
    rest = rest.rstrip("/")
    if rest.startswith("/"):
        problem = "the path has an empty name (a doubled '/')"
    else:
        problem = rest and path_problem(rest, azure_files=mount.kind == "azure_file_shares")
    if problem:
        return f"the path below ${root}/{name}: {problem}"
    return None
