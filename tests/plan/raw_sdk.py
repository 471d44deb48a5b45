"""The fixture spec (tests/plan/fixture/spec.yaml) created by hand with the raw Azure SDKs, the way a person
following the spec would, plus the ownership conventions of batchai_spec/services/{azure,batchai}/ownership.py.

The bodies are written out here, not taken from the desired graph, so that a plan against them checks the
normalisation of live reads independently. Only the ownership fingerprints and input digests come from the graph:
they are the tool's own bookkeeping, which a person would copy from it.
"""

from __future__ import annotations

import secrets as random_tokens
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path

from azure.mgmt.batchai import BatchAI
from azure.mgmt.batchai import models as batchai
from azure.storage.fileshare import ShareClient

from batchai_spec.emulator.endpoint import Endpoint
from batchai_spec.graph import Graph
from batchai_spec.services.azure.ownership import OWNER_METADATA, SALT_TAG, SHA256_METADATA, owner_tags
from batchai_spec.services.batchai.ownership import (
    JOB_FINGERPRINT_ENV,
    JOB_INPUTS_ENV,
    JOB_OWNER_ENV,
    child_record,
    child_tag,
)
from batchai_spec.sensitive import fingerprints
from tests.emulator_clients import (
    StaticTokenCredential,
    arm_clients_options,
    resource_client_for,
    share_service_for,
    storage_client_for,
)

SPEC_NAME = "plan-fixture"
RG, ACCOUNT, WORKSPACE, EXPERIMENT, FILE_SERVER = "rg-plan", "planstore", "ws-plan", "exp", "nfs"
LOCATION = "westeurope"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIplanfixture plan-fixture"
# Local file -> path in the share `data`.
UPLOADS = {
    "code/train.py": "code/train.py",
    "inputs/solver.cfg": "inputs/solver.cfg",
    "inputs/train.txt": "inputs/train.txt",
}
DIRECTORIES = ("code", "inputs", "logs")


