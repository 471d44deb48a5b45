"""Volumes mounted on cluster nodes (node setup) or for one job: Azure File shares, blob containers, NFS servers."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, StringConstraints, model_validator

from batchai_spec.spec.base import FileMode, LocatedValueError, NonEmptyText, RelativePath, SpecModel, ensure_unique
from batchai_spec.spec.storage import ShareName, StorageAccountName

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
        return self


class AzureBlobFileSystemMount(SpecModel):
    account_name: StorageAccountName = Field(description="Storage account of the container.")
    container_name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", min_length=3, max_length=63)] = Field(
        description="Blob container to mount with blobfuse."
    )
    account_key: SecretStr = Field(description="The storage account key (secret).")
    relative_mount_path: RelativePath = Field(description=RELATIVE_MOUNT_PATH)
    mount_options: str | None = Field(None, description="Extra blobfuse mount options.")


class FileServerMount(SpecModel):
    file_server_id: ArmResourceId = Field(description="ARM id of a Batch AI file server.")
    relative_mount_path: RelativePath = Field(description=RELATIVE_MOUNT_PATH)
    source_directory: str | None = Field(None, description="Directory of the server to mount; the whole server if absent.")
    mount_options: str | None = Field(None, description="Extra NFS mount options.")


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
        ensure_unique(
            (
                ((collection, index, "relative_mount_path"), mount.relative_mount_path)
                for collection in type(self).model_fields
                for index, mount in enumerate(getattr(self, collection))
            ),
            "relative_mount_path",
            case_sensitive=True,
        )
        return self
