"""The launcher across the nodes of a multi-instance task (launcher_support.py's PAIR_POOL, two emulated nodes with
their own loopback addresses): PyTorch's rendezvous between the nodes, a failure of any rank failing the job with
that rank's exit code and the end of its stderr, mpirun starting ranks on both hosts of the MPI host file; and the
launcher's pure functions that decide who is which node, where torch.distributed meets and what the host file says.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from tests.services.batch.launcher_support import (  # noqa: F401  (fixtures by name)
    MOUNT_ROOT,
    PAIR_POOL,
    LauncherWorld,
    batch_context,
    batch_mgmt,
    launch_description,
    launcher_cluster,
    launcher_pair_world,
)

LAUNCHER_FILE = Path(__file__).resolve().parents[3] / "batchai_spec/services/batch/launcher/launcher.py"

# A rank of a two-node PyTorch job: what the launcher gave it, then (argv[1] = "ok") a real gloo rendezvous at
# AZ_BATCHAI_PYTORCH_INIT_METHOD and an all_reduce of rank + 1; or a failure of rank 1 once rank 0 waits in the
# rendezvous (its store answers; it waits on for rank 1, which never comes); or a failure of rank 0.
DISTRIBUTED = """\
import json, os, sys
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "AZ_BATCHAI_TASK_INDEX",
         "AZ_BATCHAI_PYTORCH_INIT_METHOD", "AZ_BATCHAI_PYTORCH_BACKEND", "BATCHAI_EMULATOR_NODE_ADDRESS")
print("env " + json.dumps({name: os.environ.get(name) for name in names}, sort_keys=True))
print("directories %s" % all(os.path.isdir(os.environ[name]) for name in
                             ("AZ_BATCHAI_JOB_TEMP", "AZ_BATCHAI_SHARED_JOB_TEMP", "AZ_BATCHAI_STDOUTERR_DIR")))
mode = sys.argv[1]
import datetime
if mode == "rank-1-fails" and rank == 1:
    import torch.distributed as dist
    dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, False,
                  timeout=datetime.timedelta(seconds=120))
    sys.stderr.write("".join("rank 1 trace line %d\\n" % number for number in range(30)))
    sys.exit(3)
if mode == "rank-0-fails":
    if rank == 0:
        sys.stderr.write("rank 0 gives up\\n")
        sys.exit(4)
    print("rank 1 done")
    sys.exit(0)
import torch
import torch.distributed as dist
dist.init_process_group(os.environ["AZ_BATCHAI_PYTORCH_BACKEND"], rank=rank, world_size=world,
                        init_method=os.environ["AZ_BATCHAI_PYTORCH_INIT_METHOD"],
                        timeout=datetime.timedelta(seconds=300))
value = torch.tensor([float(rank + 1)])
dist.all_reduce(value)
print("rank %d sum %d" % (rank, int(value.item())))
if mode == "rank-1-dies":  # rank 1 is gone (as if killed); rank 0's next collective fails for it
    if rank == 1:
        sys.stderr.write("rank 1 runs out of memory\\n")
        sys.stderr.flush()
        os._exit(7)
    dist.all_reduce(value)