@dataclass
class RawFixture:
    endpoint: Endpoint
    graph: Graph  # only for the tool's bookkeeping: fingerprints of write-only values, input digests
    project: Path
    secrets: dict[str, str]
    salt: str = field(default_factory=lambda: random_tokens.token_hex(8))

    # -- clients ------------------------------------------------------------------------------------------------

    @cached_property
    def resource(self):
        return resource_client_for(self.endpoint)

    @cached_property
    def storage(self):
        return storage_client_for(self.endpoint)

    @cached_property
    def batchai(self) -> BatchAI:
        return BatchAI(StaticTokenCredential(self.endpoint.token), self.endpoint.subscription_id,
                       **arm_clients_options(self.endpoint))

    @cached_property
    def account_key(self) -> str:
        return self.storage.storage_accounts.list_keys(RG, ACCOUNT).keys[0].value

    def share(self, name: str) -> ShareClient:
        return share_service_for(self.endpoint, ACCOUNT, self.account_key).get_share_client(name)

    # -- everything ---------------------------------------------------------------------------------------------

    def create_all(self) -> None:
        self.create_resource_group()
        self.create_storage()
        self.create_workspace()
        self.create_file_server()
        self.create_cluster("gpu", self.gpu_cluster())
        self.create_cluster("cpu", self.cpu_cluster())
        self.create_experiment()
        for name, job in self.jobs().items():
            self.create_job(name, job)

    def create_resource_group(self) -> None:
        tags = {"team": "ml", "cost-center": "42", **owner_tags(SPEC_NAME)}
        self.resource.resource_groups.create_or_update(RG, {"location": LOCATION, "tags": tags})

    def create_storage(self) -> None:
        self.storage.storage_accounts.begin_create(
            RG, ACCOUNT,
            {"sku": {"name": "Standard_LRS"}, "kind": "Storage", "location": LOCATION, "tags": owner_tags(SPEC_NAME)},
        ).result()
        owner = {OWNER_METADATA: SPEC_NAME}
        data = self.share("data")
        data.create_share(quota=5, metadata=owner)
        self.share("scratch").create_share(quota=1, metadata=owner)
        for directory in DIRECTORIES:
            data.get_directory_client(directory).create_directory(metadata=owner)
        for local, remote in UPLOADS.items():
            self.upload(local, remote)

    def upload(self, local: str, remote: str, content: bytes | None = None, *, with_metadata: bool = True) -> None:
        """Upload a fixture file as the tool does (owner and sha256 metadata), or other content / no metadata."""
        data = (self.project / local).read_bytes() if content is None else content
        metadata = {OWNER_METADATA: SPEC_NAME, SHA256_METADATA: self.graph.resources[f"file.data/{remote}"].desired["sha256"]}
        self.share("data").get_file_client(remote).upload_file(data, metadata=metadata if with_metadata else None)

    def create_workspace(self) -> None:
        tags = {"project": "plan-tests", **owner_tags(SPEC_NAME), SALT_TAG: self.salt}
        self.batchai.workspaces.begin_create(
            RG, WORKSPACE, batchai.WorkspaceCreateParameters(location=LOCATION, tags=tags)
        ).result()

    def record_in_workspace(self, tags: dict[str, str]) -> None:
        current = self.batchai.workspaces.get(RG, WORKSPACE).tags or {}
        self.batchai.workspaces.update(RG, WORKSPACE, batchai.WorkspaceUpdateParameters(tags={**current, **tags}))

    # -- file server ------------------------------------------------------------------------------------------

    def create_file_server(self) -> None:
        """SDK 7 creates and lists file servers (no get, no delete); its DataDisks sends caching_type "none" unless
        told otherwise."""
        stored = fingerprints(self.graph.resources[f"file_server.{FILE_SERVER}"].desired, self.salt)
        self.record_in_workspace({child_tag("file_server", FILE_SERVER): child_record(self.graph.spec_name, stored)})
        parameters = batchai.FileServerCreateParameters(
            vm_size="Standard_DS2_v2",
            ssh_configuration=batchai.SshConfiguration(
                public_ips_to_allow=["10.0.0.0/8"],
                user_account_settings=batchai.UserAccountSettings(
                    admin_user_name="nfsadmin", admin_user_ssh_public_key=SSH_KEY,
                    admin_user_password=self.secrets["PLAN_FILE_SERVER_PASSWORD"],
                ),
            ),
            data_disks=batchai.DataDisks(
                disk_size_in_gb=128, disk_count=2, storage_account_type="Premium_LRS", caching_type="readonly"
            ),
        )
        self.batchai.file_servers.begin_create(RG, WORKSPACE, FILE_SERVER, parameters).result()

    def file_server_mount(self, path: str, **options: str) -> batchai.FileServerReference:
        server_id = (
            f"/subscriptions/{self.endpoint.subscription_id}/resourceGroups/{RG}/providers/Microsoft.BatchAI"
            f"/workspaces/{WORKSPACE}/fileServers/{FILE_SERVER}"
        )
        return batchai.FileServerReference(file_server=batchai.ResourceId(id=server_id), relative_mount_path=path, **options)

    # -- clusters -----------------------------------------------------------------------------------------------

    def gpu_cluster(self, vm_size: str = "STANDARD_NC6") -> batchai.ClusterCreateParameters:
        return batchai.ClusterCreateParameters(
            vm_size=vm_size,
            scale_settings=batchai.ScaleSettings(manual=batchai.ManualScaleSettings(target_node_count=1)),
            user_account_settings=batchai.UserAccountSettings(
                admin_user_name="demo", admin_user_ssh_public_key=SSH_KEY,
                admin_user_password=self.secrets["PLAN_ADMIN_PASSWORD"],
            ),
            node_setup=batchai.NodeSetup(
                setup_task=batchai.SetupTask(
                    command_line="echo node ready",
                    environment_variables=[
                        batchai.EnvironmentVariable(name="STAGE", value="test"),
                        batchai.EnvironmentVariable(name="LEVEL", value="2"),
                    ],
                    secrets=[
                        batchai.EnvironmentVariableWithSecretValue(
                            name="SETUP_TOKEN", value=self.secrets["PLAN_SETUP_TOKEN"]
                        )
                    ],
                    std_out_err_path_prefix="$AZ_BATCHAI_MOUNT_ROOT/data/logs",
                ),
                mount_volumes=batchai.MountVolumes(azure_file_shares=[self._share_mount("data", "data")]),
            ),
        )

    def cpu_cluster(self) -> batchai.ClusterCreateParameters:
        return batchai.ClusterCreateParameters(
            vm_size="STANDARD_D2_V2",
            vm_priority="lowpriority",
            scale_settings=batchai.ScaleSettings(
                auto_scale=batchai.AutoScaleSettings(minimum_node_count=0, maximum_node_count=2, initial_node_count=1)
            ),
            virtual_machine_configuration=batchai.VirtualMachineConfiguration(
                image_reference=batchai.ImageReference(
                    publisher="Canonical", offer="UbuntuServer", sku="18.04-LTS", version="latest"
                )
            ),
            user_account_settings=batchai.UserAccountSettings(admin_user_name="ops", admin_user_ssh_public_key=SSH_KEY),
            node_setup=batchai.NodeSetup(
                mount_volumes=batchai.MountVolumes(
                    azure_file_shares=[self._share_mount("scratch", "scratch", file_mode="0644", directory_mode="0755")],
                    azure_blob_file_systems=[
                        batchai.AzureBlobFileSystemReference(
                            account_name="blobstore", container_name="datasets",
                            credentials=batchai.AzureStorageCredentialsInfo(account_key=self.secrets["PLAN_BLOB_KEY"]),
                            relative_mount_path="blobs", mount_options="-o ro",
                        )
                    ],
                    file_servers=[self.file_server_mount("nfs", mount_options="-o rw")],
                )
            ),
        )

    def _share_mount(self, share: str, path: str, **modes: str) -> batchai.AzureFileShareReference:
        return batchai.AzureFileShareReference(
            account_name=ACCOUNT,
            azure_file_url=f"https://{ACCOUNT}.file.core.windows.net/{share}",
            credentials=batchai.AzureStorageCredentialsInfo(account_key=self.account_key),
            relative_mount_path=path,
            **modes,
        )

    def create_cluster(self, name: str, parameters: batchai.ClusterCreateParameters, *, record: bool = True) -> None:
        if record:
            stored = fingerprints(self.graph.resources[f"cluster.{name}"].desired, self.salt)
            self.record_in_workspace({child_tag("cluster", name): child_record(self.graph.spec_name, stored)})
        self.batchai.clusters.begin_create(RG, WORKSPACE, name, parameters).result()

    def create_experiment(self) -> None:
        self.record_in_workspace({child_tag("experiment", EXPERIMENT): child_record(self.graph.spec_name)})
        self.batchai.experiments.begin_create(RG, WORKSPACE, EXPERIMENT).result()

    # -- jobs ---------------------------------------------------------------------------------------------------

    def cluster_id(self, name: str) -> batchai.ResourceId:
        return batchai.ResourceId(
            id=f"/subscriptions/{self.endpoint.subscription_id}/resourceGroups/{RG}/providers/Microsoft.BatchAI"
            f"/workspaces/{WORKSPACE}/clusters/{name}"
        )

    def jobs(self) -> dict[str, batchai.JobCreateParameters]:
        data, scratch = "$AZ_BATCHAI_MOUNT_ROOT/data", "$AZ_BATCHAI_MOUNT_ROOT/scratch"
        script = f"{data}/code/train.py"
        on_gpu = {"cluster": self.cluster_id("gpu"), "node_count": 1, "std_out_err_path_prefix": data}
        on_cpu = {"cluster": self.cluster_id("cpu"), "std_out_err_path_prefix": scratch}
        return {
            "cntk": batchai.JobCreateParameters(
                **on_gpu,
                scheduling_priority="high",
                container_settings=batchai.ContainerSettings(
                    image_source_registry=batchai.ImageSourceRegistry(
                        server_url="myregistry.azurecr.io", image="myregistry.azurecr.io/cntk:2.1",
                        credentials=batchai.PrivateRegistryCredentials(
                            username="puller", password=self.secrets["PLAN_REGISTRY_PASSWORD"]
                        ),
                    ),
                    shm_size="8gb",
                ),
                input_directories=[
                    batchai.InputDirectory(id="DATA", path=f"{data}/inputs"),
                    batchai.InputDirectory(id="CODE", path=f"{data}/code"),
                ],
                output_directories=[
                    batchai.OutputDirectory(id="MODEL", path_prefix=data, path_suffix="models"),
                    batchai.OutputDirectory(id="LOGS", path_prefix=data),
                ],
                environment_variables=[
                    batchai.EnvironmentVariable(name="EPOCHS", value="2"),
                    batchai.EnvironmentVariable(name="BATCH", value="64"),
                ],
                secrets=[batchai.EnvironmentVariableWithSecretValue(name="API_TOKEN", value=self.secrets["PLAN_JOB_TOKEN"])],
                job_preparation=batchai.JobPreparation(command_line="echo prepare"),
                constraints=batchai.JobBasePropertiesConstraints(max_wall_clock_time=timedelta(hours=2)),
                cntk_settings=batchai.CNTKsettings(
                    python_script_file_path="$AZ_BATCHAI_INPUT_CODE/train.py",
                    command_line_args="$AZ_BATCHAI_INPUT_DATA $AZ_BATCHAI_OUTPUT_MODEL",
                ),
            ),
            "pytorch": batchai.JobCreateParameters(
                **on_gpu,
                input_directories=[batchai.InputDirectory(id="CODE", path=f"{data}/code")],
                constraints=batchai.JobBasePropertiesConstraints(max_wall_clock_time=timedelta(days=1)),
                py_torch_settings=batchai.PyTorchSettings(
                    python_script_file_path="$AZ_BATCHAI_INPUT_CODE/train.py", command_line_args="--lr 0.1",
                    communication_backend="Gloo",
                ),
            ),
            "tensorflow": batchai.JobCreateParameters(
                **on_gpu,
                tensor_flow_settings=batchai.TensorFlowSettings(
                    python_script_file_path=script, master_command_line_args="--master", worker_count=1
                ),
            ),
            "caffe": batchai.JobCreateParameters(
                **on_gpu,
                input_directories=[batchai.InputDirectory(id="DATA", path=f"{data}/inputs")],
                caffe_settings=batchai.CaffeSettings(config_file_path="$AZ_BATCHAI_INPUT_DATA/solver.cfg"),
            ),
            "caffe2": batchai.JobCreateParameters(**on_gpu, caffe2_settings=batchai.Caffe2Settings(python_script_file_path=script)),
            "chainer": batchai.JobCreateParameters(
                **on_gpu, chainer_settings=batchai.ChainerSettings(python_script_file_path=script, process_count=1)
            ),
            "horovod": batchai.JobCreateParameters(
                **on_cpu, node_count=2,
                horovod_settings=batchai.HorovodSettings(python_script_file_path=f"{scratch}/train.py", process_count=2),
            ),
            "custom-mpi": batchai.JobCreateParameters(
                **on_cpu, node_count=1, custom_mpi_settings=batchai.CustomMpiSettings(command_line="hostname", process_count=1)
            ),
            "custom": batchai.JobCreateParameters(
                cluster=self.cluster_id("cpu"),
                node_count=1,
                mount_volumes=batchai.MountVolumes(
                    azure_file_shares=[self._share_mount("data", "jobdata")],
                    file_servers=[self.file_server_mount("jobnfs", source_directory="shared")],
                ),
                std_out_err_path_prefix="$AZ_BATCHAI_JOB_MOUNT_ROOT/jobdata",
                custom_toolkit_settings=batchai.CustomToolkitSettings(
                    command_line="cat $AZ_BATCHAI_JOB_MOUNT_ROOT/jobdata/code/train.py"
                ),
            ),
        }

    def create_job(self, name: str, parameters: batchai.JobCreateParameters, *, owned: bool = True) -> None:
        if owned:
            resource = self.graph.resources[f"job.{EXPERIMENT}/{name}"]
            parameters.environment_variables = list(parameters.environment_variables or []) + [
                batchai.EnvironmentVariable(name=JOB_OWNER_ENV, value=SPEC_NAME),
                batchai.EnvironmentVariable(name=JOB_FINGERPRINT_ENV, value=fingerprints(resource.desired, self.salt)),
                batchai.EnvironmentVariable(name=JOB_INPUTS_ENV, value=resource.extra["inputs_digest"]),
            ]
        self.batchai.jobs.begin_create(RG, WORKSPACE, EXPERIMENT, name, parameters).result()

    def wait_for_gpu_jobs(self, timeout_s: float = 60.0) -> dict[str, str]:
        """Poll (with backoff) until every job on cluster gpu has ended; returns name -> execution state.

        The jobs on cluster cpu never start: its blob mount names an account the emulator does not have, so its
        nodes are unusable and those jobs stay queued.
        """
        deadline = time.monotonic() + timeout_s
        pause = 0.05
        while True:
            states = {
                job.name: job.execution_state
                for job in self.batchai.jobs.list_by_experiment(RG, WORKSPACE, EXPERIMENT)
                if job.cluster.id.endswith("/clusters/gpu")
            }
            if all(state in ("succeeded", "failed") for state in states.values()):
                return states
            if time.monotonic() > deadline:
                raise AssertionError(f"jobs did not end within {timeout_s} s: {states}")
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
