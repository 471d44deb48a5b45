"""Jobs as real processes: outcomes, queueing, terminate, limits, toolkits, live output."""

from __future__ import annotations

import sys
from pathlib import Path

import azure.mgmt.batchai.models as models
import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError

from batchai_spec.emulator import machine
from tests.emulator.batchai_support import MOUNT, WORKSPACE, EXPERIMENT, batchai, custom, node_host  # noqa: F401
from tests.emulator.batchai_support import path_without_mpirun, sandbox, wait_for, wall_clock  # noqa: F401

WAIT_FOR_GO = f"while [ ! -f $AZ_BATCHAI_MOUNT_ROOT/{MOUNT}/go ]; do sleep 0.05; done"


def test_a_failing_job_reports_its_exit_code(sandbox):
    cluster = sandbox.create_cluster()
    sandbox.submit(cluster, "fails", **custom("echo about to fail; exit 3"))
    job = sandbox.wait_job("fails")
    assert job.execution_state == "failed" and job.execution_info.exit_code == 3
    assert job.execution_info.errors[0].code == "JobFailed"
    assert (sandbox.stdouterr(job) / "stdout.txt").read_text() == "about to fail\n"
    assert "exit code 3" in (sandbox.stdouterr(job) / "execution.log").read_text()


def test_jobs_queue_in_priority_order_until_nodes_free_up(sandbox):
    cluster = sandbox.create_cluster(nodes=1)
    record = f"echo $JOB_NAME >> $AZ_BATCHAI_MOUNT_ROOT/{MOUNT}/order.txt"
    sandbox.submit(cluster, "first", **custom(f"{WAIT_FOR_GO}; {record}"),
                   environment_variables=[models.EnvironmentVariable(name="JOB_NAME", value="first")])
    sandbox.wait_job("first", ("running",))
    for name, priority in (("low", "low"), ("normal", "normal"), ("high", "high")):
        sandbox.submit(cluster, name, **custom(record), scheduling_priority=priority,
                       environment_variables=[models.EnvironmentVariable(name="JOB_NAME", value=name)])
    assert {sandbox.job(name).execution_state for name in ("low", "normal", "high")} == {"queued"}
    assert sandbox.client.clusters.get(sandbox.group, WORKSPACE, "cluster").node_state_counts.running_node_count == 1
    sandbox.write("go", "")
    for name in ("low", "normal", "high"):
        assert sandbox.wait_job(name).execution_state == "succeeded"
    assert (sandbox.share_dir / "order.txt").read_text().split() == ["first", "high", "normal", "low"]


def test_terminate_running_queued_and_finished_jobs(sandbox):
    cluster = sandbox.create_cluster(nodes=1)
    sandbox.submit(cluster, "runs", **custom("sleep 60"))
    sandbox.submit(cluster, "waits", **custom("true"))
    sandbox.wait_job("runs", ("running",))
    sandbox.client.jobs.begin_terminate(sandbox.group, WORKSPACE, EXPERIMENT, "waits").result()
    sandbox.client.jobs.begin_terminate(sandbox.group, WORKSPACE, EXPERIMENT, "runs").result()
    for name in ("runs", "waits"):
        job = sandbox.job(name)
        assert job.execution_state == "failed" and job.execution_info.errors[0].code == "JobTerminated"
    assert sandbox.job("waits").execution_info.start_time is None
    sandbox.wait_cluster("cluster", lambda c: c.node_state_counts.idle_node_count == 1)
    sandbox.submit(cluster, "done", **custom("true"))
    assert sandbox.wait_job("done").execution_state == "succeeded"
    sandbox.client.jobs.begin_terminate(sandbox.group, WORKSPACE, EXPERIMENT, "done").result()
    assert sandbox.job("done").execution_state == "succeeded"


