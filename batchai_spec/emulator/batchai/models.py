"""Request bodies of Batch AI 2018-05-01 as the service accepted them, with the defaults it filled in.

Field names are the wire's camelCase names (aliases); `dump()` gives the normalised body the emulator stores:
defaults filled, enums lower-cased, vmSize upper-cased, durations in ISO form. Secrets stay in the stored body
(the nodes need them) and are removed only when a resource is rendered (see `views.py`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator
from pydantic.alias_generators import to_camel

from batchai_spec.emulator.batchai.times import iso_duration

RESOURCE_NAME_PATTERN = r"^[-\w_]+$"


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _enum(*values: str) -> Any:
    """A case-insensitive string enum that stores the service's lower-case spelling."""
    return Annotated[Literal[values], BeforeValidator(_lower)]  # type: ignore[valid-type]


NonEmpty = Annotated[str, Field(min_length=1)]
Duration = Annotated[timedelta, PlainSerializer(iso_duration, return_type=str)]


class WireModel(BaseModel):
    """Unknown properties are ignored, as ARM resource providers do."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ResourceId(WireModel):
    id: NonEmpty


class KeyVaultSecretReference(WireModel):
    source_vault: ResourceId
    secret_url: NonEmpty


class EnvironmentVariable(WireModel):
    name: NonEmpty
    value: str


class EnvironmentVariableWithSecretValue(WireModel):
    name: NonEmpty
    value: str | None = None
    value_secret_reference: KeyVaultSecretReference | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EnvironmentVariableWithSecretValue:
        if (self.value is None) == (self.value_secret_reference is None):
            raise ValueError("give exactly one of value and valueSecretReference")
        return self


class AzureStorageCredentialsInfo(WireModel):
    account_key: str | None = None
    account_key_secret_reference: KeyVaultSecretReference | None = None

    @model_validator(mode="after")
    def _one_source(self) -> AzureStorageCredentialsInfo:
        if (self.account_key is None) == (self.account_key_secret_reference is None):
            raise ValueError("give exactly one of accountKey and accountKeySecretReference")
        return self


class AzureFileShareReference(WireModel):
    account_name: NonEmpty
    azure_file_url: NonEmpty
    credentials: AzureStorageCredentialsInfo
    relative_mount_path: NonEmpty
    file_mode: str = "0777"
    directory_mode: str = "0777"


class AzureBlobFileSystemReference(WireModel):
    account_name: NonEmpty
    container_name: NonEmpty
    credentials: AzureStorageCredentialsInfo
    relative_mount_path: NonEmpty
    mount_options: str | None = None


class FileServerReference(WireModel):
    file_server: ResourceId
    source_directory: str | None = None
    relative_mount_path: NonEmpty
    mount_options: str | None = None


class UnmanagedFileSystemReference(WireModel):
    mount_command: NonEmpty
    relative_mount_path: NonEmpty


class MountVolumes(WireModel):
    azure_file_shares: list[AzureFileShareReference] | None = None
    azure_blob_file_systems: list[AzureBlobFileSystemReference] | None = None
    file_servers: list[FileServerReference] | None = None
    unmanaged_file_systems: list[UnmanagedFileSystemReference] | None = None

    @model_validator(mode="after")
    def _distinct_mount_paths(self) -> MountVolumes:
        paths = [mount.relative_mount_path for mount in self.all_mounts()]
        for path in paths:
            if "/" in path.strip("/") or path in (".", ".."):
                raise ValueError(f"relativeMountPath {path!r} must be a single directory name")
        duplicates = sorted({path for path in paths if paths.count(path) > 1})
        if duplicates:
            raise ValueError(f"relativeMountPath {duplicates[0]!r} is used by more than one mount")
        return self

    def all_mounts(self) -> list[Any]:
        return [
            *(self.azure_file_shares or []),
            *(self.azure_blob_file_systems or []),
            *(self.file_servers or []),
            *(self.unmanaged_file_systems or []),
        ]


# ----------------------------------------------------------------------------------------------- clusters


class ManualScaleSettings(WireModel):
    target_node_count: Annotated[int, Field(ge=0, le=100)]
    node_deallocation_option: _enum("requeue", "terminate", "waitforjobcompletion") = "requeue"


class AutoScaleSettings(WireModel):
    minimum_node_count: Annotated[int, Field(ge=0, le=100)]
    maximum_node_count: Annotated[int, Field(ge=1, le=100)]
    initial_node_count: Annotated[int, Field(ge=0, le=100)] = 0

    @model_validator(mode="after")
    def _ordered(self) -> AutoScaleSettings:
        if self.minimum_node_count > self.maximum_node_count:
            raise ValueError("minimumNodeCount must not exceed maximumNodeCount")
        if self.initial_node_count > self.maximum_node_count:
            raise ValueError("initialNodeCount must not exceed maximumNodeCount")
        return self


class ScaleSettings(WireModel):
    manual: ManualScaleSettings | None = None
    auto_scale: AutoScaleSettings | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ScaleSettings:
        if (self.manual is None) == (self.auto_scale is None):
            raise ValueError("give exactly one of manual and autoScale")
        return self


class ImageReference(WireModel):
    publisher: NonEmpty
    offer: NonEmpty
    sku: NonEmpty
    version: str | None = None
    virtual_machine_image_id: str | None = None


DEFAULT_IMAGE = ImageReference(publisher="Canonical", offer="UbuntuServer", sku="16.04-LTS", version="latest")


class VirtualMachineConfiguration(WireModel):
    image_reference: ImageReference = DEFAULT_IMAGE


class UserAccountSettings(WireModel):
    admin_user_name: NonEmpty
    admin_user_ssh_public_key: str | None = None
    admin_user_password: str | None = None

    @model_validator(mode="after")
    def _some_login(self) -> UserAccountSettings:
        if not self.admin_user_ssh_public_key and not self.admin_user_password:
            raise ValueError("give adminUserPassword or adminUserSshPublicKey")
        return self


class SetupTask(WireModel):
    command_line: NonEmpty
    environment_variables: list[EnvironmentVariable] | None = None
    secrets: list[EnvironmentVariableWithSecretValue] | None = None
    std_out_err_path_prefix: NonEmpty


class AppInsightsReference(WireModel):
    component: ResourceId
    instrumentation_key: str | None = None
    instrumentation_key_secret_reference: KeyVaultSecretReference | None = None


class PerformanceCountersSettings(WireModel):
    app_insights_reference: AppInsightsReference


class NodeSetup(WireModel):
    setup_task: SetupTask | None = None
    mount_volumes: MountVolumes | None = None
    performance_counters_settings: PerformanceCountersSettings | None = None


class ClusterProperties(WireModel):
    vm_size: Annotated[NonEmpty, BeforeValidator(_upper)]
    vm_priority: _enum("dedicated", "lowpriority") = "dedicated"
    scale_settings: ScaleSettings
    virtual_machine_configuration: VirtualMachineConfiguration = VirtualMachineConfiguration()
    node_setup: NodeSetup | None = None
    user_account_settings: UserAccountSettings
    subnet: ResourceId | None = None


class ClusterCreate(WireModel):
    properties: ClusterProperties


class ClusterUpdateProperties(WireModel):
    scale_settings: ScaleSettings


class ClusterUpdate(WireModel):
    properties: ClusterUpdateProperties


# ----------------------------------------------------------------------------------------------- workspaces


class WorkspaceCreate(WireModel):
    location: NonEmpty
    tags: dict[str, str] | None = None


class WorkspaceUpdate(WireModel):
    tags: dict[str, str] | None = None


# ----------------------------------------------------------------------------------------------- file servers


class SshConfiguration(WireModel):
    public_i_ps_to_allow: list[str] | None = Field(default=None, alias="publicIPsToAllow")
    user_account_settings: UserAccountSettings


class DataDisks(WireModel):
    disk_size_in_gb: Annotated[int, Field(ge=1)] = Field(alias="diskSizeInGB")
    caching_type: _enum("none", "readonly", "readwrite") = "none"
    disk_count: Annotated[int, Field(ge=1)]
    storage_account_type: Literal["Standard_LRS", "Premium_LRS"]


class FileServerProperties(WireModel):
    vm_size: Annotated[NonEmpty, BeforeValidator(_upper)]
    ssh_configuration: SshConfiguration
    data_disks: DataDisks
    subnet: ResourceId | None = None


class FileServerCreate(WireModel):
    properties: FileServerProperties


# ----------------------------------------------------------------------------------------------- jobs


class PythonScriptSettings(WireModel):
    python_script_file_path: NonEmpty
    python_interpreter_path: str | None = None
    command_line_args: str | None = None


class ProcessCountMixin(WireModel):
    process_count: Annotated[int, Field(ge=1)] | None = None


class CNTKsettings(ProcessCountMixin):
    language_type: Annotated[Literal["Python", "BrainScript"], BeforeValidator(
        lambda value: {"python": "Python", "brainscript": "BrainScript"}.get(_lower(value), value)
    )] = "Python"
    config_file_path: str | None = None
    python_script_file_path: str | None = None
    python_interpreter_path: str | None = None
    command_line_args: str | None = None

    @model_validator(mode="after")
    def _entry_point(self) -> CNTKsettings:
        if self.language_type == "Python" and not self.python_script_file_path:
            raise ValueError("pythonScriptFilePath is required when languageType is Python")
        if self.language_type == "BrainScript" and not self.config_file_path:
            raise ValueError("configFilePath is required when languageType is BrainScript")
        return self


class PyTorchSettings(PythonScriptSettings, ProcessCountMixin):
    communication_backend: str | None = None


class TensorFlowSettings(WireModel):
    python_script_file_path: NonEmpty
    python_interpreter_path: str | None = None
    master_command_line_args: str | None = None
    worker_command_line_args: str | None = None
    parameter_server_command_line_args: str | None = None
    worker_count: Annotated[int, Field(ge=1)] | None = None
    parameter_server_count: Annotated[int, Field(ge=1)] | None = None


class CaffeSettings(ProcessCountMixin):
    config_file_path: str | None = None
    python_script_file_path: str | None = None
    python_interpreter_path: str | None = None
    command_line_args: str | None = None

    @model_validator(mode="after")
    def _entry_point(self) -> CaffeSettings:
        if bool(self.config_file_path) == bool(self.python_script_file_path):
            raise ValueError("give exactly one of configFilePath and pythonScriptFilePath")
        return self


class Caffe2Settings(PythonScriptSettings):
    pass


class ChainerSettings(PythonScriptSettings, ProcessCountMixin):
    pass


class HorovodSettings(PythonScriptSettings, ProcessCountMixin):
    pass


class CustomMpiSettings(ProcessCountMixin):
    command_line: NonEmpty


class CustomToolkitSettings(WireModel):
    command_line: str | None = None


class PrivateRegistryCredentials(WireModel):
    username: NonEmpty
    password: str | None = None
    password_secret_reference: KeyVaultSecretReference | None = None


class ImageSourceRegistry(WireModel):
    server_url: str | None = None
    image: NonEmpty
    credentials: PrivateRegistryCredentials | None = None


class ContainerSettings(WireModel):
    image_source_registry: ImageSourceRegistry
    shm_size: str | None = None


class JobPreparation(WireModel):
    command_line: NonEmpty


DirectoryId = Annotated[str, Field(pattern=r"^\w+$")]


class InputDirectory(WireModel):
    id: DirectoryId
    path: NonEmpty


class OutputDirectory(WireModel):
    id: DirectoryId
    path_prefix: NonEmpty
    path_suffix: str | None = None


class JobConstraints(WireModel):
    max_wall_clock_time: Annotated[Duration, Field(gt=timedelta(0))] = timedelta(days=7)


# Wire name of each toolkit's settings -> the toolType the service derived from it.
TOOLKITS: dict[str, str] = {
    "cntkSettings": "cntk",
    "pyTorchSettings": "pytorch",
    "tensorFlowSettings": "tensorflow",
    "caffeSettings": "caffe",
    "caffe2Settings": "caffe2",
    "chainerSettings": "chainer",
    "customToolkitSettings": "custom",
    "customMpiSettings": "custommpi",
    "horovodSettings": "horovod",
}


class JobProperties(WireModel):
    scheduling_priority: _enum("low", "normal", "high") = "normal"
    cluster: ResourceId
    mount_volumes: MountVolumes | None = None
    node_count: Annotated[int, Field(ge=1, le=100)]
    container_settings: ContainerSettings | None = None
    cntk_settings: CNTKsettings | None = Field(default=None, alias="cntkSettings")
    py_torch_settings: PyTorchSettings | None = None
    tensor_flow_settings: TensorFlowSettings | None = None
    caffe_settings: CaffeSettings | None = None
    caffe2_settings: Caffe2Settings | None = Field(default=None, alias="caffe2Settings")
    chainer_settings: ChainerSettings | None = None
    custom_toolkit_settings: CustomToolkitSettings | None = None
    custom_mpi_settings: CustomMpiSettings | None = None
    horovod_settings: HorovodSettings | None = None
    job_preparation: JobPreparation | None = None
    std_out_err_path_prefix: NonEmpty
    input_directories: list[InputDirectory] | None = None
    output_directories: list[OutputDirectory] | None = None
    environment_variables: list[EnvironmentVariable] | None = None
    secrets: list[EnvironmentVariableWithSecretValue] | None = None
    constraints: JobConstraints = JobConstraints()

    @model_validator(mode="after")
    def _consistent(self) -> JobProperties:
        given = [name for name in TOOLKITS if getattr(self, _field_of(name)) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one toolkit settings object (one of " + ", ".join(TOOLKITS) + f"); got {len(given)}"
            )
        for kind, directories in (("input", self.input_directories), ("output", self.output_directories)):
            ids = [directory.id.upper() for directory in directories or []]
            if len(ids) != len(set(ids)):
                raise ValueError(f"{kind} directory ids must be unique")
        if any(directory.id.upper() == "STDOUTERR" for directory in self.output_directories or []):
            raise ValueError("the output directory id 'stdouterr' is reserved for the job's stdout and stderr")
        if self.cntk_settings is not None and self.cntk_settings.process_count is None:
            self.cntk_settings.process_count = self.node_count
        return self

    def toolkit(self) -> tuple[str, WireModel]:
        """(toolType, settings) of the one toolkit the job uses."""
        for name, tool_type in TOOLKITS.items():
            settings = getattr(self, _field_of(name))
            if settings is not None:
                return tool_type, settings
        raise AssertionError("validated: exactly one toolkit")


def _field_of(wire_name: str) -> str:
    return next(field for field, info in JobProperties.model_fields.items() if info.alias == wire_name)


class JobCreate(WireModel):
    properties: JobProperties
