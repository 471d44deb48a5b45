"""Pools, compute nodes and tasks that really run, on the Batch data plane through azure-batch 15.1.0: the pool
made by the data plane (stored by the ARM part's rules), its nodes going idle with the scheduler's clock, node
files, tasks running as processes with their files, resize / stop resize / auto-scale / remove nodes / reboot,
node counts, delete.
"""

from __future__ import annotations

import pytest
from azure.batch import BatchClient, models
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from batchai_spec.emulator.batch.service import Context
from batchai_spec.emulator.server import RunningEmulator
from tests.emulator.batch.conftest import IMAGE, NODE_AGENT, wait_for
from tests.emulator.batch.dataplane_support import DataPlane, client, dataplane, new_job  # noqa: F401
from tests.emulator_clients import unique_name


def _vm() -> models.VirtualMachineConfiguration:
    return models.VirtualMachineConfiguration(
        image_reference=models.BatchVmImageReference(publisher=IMAGE["publisher"], offer=IMAGE["offer"],
                                                     sku=IMAGE["sku"]),
        node_agent_sku_id=NODE_AGENT)


def make_pool(client: BatchClient, nodes: int, **options) -> str:
    """A pool of `nodes` dedicated nodes made through the data plane; returns once they are all idle."""
    pool_id = unique_name("pool")
    client.create_pool(models.BatchPoolCreateOptions(id=pool_id, vm_size="Standard_D2s_v3",
                                                     virtual_machine_configuration=_vm(),
                                                     target_dedicated_nodes=nodes, **options))
    wait_for(lambda: (client.get_pool(pool_id), [node.state for node in client.list_nodes(pool_id)]),
             lambda value: value[0].allocation_state == "steady" and value[1] == ["idle"] * nodes)
    return pool_id


def wait_task(client: BatchClient, job_id: str, task_id: str, state: str = "completed") -> models.BatchTask:
    return wait_for(lambda: client.get_task(job_id, task_id), lambda task: task.state == state)


def test_a_pool_made_by_the_data_plane(batch_context: Context, client: BatchClient, dataplane: DataPlane):
    pool_id = make_pool(client, 2, start_task=models.BatchStartTask(command_line="/bin/sh -c 'echo started'"),
                        metadata=[models.BatchMetadataItem(name="owner", value="tests")])
    pool = client.get_pool(pool_id).as_dict()
    assert pool["url"] == f"{dataplane.url}/pools/{pool_id}" and pool["state"] == "active"
    assert (pool["allocationState"], pool["currentDedicatedNodes"], pool["targetDedicatedNodes"]) == ("steady", 2, 2)
    assert pool["vmSize"] == "standard_d2s_v3" and pool["resizeTimeout"] == "PT15M"
    assert pool["virtualMachineConfiguration"]["nodeAgentSKUId"] == NODE_AGENT
    assert pool["virtualMachineConfiguration"]["imageReference"]["version"] == "latest"
    assert pool["startTask"]["userIdentity"] == {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}}
    assert pool["taskSchedulingPolicy"] == {"nodeFillType": "Spread"}
    assert pool["metadata"] == [{"name": "owner", "value": "tests"}]
    assert client.pool_exists(pool_id) is True
    # HEAD of a missing pool is 404; azure-batch 15.1.0 raises it (its exception policy runs before pool_exists
    # could answer False).
    with pytest.raises(ResourceNotFoundError):
        client.pool_exists(unique_name("pool"))
    assert [item.id for item in client.list_pools(filter=f"id eq '{pool_id}'")] == [pool_id]
    with pytest.raises(ResourceExistsError) as raised:
        client.create_pool(models.BatchPoolCreateOptions(id=pool_id, vm_size="Standard_D2s_v3",
                                                         virtual_machine_configuration=_vm()))
    assert raised.value.error.code == "PoolExists"
    with pytest.raises(ResourceNotFoundError) as raised:
        client.get_pool(unique_name("pool"))
    assert raised.value.error.code == "PoolNotFound"
    nodes = list(client.list_nodes(pool_id))
    node = client.get_node(pool_id, nodes[0].id)
    assert node.ip_address == "127.10.0.4" and node.is_dedicated is True and node.scheduling_state == "enabled"
    assert node.start_task_info.state == "completed" and node.start_task_info.exit_code == 0
    assert node.affinity_id == f"TVM:{node.id}" and node.url == f"{dataplane.url}/pools/{pool_id}/nodes/{node.id}"
    with pytest.raises(ResourceNotFoundError) as raised:
        client.get_node(pool_id, "tvm-none")
    assert raised.value.error.code == "NodeNotFound"
    # The node's files: the start task's output under startup/.
    names = [item.name for item in client.list_node_files(pool_id, node.id, recursive=True)]
    assert "startup/stdout.txt" in names and "workitems" in names
    assert b"".join(client.download_node_file(pool_id, node.id, "startup/stdout.txt")) == b"started\n"
    assert b"".join(client.download_node_file(pool_id, node.id, "startup/stdout.txt", ocp_range="bytes=1-2")) \
        == b"ta"
    assert client.get_node_file_properties(pool_id, node.id, "startup/stdout.txt").content_length == 8
    client.delete_node_file(pool_id, node.id, "startup/stdout.txt")
    with pytest.raises(ResourceNotFoundError):
        client.get_node_file_properties(pool_id, node.id, "startup/stdout.txt")
    counts = next(item for item in client.list_pool_node_counts() if item.pool_id == pool_id)
    assert (counts.dedicated.idle, counts.dedicated.total, counts.low_priority.total) == (2, 2, 0)