def test_terminate_kills_the_whole_process_tree(sandbox):
    cluster = sandbox.create_cluster()
    marker = f"$AZ_BATCHAI_MOUNT_ROOT/{MOUNT}/child.pid"
    sandbox.submit(cluster, "tree", **custom(f"sleep 60 & echo $! > {marker}; wait"))
    sandbox.wait_job("tree", ("running",))
    child = wait_for(lambda: (sandbox.share_dir / "child.pid").read_text() if (sandbox.share_dir / "child.pid").exists()
                     else "", lambda text: text.endswith("\n"))
    sandbox.client.jobs.begin_terminate(sandbox.group, WORKSPACE, EXPERIMENT, "tree").result()
    wait_for(lambda: _running(int(child)), lambda running: not running)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_wall_clock_limit_stops_the_job(sandbox):
    cluster = sandbox.create_cluster()
    created = sandbox.submit(cluster, "slow", **custom("sleep 60"), constraints=wall_clock(1))
    assert created.constraints.max_wall_clock_time.total_seconds() == 1
    job = sandbox.wait_job("slow")
    assert job.execution_state == "failed" and job.execution_info.errors[0].code == "MaxWallClockTimeExceeded"


def test_deleting_a_running_job_stops_it(sandbox):
    cluster = sandbox.create_cluster()
    sandbox.submit(cluster, "doomed", **custom("sleep 60"))
    sandbox.wait_job("doomed", ("running",))
    sandbox.client.jobs.begin_delete(sandbox.group, WORKSPACE, EXPERIMENT, "doomed").result()
    with pytest.raises(ResourceNotFoundError):
        sandbox.job("doomed")
    sandbox.wait_cluster("cluster", lambda c: c.node_state_counts.idle_node_count == 1)


def test_job_preparation_runs_first_and_can_fail_the_job(sandbox):
    cluster = sandbox.create_cluster()
    sandbox.submit(cluster, "prepared", **custom("cat $AZ_BATCHAI_JOB_TEMP/prepared.txt"),
                   job_preparation=models.JobPreparation(command_line="echo ready > $AZ_BATCHAI_JOB_TEMP/prepared.txt"))
    job = sandbox.wait_job("prepared")
    assert job.execution_state == "succeeded" and (sandbox.stdouterr(job) / "stdout.txt").read_text() == "ready\n"
    sandbox.submit(cluster, "unprepared", **custom("echo never"),
                   job_preparation=models.JobPreparation(command_line="echo no >&2; exit 4"))
    job = sandbox.wait_job("unprepared")
    assert job.execution_state == "failed" and job.execution_info.exit_code == 4
    assert job.execution_info.errors[0].code == "JobPreparationFailed"
    assert (sandbox.stdouterr(job) / "stderr-job_prep.txt").read_text() == "no\n"
    assert (sandbox.stdouterr(job) / "stdout.txt").read_text() == ""


def test_multi_node_pytorch_job_runs_one_process_per_node(sandbox):
    cluster = sandbox.create_cluster(nodes=2)
    sandbox.write("train.py", "import os\nprint('task', os.environ['AZ_BATCHAI_TASK_INDEX'],"
                              " os.environ['AZ_BATCHAI_PYTORCH_INIT_METHOD'].startswith('file://'))\n")
    sandbox.submit(cluster, "distributed", node_count=2, py_torch_settings=models.PyTorchSettings(
        python_script_file_path=f"$AZ_BATCHAI_MOUNT_ROOT/{MOUNT}/train.py", python_interpreter_path="/no/such/python"))
    job = sandbox.wait_job("distributed")
    assert job.execution_state == "succeeded" and job.tool_type == "pytorch"
    outputs = {path.name: path.read_text() for path in sandbox.stdouterr(job).glob("stdout-*.txt")}
    assert outputs == {"stdout-0.txt": "task 0 True\n", "stdout-1.txt": "task 1 True\n"}
    assert "/no/such/python does not exist" in (sandbox.stdouterr(job) / "execution.log").read_text()