dist.destroy_process_group()
"""


def load_launcher() -> ModuleType:
    spec = importlib.util.spec_from_file_location("batchai_spec_launcher", LAUNCHER_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


launcher = load_launcher()


def pytorch_launch(world: LauncherWorld, mode: str) -> dict:
    if not world.share_path("scripts/distributed.py").exists():
        world.upload("scripts/distributed.py", DISTRIBUTED)
    return launch_description(
        "pytorch", {"pythonScriptFilePath": f"{MOUNT_ROOT}/scripts/distributed.py", "commandLineArgs": mode,
                    "communicationBackend": "Gloo", "processCount": 4},
        node_count=2, job_preparation="echo prepared on $AZ_BATCH_NODE_ID")


def env_line(text: str) -> dict:
    [line] = [line for line in text.splitlines() if line.startswith("env ")]
    return json.loads(line[4:])


# --------------------------------------------------------------------------------------------------- on two nodes


def test_a_pytorch_job_meets_across_two_nodes(launcher_pair_world: LauncherWorld):
    pytest.importorskip("torch.distributed")
    world = launcher_pair_world
    launch = pytorch_launch(world, "ok")
    seg = launch["output_segment"]
    run = world.run(launch, pool=PAIR_POOL, timeout_s=180)
    assert run.exit_code == 0, run.stderr

    outputs = [world.download(f"{seg}/stdouterr/stdout-{rank}.txt") for rank in (0, 1)]
    assert [output.splitlines()[-1] for output in outputs] == ["rank 0 sum 3", "rank 1 sum 3"]
    assert run.stdout == outputs[0]  # rank 0's output is also the task's
    port = int(env_line(outputs[0])["MASTER_PORT"])
    assert 20000 <= port <= 29799
    for rank, output in enumerate(outputs):
        assert env_line(output) == {
            "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": "0", "AZ_BATCHAI_TASK_INDEX": str(rank),
            "MASTER_ADDR": "127.10.0.4", "MASTER_PORT": str(port),
            "AZ_BATCHAI_PYTORCH_INIT_METHOD": f"tcp://127.10.0.4:{port}", "AZ_BATCHAI_PYTORCH_BACKEND": "gloo",
            "BATCHAI_EMULATOR_NODE_ADDRESS": f"127.10.0.{4 + rank}",
        }
        assert "directories True" in output  # the node's job directories exist on both nodes
    # The job preparation ran once on each node, before the job.
    nodes = sorted(world.download(f"{seg}/stdouterr/stdout-job_prep-{rank}.txt") for rank in (0, 1))
    assert nodes == sorted(f"prepared on {root.name}\n" for root in world.pair_roots)
    log = world.download(f"{seg}/stdouterr/execution.log")
    assert "Rank 1 (node 127.10.0.5) ended with exit code 0" in log
    assert "processCount 4 is not used: pytorch runs one process per node (2)" in log
    assert log.rstrip().endswith("Job ended with exit code 0")


def test_a_failing_rank_1_stops_rank_0_and_fails_the_job_with_its_code(launcher_pair_world: LauncherWorld):
    pytest.importorskip("torch.distributed")
    world = launcher_pair_world
    launch = pytorch_launch(world, "rank-1-fails")
    seg = launch["output_segment"]
    started = time.monotonic()
    # Rank 0 would wait 300 s in the rendezvous for a rank that never comes: the launcher stops it long before.
    run = world.run(launch, pool=PAIR_POOL, timeout_s=120)
    assert run.exit_code == 3, run.stderr
    assert time.monotonic() - started < 120
    stderr = run.stderr.splitlines()
    header = stderr.index(f"batchai-spec launcher: rank 1 on node 127.10.0.5 failed with exit code 3; the end of"
                          f" {world.pair_roots[0]}/fsmounts/afs/{seg}/stdouterr/stderr-1.txt:")
    assert stderr[header + 1:] == [f"batchai-spec launcher:   rank 1 trace line {number}" for number in range(11, 30)]
    log = world.download(f"{seg}/stdouterr/execution.log")
    assert "Rank 1 (node 127.10.0.5) ended with exit code 3" in log
    assert "Stopping process group" in log  # rank 0, which was waiting for rank 1
    assert "rank 1 on node 127.10.0.5 failed with exit code 3" in log
    assert log.rstrip().endswith("Job ended with exit code 3")
    assert world.download(f"{seg}/.ranks/1.exit") == "3\n"


def test_a_failing_rank_0_fails_the_job_with_its_own_code(launcher_pair_world: LauncherWorld):
    world = launcher_pair_world
    launch = pytorch_launch(world, "rank-0-fails")
    seg = launch["output_segment"]
    run = world.run(launch, pool=PAIR_POOL)
    assert run.exit_code == 4, run.stderr
    assert "rank 0 gives up" in run.stderr and "rank 1 on node" not in run.stderr
    log = world.download(f"{seg}/stdouterr/execution.log")
    assert "Rank 0 (node 127.10.0.4) ended with exit code 4" in log
    assert log.rstrip().endswith("Job ended with exit code 4")


def test_a_rank_that_dies_first_is_the_cause_when_rank_0_fails_after_it(launcher_pair_world: LauncherWorld):
    """Rank 1 dies; rank 0's next all-reduce fails for it a moment later: the job fails with rank 1's exit code."""
    pytest.importorskip("torch.distributed")
    world = launcher_pair_world
    launch = pytorch_launch(world, "rank-1-dies")
    seg = launch["output_segment"]
    run = world.run(launch, pool=PAIR_POOL, timeout_s=120)
    assert run.exit_code == 7, run.stderr
    # "failed first" when rank 0 failed before the launcher saw rank 1's record, "failed" when it stopped rank 0.
    assert re.search(r"rank 1 on node 127\.10\.0\.5 failed( first)? with exit code 7", run.stderr), run.stderr
    assert "rank 1 runs out of memory" in run.stderr
    log = world.download(f"{seg}/stdouterr/execution.log")
    assert "Rank 1 (node 127.10.0.5) ended with exit code 7" in log
    assert log.rstrip().endswith("Job ended with exit code 7")


@pytest.mark.skipif(not (Path(sys.executable).parent / "mpirun").exists(),
                    reason="the node image's MPI (mpirun beside the job Python) is not installed")
def test_a_custom_mpi_job_runs_its_ranks_from_the_host_file(launcher_pair_world: LauncherWorld):
    world = launcher_pair_world
    launch = launch_description("custommpi", {"commandLine": (
        "mpirun --hostfile $AZ_BATCHAI_MPI_HOST_FILE -np 2 python3 -c \"import os;"
        " print('mpi rank', os.environ['OMPI_COMM_WORLD_RANK'], 'of', os.environ['OMPI_COMM_WORLD_SIZE'])\"")},
        node_count=2)
    seg = launch["output_segment"]
    run = world.run(launch, pool=PAIR_POOL, timeout_s=120)
    assert run.exit_code == 0, run.stderr
    assert sorted(run.stdout.splitlines()) == ["mpi rank 0 of 2", "mpi rank 1 of 2"]
    assert run.stdout == world.download(f"{seg}/stdouterr/stdout.txt")
    log = world.download(f"{seg}/stdouterr/execution.log")
    assert "hostfile: localhost slots=2\n" in log  # both nodes are this machine: mpirun starts the ranks itself
    assert f"MPI: {Path(sys.executable).parent / 'mpirun'} (mpirun (Open MPI)" in log


# --------------------------------------------------------------------------------------------------- pure functions


def test_each_node_finds_its_index_by_its_address():
    environ = {"AZ_BATCH_HOST_LIST": "10.0.0.5,10.0.0.4,10.0.0.6", "AZ_BATCH_MASTER_NODE": "10.0.0.4:6000"}
    hosts = launcher.ordered_hosts(environ)
    assert hosts == ["10.0.0.4", "10.0.0.5", "10.0.0.6"]  # the primary first, whatever Batch's order
    assert launcher.node_index(hosts, [], True) == 0
    assert launcher.node_index(hosts, ["127.0.0.1", "10.0.0.6"], False) == 2
    assert launcher.node_index(hosts, ["10.0.0.5"], False) == 1
    with pytest.raises(launcher.Problem, match="cannot tell which node of 10.0.0.4,10.0.0.5,10.0.0.6 this one is"):
        launcher.node_index(hosts, ["192.168.1.9"], False)
    # The emulator names the node's address (every loopback address is this machine, so interfaces cannot tell).
    assert launcher.own_addresses({"BATCHAI_EMULATOR_NODE_ADDRESS": "127.10.0.5"}, "127.10.0.4") == ["127.10.0.5"]
    # A node's own: what its name resolves to, and the source of its route to the primary.
    assert "127.0.0.1" in launcher.own_addresses({}, "127.0.0.1")


def test_every_node_of_a_task_derives_the_same_rendezvous_port():
    def port(node: str, job: str = "job-1", segment: str = "sub/rg/workspaces/ws/experiments/e/jobs/j/uuid-1") -> int:
        return launcher.rendezvous_port({"AZ_BATCH_JOB_ID": job, "AZ_BATCH_TASK_ID": "task", "AZ_BATCH_NODE_ID": node,
                                         "AZ_BATCH_TASK_SHARED_DIR": f"/nodes/{node}/workitems/{job}/job-1/task"},
                                        segment)

    assert port("node-a") == port("node-b")
    ports = {port("node-a", job=f"job-{number}") for number in range(50)}
    ports |= {port("node-a", segment=f"sub/rg/jobs/j/uuid-{number}") for number in range(50)}
    assert len(ports) > 90  # other jobs (and runs) meet elsewhere
    assert all(20000 <= value <= 29799 for value in ports)  # below Linux's ephemeral ports and Batch's agent's


def test_the_host_file_lists_every_node_with_its_slots(tmp_path: Path):
    environ = {"AZ_BATCH_HOST_LIST": "10.0.0.5,10.0.0.4", "AZ_BATCH_MASTER_NODE": "10.0.0.4:6000",
               "AZ_BATCH_NODE_MOUNTS_DIR": str(tmp_path), "AZ_BATCH_TASK_WORKING_DIR": str(tmp_path)}

    def host_file(node_count: int, gpus: int, **settings) -> str:
        launch = launcher.parse_launch(launch_description("cntk", {"pythonScriptFilePath": "x.py", **settings},
                                                          node_count=node_count))
        hosts = launcher.checked_hosts(environ, launch) if node_count > 1 else []
        return launcher.Node(environ, launch, hosts, 0, gpus).host_file_text()

    assert host_file(2, 0) == "10.0.0.4 slots=1\n10.0.0.5 slots=1\n"
    assert host_file(2, 4) == "10.0.0.4 slots=4\n10.0.0.5 slots=4\n"
    assert host_file(2, 1, processCount=6) == "10.0.0.4 slots=3\n10.0.0.5 slots=3\n"
    assert host_file(1, 2) == "localhost slots=2\n"
    # The nodes that are this machine (10.0.0.x is not; all of 127.0.0.0/8 is): one localhost line, where the first was.
    environ["AZ_BATCH_HOST_LIST"] = "10.0.0.4,127.10.0.5,10.0.0.6,127.10.0.7"
    assert host_file(4, 2) == "10.0.0.4 slots=2\nlocalhost slots=4\n10.0.0.6 slots=2\n"
    environ.update(AZ_BATCH_HOST_LIST="127.10.0.5,127.10.0.4", AZ_BATCH_MASTER_NODE="127.10.0.4:6000")
    assert host_file(2, 0) == "localhost slots=2\n"
    environ.update(AZ_BATCH_HOST_LIST="10.0.0.5,10.0.0.4", AZ_BATCH_MASTER_NODE="10.0.0.4:6000")
    with pytest.raises(launcher.Problem, match="node_count is 3 but the task runs on 2 node"):
        host_file(3, 0)


def test_the_pytorch_environment_of_each_node(tmp_path: Path):
    environ = {"AZ_BATCH_HOST_LIST": "10.0.0.4,10.0.0.5", "AZ_BATCH_MASTER_NODE": "10.0.0.4:6000",
               "AZ_BATCH_NODE_MOUNTS_DIR": str(tmp_path), "AZ_BATCH_TASK_WORKING_DIR": str(tmp_path),
               "AZ_BATCH_JOB_ID": "j", "AZ_BATCH_TASK_ID": "t"}
    launch = launcher.parse_launch(launch_description("pytorch", {"pythonScriptFilePath": "x.py",
                                                                  "communicationBackend": "NCCL"}, node_count=2))
    port = launcher.rendezvous_port(environ, launch["segment"])
    for index in (0, 1):
        env = launcher.Node(environ, launch, ["10.0.0.4", "10.0.0.5"], index, 0).environment({})
        assert {name: env[name] for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "AZ_BATCHAI_TASK_INDEX",
                                             "MASTER_ADDR", "MASTER_PORT", "AZ_BATCHAI_PYTORCH_INIT_METHOD",
                                             "AZ_BATCHAI_PYTORCH_BACKEND")} == {
            "RANK": str(index), "WORLD_SIZE": "2", "LOCAL_RANK": "0", "AZ_BATCHAI_TASK_INDEX": str(index),
            "MASTER_ADDR": "10.0.0.4", "MASTER_PORT": str(port),
            "AZ_BATCHAI_PYTORCH_INIT_METHOD": f"tcp://10.0.0.4:{port}", "AZ_BATCHAI_PYTORCH_BACKEND": "nccl"}


def test_a_rank_record_is_written_whole_with_the_ranks_exit_status(tmp_path: Path):
    import subprocess

    record = str(tmp_path / "1.exit")
    for argv, code in ((["sh", "-c", "exit 5"], 5), (["sh", "-c", "kill -TERM $$"], 143), (["true"], 0)):
        assert subprocess.run(launcher.recorded_argv(record, argv), timeout=30).returncode == code
        assert launcher.read_record(record) == code
        assert not os.path.exists(record + ".tmp")
    assert launcher.read_record(str(tmp_path / "2.exit")) is None
    (tmp_path / "stderr.txt").write_text("".join(f"line {number}\n" for number in range(100)))
    assert launcher.tail(str(tmp_path / "stderr.txt")) == [f"line {number}" for number in range(81, 100)]
