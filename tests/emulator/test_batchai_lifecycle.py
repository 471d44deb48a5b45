"""Clusters over time: allocation, manual and auto scale, unusable nodes, setup tasks, deletion."""

from __future__ import annotations

from contextlib import contextmanager

import azure.mgmt.batchai.models as models
import pytest
from azure.core.exceptions import ResourceNotFoundError

from batchai_spec.emulator.batchai import service
from batchai_spec.emulator.batchai.config import BatchAIConfig, Delays

from tests.emulator.batchai_support import MOUNT, WORKSPACE, batchai, custom, sandbox  # noqa: F401
from tests.emulator.batchai_support import zero_delays


@contextmanager
def slower_scale_down(emulator):
    """Idle auto-scale nodes stay a minute (instead of leaving at once) while the block runs."""
    service.reconfigure(emulator.state, BatchAIConfig(delays=Delays(0, 0, 0, autoscale_idle_s=60)))
    try:
        yield
    finally:
        zero_delays(emulator)

WAIT_FOR_GO = f"while [ ! -f $AZ_BATCHAI_MOUNT_ROOT/{MOUNT}/go ]; do sleep 0.05; done"


def manual(nodes: int, option: str = "requeue") -> models.ClusterUpdateParameters:
    return models.ClusterUpdateParameters(scale_settings=models.ScaleSettings(
        manual=models.ManualScaleSettings(target_node_count=nodes, node_deallocation_option=option)))


def test_manual_scale_up_and_down(sandbox):
    sandbox.create_cluster(nodes=1)
    patched = sandbox.client.clusters.update(sandbox.group, WORKSPACE, "cluster", manual(2))
    assert patched.scale_settings.manual.target_node_count == 2
    grown = sandbox.wait_cluster("cluster", lambda c: c.node_state_counts.idle_node_count == 2)
    assert grown.current_node_count == 2 and grown.allocation_state == "steady"
    nodes = {entry.node_id for entry in sandbox.client.clusters.list_remote_login_information(sandbox.group, WORKSPACE, "cluster")}
    assert len(nodes) == 2
    sandbox.client.clusters.update(sandbox.group, WORKSPACE, "cluster", manual(0))
    shrunk = sandbox.wait_cluster("cluster", lambda c: c.current_node_count == 0 and c.allocation_state == "steady")
    assert shrunk.node_state_counts.leaving_node_count == 0


def test_scale_down_requeues_or_waits_for_running_jobs(sandbox):
    cluster = sandbox.create_cluster(nodes=1)
    sandbox.submit(cluster, "requeued", **custom(WAIT_FOR_GO))
    sandbox.wait_job("requeued", ("running",))
    sandbox.client.clusters.update(sandbox.group, WORKSPACE, "cluster", manual(0, "requeue"))
    sandbox.wait_job("requeued", ("queued",))
    sandbox.wait_cluster("cluster", lambda c: c.current_node_count == 0)
    sandbox.write("go", "")
    sandbox.client.clusters.update(sandbox.group, WORKSPACE, "cluster", manual(1, "waitforjobcompletion"))
    assert sandbox.wait_job("requeued").execution_state == "succeeded"

    (sandbox.share_dir / "go").unlink()
    sandbox.submit(cluster, "waited", **custom(WAIT_FOR_GO))
    sandbox.wait_job("waited", ("running",))
    sandbox.client.clusters.update(sandbox.group, WORKSPACE, "cluster", manual(0, "waitforjobcompletion"))
    resizing = sandbox.wait_cluster("cluster", lambda c: c.allocation_state == "resizing")
    assert resizing.node_state_counts.running_node_count == 1
    sandbox.write("go", "")
    assert sandbox.wait_job("waited").execution_state == "succeeded"
    sandbox.wait_cluster("cluster", lambda c: c.current_node_count == 0 and c.allocation_state == "steady")


def test_scale_down_with_terminate_fails_the_job(sandbox):
    cluster = sandbox.create_cluster(nodes=1)
    sandbox.submit(cluster, "victim", **custom("sleep 60"))
    sandbox.wait_job("victim", ("running",))
    sandbox.client.clusters.update(sandbox.group, WORKSPACE, "cluster", manual(0, "terminate"))
    job = sandbox.wait_job("victim")
    assert job.execution_state == "failed" and job.execution_info.errors[0].code == "NodeDeallocated"


