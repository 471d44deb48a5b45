"""Toolkit settings of a job (2018-05-01 `*Settings` objects in snake_case); a job has exactly one of them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from batchai_spec.spec.base import LocatedValueError, NonEmptyText, SpecModel

ProcessCount = Annotated[int, Field(ge=1)]
SCRIPT = "Python script to run, e.g. $AZ_BATCHAI_INPUT_SAMPLE/train.py."
INTERPRETER = "Python interpreter to run the script with (the image's default if absent)."
ARGS = "Arguments of the script."
PROCESSES = "Number of processes (the service's default: the job's node_count)."


class _PythonScript(SpecModel):
    python_script_file_path: NonEmptyText = Field(description=SCRIPT)
    python_interpreter_path: str | None = Field(None, description=INTERPRETER)


class _MpiPythonScript(_PythonScript):
    command_line_args: str | None = Field(None, description=ARGS)
    process_count: ProcessCount | None = Field(None, description=PROCESSES)


class CntkSettings(SpecModel):
    """Microsoft Cognitive Toolkit, run with MPI: a Python script or a BrainScript configuration."""

    language_type: Literal["Python", "BrainScript"] = Field("Python", description="Python script or BrainScript config.")
    config_file_path: str | None = Field(None, description="BrainScript configuration file (BrainScript only).")
    python_script_file_path: str | None = Field(None, description=SCRIPT + " (Python only)")
    python_interpreter_path: str | None = Field(None, description=INTERPRETER + " (Python only)")
    command_line_args: str | None = Field(None, description=ARGS)
    process_count: ProcessCount | None = Field(None, description=PROCESSES)

    @model_validator(mode="after")
    def _language_fields(self) -> CntkSettings:
        if self.language_type == "Python":
            if self.config_file_path is not None:
                raise LocatedValueError(("config_file_path",), "config_file_path is for language_type BrainScript")
            if self.python_script_file_path is None:
                raise LocatedValueError((), "language_type Python needs python_script_file_path")
        else:
            for key in ("python_script_file_path", "python_interpreter_path"):
                if getattr(self, key) is not None:
                    raise LocatedValueError((key,), f"{key} is for language_type Python")
            if self.config_file_path is None:
                raise LocatedValueError((), "language_type BrainScript needs config_file_path")
        return self


class PyTorchSettings(_MpiPythonScript):
    """PyTorch: one process per task; distributed jobs pick a communication backend."""

    communication_backend: Literal["TCP", "Gloo", "MPI"] | None = Field(None, description="torch.distributed backend (distributed jobs).")


class TensorFlowSettings(_PythonScript):
    """TensorFlow: master, worker and parameter-server tasks."""

    master_command_line_args: str | None = Field(None, description="Arguments of the master task.")
    worker_command_line_args: str | None = Field(None, description="Arguments of the worker tasks.")
    parameter_server_command_line_args: str | None = Field(None, description="Arguments of the parameter-server tasks.")
    worker_count: ProcessCount | None = Field(None, description="Worker tasks (distributed only; default node_count).")
    parameter_server_count: ProcessCount | None = Field(
        None, description="Parameter-server tasks, at most node_count (distributed only; default 1)."
    )


class CaffeSettings(SpecModel):
    """Caffe, run with MPI: a configuration file or a Python script."""

    config_file_path: str | None = Field(None, description="Caffe solver configuration. Exactly one of this or python_script_file_path.")
    python_script_file_path: str | None = Field(None, description=SCRIPT + " Exactly one of this or config_file_path.")
    python_interpreter_path: str | None = Field(None, description=INTERPRETER + " (only with python_script_file_path)")
    command_line_args: str | None = Field(None, description=ARGS)
    process_count: ProcessCount | None = Field(None, description=PROCESSES)

    @model_validator(mode="after")
    def _config_or_script(self) -> CaffeSettings:
        if (self.config_file_path is None) == (self.python_script_file_path is None):
            raise LocatedValueError((), "give exactly one of config_file_path or python_script_file_path")
        if self.python_interpreter_path is not None and self.python_script_file_path is None:
            raise LocatedValueError(("python_interpreter_path",), "python_interpreter_path needs python_script_file_path")
        return self


class Caffe2Settings(_PythonScript):
    """Caffe2: one process per task."""

    command_line_args: str | None = Field(None, description=ARGS)


class ChainerSettings(_MpiPythonScript):
    """Chainer (ChainerMN), run with MPI."""


class HorovodSettings(_MpiPythonScript):
    """Horovod, run with MPI."""


class CustomMpiSettings(SpecModel):
    """Any command, run by the MPI runtime on every node."""

    command_line: NonEmptyText = Field(description="Command the MPI runtime runs.")
    process_count: ProcessCount | None = Field(None, description=PROCESSES)


class CustomToolkitSettings(SpecModel):
    """Any command, run on the job's master node."""

    command_line: NonEmptyText = Field(description="Command to run, e.g. python $AZ_BATCHAI_INPUT_SAMPLE/train.py.")


Toolkit = (
    CntkSettings
    | PyTorchSettings
    | TensorFlowSettings
    | CaffeSettings
    | Caffe2Settings
    | ChainerSettings
    | HorovodSettings
    | CustomMpiSettings
    | CustomToolkitSettings
)