def test_tasks_run_on_the_pool_and_their_files_are_read(batch_context: Context, client: BatchClient,
                                                          dataplane: DataPlane):
    pool_id = make_pool(client, 2)
    job_id = new_job(client, pool=pool_id)
    client.create_task(job_id, models.BatchTaskCreateOptions(
        id="ok", command_line="/bin/sh -c 'echo hello; echo oops >&2; mkdir -p out; echo 1 > out/r.txt'"))
    client.create_task(job_id, models.BatchTaskCreateOptions(id="bad", command_line="/bin/sh -c 'exit 3'"))
    ok, bad = wait_task(client, job_id, "ok"), wait_task(client, job_id, "bad")
    assert (ok.execution_info.exit_code, ok.execution_info.result) == (0, "success")
    assert (bad.execution_info.exit_code, bad.execution_info.result) == (3, "failure")
    assert bad.execution_info.failure_info.code == "FailureExitCode"
    assert ok.node_info.pool_id == pool_id
    assert ok.node_info.node_url == f"{dataplane.url}/pools/{pool_id}/nodes/{ok.node_info.node_id}"
    assert b"".join(client.download_task_file(job_id, "ok", "stdout.txt")) == b"hello\n"
    assert b"".join(client.download_task_file(job_id, "ok", "stderr.txt", ocp_range="bytes=0-1")) == b"oo"
    assert b"".join(client.download_task_file(job_id, "ok", "wd/out/r.txt")) == b"1\n"
    names = {item.name for item in client.list_task_files(job_id, "ok", recursive=True)}
    assert {"stdout.txt", "stderr.txt", "wd", "wd/out", "wd/out/r.txt"} <= names
    counts = client.get_job_task_counts(job_id).task_counts
    assert (counts.completed, counts.succeeded, counts.failed) == (2, 1, 1)
    node = client.get_node(pool_id, ok.node_info.node_id)
    assert node.total_tasks_run >= 1 and any(task.task_id == "ok" for task in node.recent_tasks)
    with pytest.raises(ResourceExistsError) as raised:
        client.reactivate_task(job_id, "ok")
    assert raised.value.error.code == "TaskSucceeded"
    client.reactivate_task(job_id, "bad")  # runs again, fails again
    bad = wait_for(lambda: client.get_task(job_id, "bad"),
                   lambda task: task.state == "completed" and task.previous_state != "active")
    assert bad.execution_info.exit_code == 3


