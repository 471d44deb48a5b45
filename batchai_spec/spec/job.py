"""Experiments and their jobs: where a job runs, in which container, with which toolkit, inputs and outputs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, StringConstraints, WithJsonSchema, model_validator

from batchai_spec.spec.base import (
    DirectoryId,
    EnvName,
    KeyPath,
    LocatedValueError,
    NonEmptyText,
    ResourceName,
    SpecModel,
    did_you_mean,
    ensure_unique,
)
from batchai_spec.spec.cluster import MAX_NODES
from batchai_spec.spec.mounts import MountVolumes
from batchai_spec.spec.toolkits import (
    Caffe2Settings,
    CaffeSettings,
    ChainerSettings,
    CntkSettings,
    CustomMpiSettings,
    CustomToolkitSettings,
    HorovodSettings,
    PyTorchSettings,
    TensorFlowSettings,
    Toolkit,
)

TOOLKITS = ("cntk", "pytorch", "tensorflow", "horovod", "custom_mpi", "custom_toolkit", "caffe", "caffe2", "chainer")
MAX_WALL_CLOCK_TIME = timedelta(days=7)
STDOUTERR = "stdouterr"  # the id listOutputFiles gives the job's stdout/stderr directory
# $AZ_BATCHAI_INPUT_<ID> / ${AZ_BATCHAI_OUTPUT_<ID>}: like the shell, the name is the longest run of word characters.
_DIRECTORY_REFERENCE = re.compile(r"\$\{?AZ_BATCHAI_(INPUT|OUTPUT)_(\w+)")
# .NET TimeSpan text ("7.00:00:00"), which the API's own documentation uses for durations.
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")


def _timespan_to_timedelta(value: Any) -> Any:
    match = _TIMESPAN.match(value) if isinstance(value, str) else None
    if not match:
        return value
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


Duration = Annotated[
    timedelta,
    BeforeValidator(_timespan_to_timedelta),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "duration", "description": "ISO 8601 duration, e.g. P7D or PT1H30M"},
                {"type": "string", "pattern": r"^(\d+\.)?\d{1,2}:\d{2}:\d{2}$", "description": "[D.]HH:MM:SS"},
                {"type": "number", "exclusiveMinimum": 0, "description": "seconds"},
            ]
        }
    ),
]


class Registry(SpecModel):
    server_url: Annotated[str, StringConstraints(min_length=1)] | None = Field(
        None, description="Registry server, e.g. myregistry.azurecr.io; Docker Hub if absent. The image must then be fully qualified."
    )
    username: NonEmptyText = Field(description="User name for the registry.")
    password: SecretStr | None = Field(None, description="Password for the registry (secret).")


class Container(SpecModel):
    image: NonEmptyText = Field(description="Docker image the job runs in, e.g. microsoft/cntk:2.1-gpu-python3.5-cuda8.0-cudnn6.0.")
    registry: Registry | None = Field(None, description="Private registry holding the image, with credentials.")
    shm_size: Annotated[str, StringConstraints(pattern=r"^[0-9]+([bkmgBKMG][bB]?)?$")] | None = Field(
        None, description="Size of /dev/shm (docker --shm-size), e.g. 16gb."
    )


class OutputDirectory(SpecModel):
    id: DirectoryId = Field(description="Id; the job sees the directory as $AZ_BATCHAI_OUTPUT_<ID>.")
    path_prefix: NonEmptyText = Field(description="Where the directory is created, e.g. $AZ_BATCHAI_MOUNT_ROOT/share.")
    path_suffix: str | None = Field(None, description="Last path component below the job's output path segment.")


class JobPreparation(SpecModel):
    command_line: NonEmptyText = Field(description="Runs on every node of the job (in its container) before the toolkit.")


class JobConstraints(SpecModel):
    max_wall_clock_time: Duration = Field(
        MAX_WALL_CLOCK_TIME,
        gt=timedelta(0),
        le=MAX_WALL_CLOCK_TIME,
        description="Longest the job may run (at most 7 days): an ISO 8601 duration (P7D, PT1H), [D.]HH:MM:SS or seconds.",
    )


class Job(SpecModel):
    name: ResourceName = Field(description="Job name, unique in the experiment (letters, digits, -, _; 1-64).")
    cluster: ResourceName = Field(description="Name of a cluster of this spec to run on.")
    node_count: Annotated[int, Field(ge=1, le=MAX_NODES)] = Field(description="Nodes the job runs on at once (1-100).")
    scheduling_priority: Literal["low", "normal", "high"] = Field("normal", description="Priority among the cluster's queued jobs.")
    container: Container | None = Field(None, description="Run in this Docker container; directly on the VM if absent.")
    input_directories: dict[DirectoryId, NonEmptyText] = Field(
        {}, description="Input directories, id -> path; the job sees $AZ_BATCHAI_INPUT_<ID>."
    )
    output_directories: tuple[OutputDirectory, ...] = Field((), description="Output directories; the job sees $AZ_BATCHAI_OUTPUT_<ID>.")
    std_out_err_path_prefix: NonEmptyText = Field(description="Where stdout.txt/stderr.txt go, e.g. $AZ_BATCHAI_MOUNT_ROOT/share.")
    environment_variables: dict[EnvName, str] = Field({}, description="Environment variables of the job and its preparation.")
    secrets: dict[EnvName, SecretStr] = Field({}, description="Secret environment variables (values never returned nor shown).")
    mount_volumes: MountVolumes | None = Field(None, description="Volumes mounted for this job only, under $AZ_BATCHAI_JOB_MOUNT_ROOT.")
    job_preparation: JobPreparation | None = Field(None, description="Command run on every node before the toolkit.")
    constraints: JobConstraints = Field(JobConstraints(), description="Limits of the job.")
    cntk: CntkSettings | None = Field(None, description="Cognitive Toolkit settings. Exactly one toolkit key per job.")
    pytorch: PyTorchSettings | None = Field(None, description="PyTorch settings. Exactly one toolkit key per job.")
    tensorflow: TensorFlowSettings | None = Field(None, description="TensorFlow settings. Exactly one toolkit key per job.")
    horovod: HorovodSettings | None = Field(None, description="Horovod settings. Exactly one toolkit key per job.")
    custom_mpi: CustomMpiSettings | None = Field(None, description="Custom MPI command. Exactly one toolkit key per job.")
    custom_toolkit: CustomToolkitSettings | None = Field(None, description="Custom command. Exactly one toolkit key per job.")
    caffe: CaffeSettings | None = Field(None, description="Caffe settings. Exactly one toolkit key per job.")
    caffe2: Caffe2Settings | None = Field(None, description="Caffe2 settings. Exactly one toolkit key per job.")
    chainer: ChainerSettings | None = Field(None, description="Chainer settings. Exactly one toolkit key per job.")

    @model_validator(mode="after")
    def _consistent(self) -> Job:
        given = [name for name in TOOLKITS if getattr(self, name) is not None]
        if not given:
            raise LocatedValueError((), f"a job needs exactly one toolkit key, one of: {', '.join(TOOLKITS)}")
        if len(given) > 1:
            raise LocatedValueError((given[1],), f"a job has exactly one toolkit; it has {' and '.join(given)}")
        # Batch AI compares directory ids without case, and keeps the output id `stdouterr` for the job's logs.
        seen: dict[str, str] = {}
        for key in self.input_directories:
            if seen.setdefault(key.lower(), key) != key:
                raise LocatedValueError(
                    ("input_directories", key, "[key]"),
                    f"duplicate input directory id '{key}' (also '{seen[key.lower()]}'; ids ignore case)",
                )
        ensure_unique(
            ((("output_directories", index, "id"), output.id) for index, output in enumerate(self.output_directories)),
            "output directory id",
        )
        for index, output in enumerate(self.output_directories):
            if output.id.lower() == STDOUTERR:
                raise LocatedValueError(
                    ("output_directories", index, "id"),
                    f"the output directory id '{output.id}' is reserved for the job's stdout and stderr; pick another",
                )
        for name in self.secrets:
            if name in self.environment_variables:
                raise LocatedValueError(("secrets", name, "[key]"), f"'{name}' is both an environment variable and a secret")
        if self.tensorflow and (self.tensorflow.parameter_server_count or 0) > self.node_count:
            raise LocatedValueError(("tensorflow", "parameter_server_count"), "parameter_server_count exceeds the job's node_count")
        self._check_directory_references()
        return self

    @property
    def toolkit(self) -> tuple[str, Toolkit]:
        """The job's one toolkit as (key, settings), e.g. ("cntk", CntkSettings(...))."""
        name = next(name for name in TOOLKITS if getattr(self, name) is not None)
        return name, getattr(self, name)

    def _check_directory_references(self) -> None:
        declared = {"INPUT": set(self.input_directories), "OUTPUT": {output.id for output in self.output_directories}}
        for loc, text in self._texts_that_run():
            for kind, directory_id in _DIRECTORY_REFERENCE.findall(text):
                if directory_id not in declared[kind]:
                    collection = f"{kind.lower()}_directories"
                    raise LocatedValueError(
                        loc,
                        f"$AZ_BATCHAI_{kind}_{directory_id} names no entry of {collection}"
                        + did_you_mean(directory_id, declared[kind]),
                    )

    def _texts_that_run(self) -> Iterator[tuple[KeyPath, str]]:
        """Every non-secret text the job's processes see, with its key path."""
        name, settings = self.toolkit
        for field, value in settings:
            if isinstance(value, str):
                yield (name, field), value
        if self.job_preparation:
            yield ("job_preparation", "command_line"), self.job_preparation.command_line
        yield ("std_out_err_path_prefix",), self.std_out_err_path_prefix
        for variable, value in self.environment_variables.items():
            yield ("environment_variables", variable), value
        for directory_id, path in self.input_directories.items():
            yield ("input_directories", directory_id), path
        for index, output in enumerate(self.output_directories):
            yield ("output_directories", index, "path_prefix"), output.path_prefix


class Experiment(SpecModel):
    name: ResourceName = Field(description="Experiment name, unique in the workspace (letters, digits, -, _; 1-64).")
    jobs: tuple[Job, ...] = Field((), description="Jobs of the experiment; a Jinja loop over jobs makes a sweep.")

    @model_validator(mode="after")
    def _unique_jobs(self) -> Experiment:
        ensure_unique(((("jobs", index, "name"), job.name) for index, job in enumerate(self.jobs)), "job name")
        return self