def test_mpi_job_without_mpirun_fails_clearly(sandbox, node_host):
    # Nodes whose PATH has no mpirun, with a job Python in a directory without one.
    pythons = [python for python in (sys._base_executable, "/usr/bin/python3")
               if machine.find_mpirun(str(Path(python).parent)) is None]
    if not pythons:
        pytest.skip("every candidate job Python has mpirun beside it")
    node_host(path_without_mpirun(), job_python=pythons[0])
    cluster = sandbox.create_cluster()
    sandbox.submit(cluster, "mpi", custom_mpi_settings=models.CustomMpiSettings(command_line="mpirun hostname"))
    job = sandbox.wait_job("mpi")
    assert job.execution_state == "failed" and job.tool_type == "custommpi"
    [error] = job.execution_info.errors
    assert error.code == "MpiRuntimeNotFound"
    node_path = machine.image_path(path_without_mpirun(), pythons[0])
    assert f"no mpirun on the PATH of the emulator's nodes ({node_path})" in error.message


def test_output_is_readable_while_the_job_runs(sandbox, endpoint):
    cluster = sandbox.create_cluster()
    sandbox.submit(cluster, "live", **custom(f"echo first line; {WAIT_FOR_GO}; echo second line"))
    job = sandbox.wait_job("live", ("running",))

    def stdout_so_far() -> str:
        [stdout] = [item for item in sandbox.output_files("live", "stdouterr") if item.name == "stdout.txt"]
        return requests.get(stdout.download_url, headers={"Range": "bytes=0-"}, verify=endpoint.ca_cert,
                            timeout=10).text

    assert wait_for(stdout_so_far, lambda text: text == "first line\n")
    logins = list(sandbox.client.jobs.list_remote_login_information(sandbox.group, WORKSPACE, EXPERIMENT, "live"))
    assert len(logins) == 1 and logins[0].ip_address == "127.0.0.1"
    sandbox.write("go", "")
    job = sandbox.wait_job("live")
    assert (sandbox.stdouterr(job) / "stdout.txt").read_text() == "first line\nsecond line\n"


def test_job_level_mounts_environment_and_container_note(sandbox):
    cluster = sandbox.create_cluster(mount_volumes=models.MountVolumes())
    sandbox.submit(
        cluster, "mounted",
        **custom("echo $GREETING $TOKEN > $AZ_BATCHAI_OUTPUT_OUT/said.txt"),
        mount_volumes=models.MountVolumes(azure_file_shares=[sandbox.share_mount(path="jobshare")]),
        std_out_err_path_prefix="$AZ_BATCHAI_JOB_MOUNT_ROOT/jobshare",
        output_directories=[models.OutputDirectory(id="OUT", path_prefix="$AZ_BATCHAI_JOB_MOUNT_ROOT/jobshare")],
        environment_variables=[models.EnvironmentVariable(name="GREETING", value="hello")],
        secrets=[models.EnvironmentVariableWithSecretValue(name="TOKEN", value="t0ken")],
        container_settings=models.ContainerSettings(image_source_registry=models.ImageSourceRegistry(
            image="ubuntu", credentials=models.PrivateRegistryCredentials(username="me", password="registry-pw"))),
    )
    job = sandbox.wait_job("mounted")
    assert job.execution_state == "succeeded"
    assert job.container_settings.image_source_registry.credentials.password is None
    [said] = sandbox.output_files("mounted", "OUT")
    assert said.name == "said.txt" and said.content_length == len("hello t0ken\n")
    log = (sandbox.stdouterr(job) / "execution.log").read_text()
    assert "Container image ubuntu requested" in log and "registry-pw" not in log and "t0ken" not in log


def test_job_on_a_cluster_that_does_not_exist(sandbox):
    cluster = sandbox.create_cluster(nodes=0)
    cluster.id = cluster.id[: -len("cluster")] + "ghost"
    with pytest.raises(ResourceNotFoundError) as missing:
        sandbox.submit(cluster, "lost")
    assert missing.value.error.code == "ClusterNotFound"
