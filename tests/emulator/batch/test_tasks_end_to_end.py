"""Tasks end to end through the unmodified SDKs: azure-mgmt-batch makes a pool of 2 nodes, azure-batch adds a job
and a task that prints while it runs (read with ranged GETs before it ends), the task completes with its exit
code; a multi-instance task runs on both nodes; terminating the job ends what still runs."""

from __future__ import annotations

import shlex

from azure.batch import models

from batchai_spec.emulator.batch import tasks_runner  # noqa: F401  (registers the task runner's step)
from tests.emulator.batch.conftest import pool_body, wait_for
from tests.emulator.batch.dataplane_support import dataplane  # noqa: F401
from tests.emulator.batch.tasks_support import assert_gone, pids_in


def sh(script: str) -> str:
    return f"/bin/sh -c {shlex.quote(script)}"


def read_range(client, job_id: str, task_id: str, first: int, last: int) -> bytes:
    """What a tailing client does: the file's length (HEAD), then the bytes it has of the range (a GET with
    `ocp-range`); nothing before the file has them."""
    length = client.get_task_file_properties(job_id, task_id, "stdout.txt").content_length
    if length <= first:
        return b""
    return b"".join(client.download_task_file(job_id, task_id, "stdout.txt",
                                              ocp_range=f"bytes={first}-{min(last, length - 1)}"))


def test_a_pool_job_and_task_through_the_sdks(batch_mgmt, batch_account, batch_context, dataplane,  # noqa: F811
                                              tmp_path):
    client = dataplane.client()
    batch_mgmt.pool.create(batch_account.resource_group, batch_account.name, "pool", pool_body(dedicated=2))
    nodes = wait_for(lambda: list(client.list_nodes("pool")),
                     lambda found: len(found) == 2 and all(node.state == "idle" for node in found))

    client.create_job(models.BatchJobCreateOptions(id="job", pool_info=models.BatchPoolInfo(pool_id="pool")))
    gate = tmp_path / "gate"
    client.create_task("job", models.BatchTaskCreateOptions(
        id="streams", command_line=sh(f"echo first line; while [ ! -e {gate} ]; do sleep 0.02; done;"
                                      " echo second line; exit 3"),
        environment_settings=[models.EnvironmentSetting(name="GREETING", value="hello")],
    ))
    task = wait_for(lambda: client.get_task("job", "streams"), lambda found: found.state == "running")
    assert task.node_info.node_id in {node.id for node in nodes}
    # Read while it runs, with ranged GETs.
    head = wait_for(lambda: read_range(client, "job", "streams", 0, 10), lambda data: data == b"first line\n")
    assert head == b"first line\n"
    assert read_range(client, "job", "streams", 6, 9) == b"line"
    assert client.get_task("job", "streams").state == "running"

    gate.touch()
    task = wait_for(lambda: client.get_task("job", "streams"), lambda found: found.state == "completed")
    assert task.execution_info.exit_code == 3
    assert task.execution_info.result == "failure"
    assert task.execution_info.failure_info.code == "FailureExitCode"
    assert b"".join(client.download_task_file("job", "streams", "stdout.txt")) == b"first line\nsecond line\n"
    assert {node.state for node in client.list_nodes("pool")} == {"idle"}

    # A multi-instance task on both nodes.
    client.create_task("job", models.BatchTaskCreateOptions(
        id="pair", command_line=sh("echo $AZ_BATCH_HOST_LIST"),
        multi_instance_settings=models.MultiInstanceSettings(number_of_instances=2, coordination_command_line="true"),
    ))
    pair = wait_for(lambda: client.get_task("job", "pair"), lambda found: found.state == "completed")
    assert pair.execution_info.exit_code == 0
    [subtask] = list(client.list_subtasks("job", "pair"))
    assert subtask.state == "completed" and subtask.exit_code == 0
    hosts = b"".join(client.download_task_file("job", "pair", "stdout.txt")).decode().strip().split(",")
    assert len(hosts) == 2 and {node.ip_address for node in client.list_nodes("pool")} == set(hosts)

    # Terminating the job ends a running task and its processes.
    pids = tmp_path / "pids"
    client.create_task("job", models.BatchTaskCreateOptions(
        id="endless", command_line=sh(f"sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait")))
    wait_for(lambda: pids_in(pids), lambda found: len(found) == 2)
    # (15.1.0 cannot send a terminate without a body, and does not export BatchJobTerminateOptions: a dict)
    client.begin_terminate_job("job", {"terminateReason": "enough"}, polling_interval=0.05).result()
    job = client.get_job("job")
    assert job.state == "completed" and job.execution_info.termination_reason == "enough"
    endless = client.get_task("job", "endless")
    assert endless.state == "completed" and endless.execution_info.failure_info.code == "TaskEnded"
    assert_gone(pids_in(pids))