def test_a_multi_instance_task_on_two_nodes(batch_context: Context, client: BatchClient):
    pool_id = make_pool(client, 2)
    job_id = new_job(client, pool=pool_id)
    client.create_task(job_id, models.BatchTaskCreateOptions(
        id="mpi", command_line="/bin/sh -c 'echo $AZ_BATCH_HOST_LIST'",
        multi_instance_settings=models.MultiInstanceSettings(number_of_instances=2,
                                                             coordination_command_line="/bin/true")))
    task = wait_task(client, job_id, "mpi")
    assert task.execution_info.result == "success"
    subtasks = list(client.list_subtasks(job_id, "mpi"))
    assert [subtask.id for subtask in subtasks] == [1]
    assert subtasks[0].node_info.node_id != task.node_info.node_id
    assert b"".join(client.download_task_file(job_id, "mpi", "stdout.txt")) == b"127.10.0.4,127.10.0.5\n"


def test_terminating_a_running_task(batch_context: Context, emulator: RunningEmulator, client: BatchClient):
    pool_id = make_pool(client, 1)
    job_id = new_job(client, pool=pool_id)
    client.create_task(job_id, models.BatchTaskCreateOptions(id="long", command_line="/bin/sh -c 'echo go; sleep 60'"))
    wait_for(lambda: b"".join(client.download_task_file(job_id, "long", "stdout.txt"))
             if client.get_task(job_id, "long").state == "running" else b"", lambda text: text == b"go\n")
    assert emulator.has_work()  # an idle timeout does not stop an emulator whose Batch task runs
    client.terminate_task(job_id, "long")
    task = wait_task(client, job_id, "long")
    assert task.execution_info.failure_info.code == "TaskEnded" and task.execution_info.result == "failure"


def test_resize_stop_remove_reboot_autoscale_and_delete(batch_context: Context, client: BatchClient):
    pool_id = make_pool(client, 1)
    client.begin_resize_pool(pool_id, models.BatchPoolResizeOptions(target_dedicated_nodes=3),
                             polling_interval=0.02).result()
    wait_for(lambda: [node.state for node in client.list_nodes(pool_id)], lambda states: states == ["idle"] * 3)
    pool = client.get_pool(pool_id)
    assert (pool.allocation_state, pool.current_dedicated_nodes, pool.target_dedicated_nodes) == ("steady", 3, 3)
    with pytest.raises(HttpResponseError) as raised:
        client.begin_resize_pool(pool_id, models.BatchPoolResizeOptions(target_dedicated_nodes=-1))
    assert raised.value.error.code == "InvalidPropertyValue"
    # Removing named nodes: those go, the others stay.
    nodes = [node.id for node in client.list_nodes(pool_id)]
    client.begin_remove_nodes(pool_id, models.BatchNodeRemoveOptions(node_ids=[nodes[1]]),
                              polling_interval=0.02).result()
    wait_for(lambda: [node.id for node in client.list_nodes(pool_id)], lambda ids: ids == [nodes[0], nodes[2]])
    assert client.get_pool(pool_id).target_dedicated_nodes == 2
    with pytest.raises(ResourceNotFoundError) as raised:
        client.begin_remove_nodes(pool_id, models.BatchNodeRemoveOptions(node_ids=["tvm-none"]))
    assert raised.value.error.code == "NodeNotFound"
    # Reboot: the node boots again and is idle after.
    # (azure-batch 15.1.0 cannot send a reboot without options: it fails on a None content type.)
    client.begin_reboot_node(pool_id, nodes[0], {"nodeRebootOption": "requeue"}, polling_interval=0.02).result()
    wait_for(lambda: client.get_node(pool_id, nodes[0]).state, lambda state: state == "idle")
    # A stop during a resize leaves the pool steady where it is.
    client.begin_stop_pool_resize(pool_id, polling_interval=0.02).result()
    assert client.get_pool(pool_id).allocation_state == "steady"
    # Auto-scale on (the formula is the ARM part's to evaluate), then off again with the nodes it has.
    client.enable_pool_auto_scale(pool_id, models.BatchPoolEnableAutoScaleOptions(
        auto_scale_formula="$TargetDedicatedNodes=1;", auto_scale_evaluation_interval="PT5M"))
    pool = client.get_pool(pool_id)
    assert pool.enable_auto_scale is True and pool.auto_scale_formula == "$TargetDedicatedNodes=1;"
    wait_for(lambda: client.get_pool(pool_id), lambda value: value.allocation_state == "steady"
             and value.current_dedicated_nodes == 1)
    with pytest.raises(ResourceExistsError):
        client.begin_resize_pool(pool_id, models.BatchPoolResizeOptions(target_dedicated_nodes=2))
    client.disable_pool_auto_scale(pool_id)
    pool = client.get_pool(pool_id)
    assert (pool.enable_auto_scale, pool.target_dedicated_nodes) == (False, 1)
    client.begin_delete_pool(pool_id, polling_interval=0.02).result()
    with pytest.raises(ResourceNotFoundError):
        client.get_pool(pool_id)


