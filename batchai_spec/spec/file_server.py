"""A Batch AI file server: one NFS server VM with RAID-0 data disks, mounted by clusters and jobs by name."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from batchai_spec.spec.base import NonEmptyText, ResourceName, SpecModel
from batchai_spec.spec.cluster import UserAccount
from batchai_spec.spec.mounts import ArmResourceId

MAX_ALLOWED_IP_RANGES = 400  # Batch AI's limit on sshConfiguration.publicIPsToAllow


class DataDisks(SpecModel):
    disk_size_in_gb: Annotated[int, Field(ge=1)] = Field(description="Size of each data disk in GB.")
    disk_count: Annotated[int, Field(ge=1)] = Field(description="Number of data disks; more than one are joined in RAID 0.")
    storage_account_type: Literal["Standard_LRS", "Premium_LRS"] = Field(
        description="Disk storage: Standard_LRS, or Premium_LRS (only with a VM size that supports premium storage)."
    )
    caching_type: Literal["none", "readonly", "readwrite"] = Field(
        "none", description="Host caching of the disks (other than none only with a VM size that supports premium storage)."
    )


class FileServer(SpecModel):
    name: ResourceName = Field(description="File server name, unique in the workspace (letters, digits, -, _; 1-64).")
    vm_size: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]+$")] = Field(
        description="Azure VM size of the server, e.g. STANDARD_D2_V2."
    )
    user_account: UserAccount = Field(description="Administrator account on the server (SSH on port 22).")
    data_disks: DataDisks = Field(description="The data disks the server exports over NFS.")
    subnet_id: ArmResourceId | None = Field(
        None, description="ARM id of a virtual network subnet for the server; a new network is made when absent."
    )
    public_ips_to_allow: Annotated[tuple[NonEmptyText, ...], Field(max_length=MAX_ALLOWED_IP_RANGES)] = Field(
        (), description="Source IP ranges SSH is allowed from (at most 400); all ('*', the service's default) when empty."
    )