def test_auto_scale_follows_queued_work(sandbox):
    scale = models.ScaleSettings(auto_scale=models.AutoScaleSettings(minimum_node_count=0, maximum_node_count=1))
    cluster = sandbox.create_cluster(scale=scale, wait_idle=False)
    assert cluster.scale_settings.auto_scale.initial_node_count == 0
    assert sandbox.wait_cluster("cluster", lambda c: c.allocation_state == "steady").current_node_count == 0
    sandbox.submit(cluster, "demand", **custom("echo ran"))
    job = sandbox.wait_job("demand")
    assert job.execution_state == "succeeded"
    sandbox.wait_cluster("cluster", lambda c: c.current_node_count == 0 and c.allocation_state == "steady")


def test_auto_scale_starts_with_the_initial_node_count(sandbox):
    scale = models.ScaleSettings(auto_scale=models.AutoScaleSettings(
        minimum_node_count=0, maximum_node_count=3, initial_node_count=2))
    with slower_scale_down(sandbox.emulator):
        sandbox.create_cluster(scale=scale, nodes=2)


@pytest.mark.parametrize("problem", ["wrong key", "missing share"])
def test_bad_mount_makes_nodes_unusable(sandbox, problem):
    mount = (sandbox.share_mount(key="d3Jvbmcga2V5") if problem == "wrong key"
             else sandbox.share_mount(url=f"https://{sandbox.account.name}.file.core.windows.net/nosuchshare"))
    sandbox.create_cluster(nodes=1, wait_idle=False, mount_volumes=models.MountVolumes(azure_file_shares=[mount]))
    cluster = sandbox.wait_cluster("cluster", lambda c: c.node_state_counts.unusable_node_count == 1)
    assert cluster.errors[0].code == "MountFailed"
    assert ("account key" if problem == "wrong key" else "nosuchshare") in cluster.errors[0].message
    assert "d3Jvbmcga2V5" not in cluster.errors[0].message
    assert cluster.errors[0].details[0].name == "nodeId"


def test_emulator_share_url_form_mounts_too(sandbox):
    url = f"{sandbox.account.url}/share"
    sandbox.create_cluster(nodes=1, mount_volumes=models.MountVolumes(azure_file_shares=[sandbox.share_mount(url=url)]))


def test_setup_task_runs_on_each_node(sandbox):
    task = models.SetupTask(
        command_line="echo prepared on $AZ_BATCHAI_MOUNT_ROOT with $GREETING; test -d $AZ_BATCHAI_MOUNT_ROOT/afs",
        environment_variables=[models.EnvironmentVariable(name="GREETING", value="hello")],
        std_out_err_path_prefix=f"$AZ_BATCHAI_MOUNT_ROOT/{MOUNT}",
    )
    cluster = sandbox.create_cluster(nodes=2, setup_task=task)
    suffix = cluster.node_setup.setup_task.std_out_err_path_suffix
    assert suffix.startswith(f"{sandbox.emulator.endpoint.subscription_id}/{sandbox.group}/workspaces/{WORKSPACE}/clusters/cluster/")
    outputs = sorted((sandbox.share_dir / suffix).glob("stdout-*.txt"))
    assert len(outputs) == 2 and all("with hello" in path.read_text() for path in outputs)


def test_failing_setup_task_makes_nodes_unusable(sandbox):
    task = models.SetupTask(command_line="echo cannot install >&2; exit 7",
                            std_out_err_path_prefix=f"$AZ_BATCHAI_MOUNT_ROOT/{MOUNT}")
    sandbox.create_cluster(nodes=1, wait_idle=False, setup_task=task)
    cluster = sandbox.wait_cluster("cluster", lambda c: c.node_state_counts.unusable_node_count == 1)
    error = cluster.errors[0]
    assert error.code == "SetupTaskFailed" and "exit code 7" in error.message
    suffix = cluster.node_setup.setup_task.std_out_err_path_suffix
    assert [path.read_text() for path in (sandbox.share_dir / suffix).glob("stderr-*.txt")] == ["cannot install\n"]


def test_cluster_deletion_stops_its_jobs_and_waits_for_nodes(sandbox):
    cluster = sandbox.create_cluster(nodes=1)
    sandbox.submit(cluster, "orphan", **custom("sleep 60"))
    sandbox.wait_job("orphan", ("running",))
    sandbox.client.clusters.begin_delete(sandbox.group, WORKSPACE, "cluster").result()
    with pytest.raises(ResourceNotFoundError):
        sandbox.client.clusters.get(sandbox.group, WORKSPACE, "cluster")
    job = sandbox.job("orphan")
    assert job.execution_state == "failed" and job.execution_info.errors[0].code == "ClusterDeleted"