def test_pool_properties_and_formula_evaluation(batch_context: Context, client: BatchClient):
    pool_id = make_pool(client, 0)
    client.update_pool(pool_id, models.BatchPoolUpdateOptions(
        start_task=models.BatchStartTask(command_line="/bin/true"),
        metadata=[models.BatchMetadataItem(name="a", value="b")]))
    pool = client.get_pool(pool_id).as_dict()
    assert pool["startTask"]["commandLine"] == "/bin/true" and pool["metadata"] == [{"name": "a", "value": "b"}]
    # updateproperties replaces them whole: what it leaves out is gone.
    client.replace_pool_properties(pool_id, models.BatchPoolReplaceOptions(
        application_package_references=[], metadata=[]))
    pool = client.get_pool(pool_id).as_dict()
    assert "startTask" not in pool and "metadata" not in pool
    # The emulator's accounts have no applications: every package reference is one that does not exist.
    with pytest.raises(ResourceExistsError) as raised:
        client.update_pool(pool_id, models.BatchPoolUpdateOptions(application_package_references=[
            models.BatchApplicationPackageReference(application_id="does-not-exist")]))
    assert raised.value.error.code == "InvalidApplicationPackageReferences"
    assert raised.value.error.details[0].code == "does-not-exist"
    with pytest.raises(ResourceExistsError) as raised:
        client.evaluate_pool_auto_scale(pool_id, models.BatchPoolEvaluateAutoScaleOptions(
            auto_scale_formula="$TargetDedicatedNodes=2;"))
    assert raised.value.error.code == "AutoScalingNotEnabled"
    client.enable_pool_auto_scale(pool_id, models.BatchPoolEnableAutoScaleOptions(
        auto_scale_formula="$TargetDedicatedNodes=0;", auto_scale_evaluation_interval="PT5M"))
    run = client.evaluate_pool_auto_scale(pool_id, models.BatchPoolEvaluateAutoScaleOptions(
        auto_scale_formula="$TargetDedicatedNodes=2;"))
    assert "$TargetDedicatedNodes=2" in run.results and run.timestamp
    assert client.get_pool(pool_id).target_dedicated_nodes == 0  # evaluating changes nothing
    run = client.evaluate_pool_auto_scale(pool_id, models.BatchPoolEvaluateAutoScaleOptions(
        auto_scale_formula="$TargetDedicatedNodes=("))
    assert run.error.code == "AutoScalingFormulaSyntaxError"
