"""A Batch AI cluster: VM size and priority, scaling, OS image, admin account and node setup."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, StringConstraints, model_validator

from batchai_spec.spec.base import EnvName, LocatedValueError, NonEmptyText, ResourceName, SpecModel
from batchai_spec.spec.mounts import MOUNT_ROOT, ArmResourceId, MountVolumes, mount_table, mounted_storage_problem

MAX_NODES = 100  # Batch AI's maximum cluster size.
# STANDARD_A0 / BASIC_A0 and the premium-storage-only series (DS, DSv2, GS) cannot host Batch AI nodes.
_REFUSED_VM_SIZE = re.compile(r"^(?:basic_a0$|standard_(?:a0|ds\d|gs\d))", re.IGNORECASE)

NodeCount = Annotated[int, Field(ge=0, le=MAX_NODES)]


class ManualScale(SpecModel):
    target_node_count: NodeCount = Field(description="Number of nodes to keep allocated (0-100).")
    node_deallocation_option: Literal["requeue", "terminate", "waitforjobcompletion"] = Field(
        "requeue", description="What happens to running jobs when nodes are removed by a scale-down."
    )


class AutoScale(SpecModel):
    minimum_node_count: NodeCount = Field(description="Fewest nodes the service keeps (0-100).")
    maximum_node_count: Annotated[int, Field(ge=1, le=MAX_NODES)] = Field(description="Most nodes the service allocates (1-100).")
    initial_node_count: NodeCount = Field(0, description="Nodes allocated at creation only.")

    @model_validator(mode="after")
    def _ordered(self) -> AutoScale:
        if self.minimum_node_count > self.maximum_node_count:
            raise LocatedValueError(("minimum_node_count",), "minimum_node_count exceeds maximum_node_count")
        if self.initial_node_count > self.maximum_node_count:
            raise LocatedValueError(("initial_node_count",), "initial_node_count exceeds maximum_node_count")
        return self


class ScaleSettings(SpecModel):
    manual: ManualScale | None = Field(None, description="A fixed number of nodes. Exactly one of manual / auto.")
    auto: AutoScale | None = Field(None, description="Nodes follow the queued jobs' needs. Exactly one of manual / auto.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ScaleSettings:
        if (self.manual is None) == (self.auto is None):
            raise LocatedValueError((), "give exactly one of `manual` or `auto`")
        return self

    @property
    def max_nodes(self) -> int:
        return self.manual.target_node_count if self.manual else self.auto.maximum_node_count


class ImageReference(SpecModel):
    publisher: NonEmptyText = Field(description="Image publisher, e.g. Canonical.")
    offer: NonEmptyText = Field(description="Image offer, e.g. UbuntuServer.")
    sku: NonEmptyText = Field(description="Image SKU, e.g. 16.04-LTS.")
    version: NonEmptyText = Field("latest", description="Image version.")
    virtual_machine_image_id: ArmResourceId | None = Field(
        None, description="ARM id of a custom image; publisher/offer/sku then describe its base image."
    )
    node_agent_sku_id: NonEmptyText | None = Field(
        None,
        description="Azure Batch only: the node agent SKU, e.g. batch.node.ubuntu 22.04; derived from a table of "
        "supported images when absent.",
    )


DEFAULT_IMAGE = ImageReference(publisher="Canonical", offer="UbuntuServer", sku="16.04-LTS", version="latest")


class UserAccount(SpecModel):
    admin_user_name: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_.-]*$", max_length=32)] = Field(
        description="Administrator account created on every node."
    )
    ssh_public_key: str | None = Field(None, description="SSH public key of the administrator.")
    admin_user_password: SecretStr | None = Field(
        None, description="Administrator password (secret; write-only, never returned by the service)."
    )

    @model_validator(mode="after")
    def _can_log_in(self) -> UserAccount:
        # The service refuses an account with neither (InvalidParameter on userAccountSettings).
        password = self.admin_user_password.get_secret_value() if self.admin_user_password else ""
        if not (self.ssh_public_key or "").strip() and not password:
            raise ValueError("give ssh_public_key or admin_user_password (or both), not empty")
        return self


class SetupTask(SpecModel):
    command_line: NonEmptyText = Field(description="Run as root in bash on every node after allocation or reboot; make it idempotent.")
    environment_variables: dict[EnvName, str] = Field({}, description="Environment variables of the setup task.")
    secrets: dict[EnvName, SecretStr] = Field({}, description="Secret environment variables of the setup task.")
    std_out_err_path_prefix: NonEmptyText = Field(description="Where the setup task's output goes, e.g. $AZ_BATCHAI_MOUNT_ROOT/share.")

    @model_validator(mode="after")
    def _distinct_names(self) -> SetupTask:
        for name in self.secrets:
            if name in self.environment_variables:
                raise LocatedValueError(("secrets", name, "[key]"), f"'{name}' is both an environment variable and a secret")
        return self


class PerformanceCounters(SpecModel):
    app_insights_component_id: ArmResourceId = Field(description="ARM id of the Application Insights component.")
    instrumentation_key: SecretStr | None = Field(None, description="Instrumentation key of the component (secret).")


class NodeSetup(SpecModel):
    setup_task: SetupTask | None = Field(None, description="Command run on every node when it joins the cluster.")
    mount_volumes: MountVolumes | None = Field(None, description="Volumes mounted on every node under $AZ_BATCHAI_MOUNT_ROOT.")
    performance_counters: PerformanceCounters | None = Field(None, description="Send node performance counters to Application Insights.")


class Cluster(SpecModel):
    name: ResourceName = Field(description="Cluster name, unique in the workspace (letters, digits, -, _; 1-64).")
    vm_size: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]+$")] = Field(
        description="Azure VM size, e.g. STANDARD_NC6 (not STANDARD_A0 nor a DS/DSv2/GS size)."
    )
    vm_priority: Literal["dedicated", "lowpriority"] = Field("dedicated", description="Dedicated or pre-emptible low-priority VMs.")
    scale: ScaleSettings = Field(description="Exactly one of `manual` or `auto`.")
    image: ImageReference | None = Field(
        None,
        description="OS image of the nodes; default: the service's own: Batch AI Ubuntu 16.04 LTS (Canonical UbuntuServer "
        "16.04-LTS), Azure Batch Ubuntu HPC 22.04 (microsoft-dsvm ubuntu-hpc 2204, node agent batch.node.ubuntu 22.04).",
    )
    user_account: UserAccount = Field(description="Administrator account on the nodes.")
    node_setup: NodeSetup | None = Field(None, description="Setup task, mounts and performance counters of the nodes.")
    subnet_id: ArmResourceId | None = Field(None, description="ARM id of a virtual network subnet for the nodes.")

    @model_validator(mode="after")
    def _usable_vm_size(self) -> Cluster:
        if _REFUSED_VM_SIZE.match(self.vm_size):
            raise LocatedValueError(("vm_size",), f"Batch AI cannot use VM size {self.vm_size} (STANDARD_A0, BASIC_A0 and DS/DSv2/GS sizes)")
        setup = self.node_setup
        if setup and setup.setup_task:
            owner = f"cluster {self.name}"
            problem = mounted_storage_problem(
                setup.setup_task.std_out_err_path_prefix,
                mount_table(setup.mount_volumes, MOUNT_ROOT, owner),
                {MOUNT_ROOT: owner},
                "the setup task's output",
                listable_only=False,
                none_hint="add one to node_setup.mount_volumes and start the path with "
                "$AZ_BATCHAI_MOUNT_ROOT/<its relative_mount_path>",
            )
            if problem:
                raise LocatedValueError(("node_setup", "setup_task", "std_out_err_path_prefix"), problem)
        return self
