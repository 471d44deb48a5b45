"""The Batch AI control plane through SDK 7: bodies and defaults, errors, LROs, paging, cascades."""

from __future__ import annotations

import azure.mgmt.batchai.models as models
import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from tests.emulator.batchai_support import EXPERIMENT, WORKSPACE, batchai, custom, sandbox  # noqa: F401
from tests.emulator_clients import LOCATION, unique_name


def raw(endpoint, method: str, path: str, **options) -> requests.Response:
    """A request as SDK 7 sends it, to see status codes and headers the SDK hides."""
    query = options.pop("query", "api-version=2018-05-01")
    return requests.request(
        method, f"{endpoint.arm_url}{path}?{query}", headers={"Authorization": f"Bearer {endpoint.token}"},
        verify=endpoint.ca_cert, timeout=10, **options,
    )


def group_path(endpoint, group: str) -> str:
    return f"/subscriptions/{endpoint.subscription_id}/resourceGroups/{group}/providers/Microsoft.BatchAI"


def test_workspace_create_get_update_list_delete(batchai, resource_group, endpoint):
    created = batchai.workspaces.begin_create(
        resource_group, "ws1", models.WorkspaceCreateParameters(location=LOCATION, tags={"a": "1"})
    ).result()
    assert created.provisioning_state == "succeeded" and created.tags == {"a": "1"}
    assert created.type == "Microsoft.BatchAI/workspaces" and created.location == LOCATION
    response = raw(endpoint, "PUT", f"{group_path(endpoint, resource_group)}/workspaces/ws2", json={"location": LOCATION})
    assert response.status_code == 200 and response.headers["ETag"] and response.headers["Last-Modified"]
    updated = batchai.workspaces.update(resource_group, "ws1", models.WorkspaceUpdateParameters(tags={"b": "2"}))
    assert updated.tags == {"b": "2"}
    assert batchai.workspaces.get(resource_group, "ws1").tags == {"b": "2"}
    assert {ws.name for ws in batchai.workspaces.list_by_resource_group(resource_group)} == {"ws1", "ws2"}
    assert {"ws1", "ws2"} <= {ws.name for ws in batchai.workspaces.list()}
    with pytest.raises(ResourceExistsError) as moved:
        batchai.workspaces.begin_create(resource_group, "ws1", models.WorkspaceCreateParameters(location="eastus")).result()
    assert moved.value.error.code == "Conflict"
    batchai.workspaces.begin_delete(resource_group, "ws1").result()
    with pytest.raises(ResourceNotFoundError) as missing:
        batchai.workspaces.get(resource_group, "ws1")
    assert missing.value.error.code == "WorkspaceNotFound"
    batchai.workspaces.begin_delete(resource_group, "ws1").result()  # deleting what is gone is fine (204)


def test_cluster_defaults_secrets_and_immutability(sandbox):
    cluster = sandbox.create_cluster(nodes=0)
    properties = sandbox.client.clusters.get(sandbox.group, WORKSPACE, "cluster")
    assert properties.vm_size == "STANDARD_NC6" and properties.vm_priority == "dedicated"
    assert properties.scale_settings.manual.node_deallocation_option == "requeue"
    image = properties.virtual_machine_configuration.image_reference
    assert (image.publisher, image.offer, image.sku, image.version) == ("Canonical", "UbuntuServer", "16.04-LTS", "latest")
    share = properties.node_setup.mount_volumes.azure_file_shares[0]
    assert share.file_mode == share.directory_mode == "0777"
    assert share.credentials.account_key is None
    assert properties.user_account_settings.admin_user_password is None
    assert properties.node_state_counts.idle_node_count == 0 and properties.current_node_count == 0
    again = sandbox.create_cluster(nodes=0)  # the same body again: accepted, nothing changes
    assert again.creation_time == cluster.creation_time
    with pytest.raises(ResourceExistsError) as conflict:
        sandbox.create_cluster(nodes=2)
    assert conflict.value.error.code == "Conflict"


def test_validation_errors_name_the_property(sandbox):
    client = sandbox.client

    def failure(call):
        with pytest.raises(HttpResponseError) as error:
            call()
        assert error.value.status_code == 400
        return error.value.error

    no_size = failure(lambda: client.clusters.begin_create(sandbox.group, WORKSPACE, "c", models.ClusterCreateParameters(
        scale_settings=models.ScaleSettings(manual=models.ManualScaleSettings(target_node_count=1)),
        user_account_settings=models.UserAccountSettings(admin_user_name="u", admin_user_password="p"))))
    assert no_size.code == "InvalidParameter" and "properties.vmSize" in no_size.message
    both = failure(lambda: client.clusters.begin_create(sandbox.group, WORKSPACE, "c", models.ClusterCreateParameters(
        vm_size="STANDARD_D1", user_account_settings=models.UserAccountSettings(admin_user_name="u", admin_user_password="p"),
        scale_settings=models.ScaleSettings(manual=models.ManualScaleSettings(target_node_count=1),
                                            auto_scale=models.AutoScaleSettings(minimum_node_count=0, maximum_node_count=1)))))
    assert "properties.scaleSettings" in both.message
    premium = failure(lambda: client.clusters.begin_create(sandbox.group, WORKSPACE, "c", models.ClusterCreateParameters(
        vm_size="Standard_DS2", user_account_settings=models.UserAccountSettings(admin_user_name="u", admin_user_password="p"),
        scale_settings=models.ScaleSettings(manual=models.ManualScaleSettings(target_node_count=1)))))
    assert "properties.vmSize" in premium.message
    cluster = sandbox.create_cluster(nodes=0)
    two_toolkits = failure(lambda: sandbox.submit(cluster, "j", **custom("true"),
                                                  py_torch_settings=models.PyTorchSettings(python_script_file_path="a.py")))
    assert "toolkit" in two_toolkits.message and "properties" in two_toolkits.message
    empty = failure(lambda: client.jobs.begin_create(sandbox.group, WORKSPACE, EXPERIMENT, "j",
                                                     models.JobCreateParameters(node_count=1)).result())
    assert "properties.cluster" in empty.message
    bad_name = failure(lambda: client.experiments.begin_create(sandbox.group, WORKSPACE, "bad.name").result())
    assert bad_name.code == "InvalidResourceName"
    bad_url = failure(lambda: sandbox.create_cluster("c2", nodes=0, mount_volumes=models.MountVolumes(
        azure_file_shares=[sandbox.share_mount(url="ftp://example.org/share")])))
    assert "azureFileShares[0].azureFileUrl" in bad_url.message


def test_missing_resources_and_parents(sandbox, batchai):
    client, group = sandbox.client, sandbox.group
    with pytest.raises(ResourceNotFoundError) as cluster:
        client.clusters.get(group, WORKSPACE, "nope")
    assert (cluster.value.error.code, cluster.value.error.message) == ("ClusterNotFound", "The specified cluster nope is not found")
    with pytest.raises(ResourceNotFoundError) as job:
        client.jobs.get(group, WORKSPACE, EXPERIMENT, "nope")
    assert (job.value.error.code, job.value.error.message) == ("JobNotFound", "The specified job nope is not found")
    with pytest.raises(ResourceNotFoundError) as experiment:
        client.experiments.get(group, WORKSPACE, "nope")
    assert experiment.value.error.code == "ExperimentNotFound"
    with pytest.raises(ResourceNotFoundError) as workspace:
        client.clusters.begin_create(group, "nope", "c", models.ClusterCreateParameters(
            vm_size="STANDARD_D1", scale_settings=models.ScaleSettings(manual=models.ManualScaleSettings(target_node_count=0)),
            user_account_settings=models.UserAccountSettings(admin_user_name="u", admin_user_password="p")))
    assert workspace.value.error.code == "WorkspaceNotFound"
    cluster_model = sandbox.create_cluster(nodes=0)
    with pytest.raises(ResourceNotFoundError) as parent:
        client.jobs.begin_create(group, WORKSPACE, "nope", "j", sandbox.job_parameters(cluster_model))
    assert parent.value.error.code == "ExperimentNotFound"
    with pytest.raises(ResourceNotFoundError) as group_missing:
        batchai.workspaces.begin_create(unique_name("rg"), "ws", models.WorkspaceCreateParameters(location=LOCATION))
    assert group_missing.value.error.code == "ResourceGroupNotFound"


def test_lro_answers_as_the_service_did(sandbox, endpoint):
    base = f"{group_path(endpoint, sandbox.group)}/workspaces/{WORKSPACE}"
    body = {"properties": {"vmSize": "STANDARD_D1", "scaleSettings": {"manual": {"targetNodeCount": 0}},
                           "userAccountSettings": {"adminUserName": "u", "adminUserSshPublicKey": "ssh-rsa AAAA"}}}
    created = raw(endpoint, "PUT", f"{base}/clusters/rawcluster", json=body)
    assert created.status_code == 202 and created.content == b""
    assert "retry-after" not in {name.lower() for name in created.headers}
    assert int(created.headers["retry-after-ms"]) <= 200
    status_url = created.headers["Azure-AsyncOperation"]
    assert "/providers/Microsoft.BatchAI/locations/westeurope/operationresults/" in status_url
    assert status_url.endswith("?api-version=2018-05-01") and status_url.startswith(endpoint.arm_url)
    assert "/operationstatuses/" in created.headers["Location"]
    document = requests.get(status_url, headers={"Authorization": f"Bearer {endpoint.token}"},
                            verify=endpoint.ca_cert, timeout=10).json()
    assert document["status"] == "Succeeded"
    assert document["properties"]["resourceId"].endswith(f"${sandbox.group}${WORKSPACE}$rawcluster")
    experiment = raw(endpoint, "PUT", f"{base}/experiments/rawexp")
    assert experiment.status_code == 200 and experiment.json()["properties"]["provisioningState"] == "succeeded"
    assert raw(endpoint, "PATCH", f"{base}/clusters/rawcluster",
               json={"properties": {"scaleSettings": {"manual": {"targetNodeCount": 0}}}}).status_code == 200
    assert raw(endpoint, "DELETE", f"{base}/clusters/rawcluster").status_code == 202
    assert raw(endpoint, "DELETE", f"{base}/clusters/nosuchcluster").status_code == 204
    assert raw(endpoint, "GET", f"{base}/clusters", query="api-version=2017-09-01-preview").status_code == 400


def test_paging_with_next_links(sandbox, endpoint):
    cluster = sandbox.create_cluster(nodes=1)
    for index in range(3):
        sandbox.client.experiments.begin_create(sandbox.group, WORKSPACE, f"extra{index}").result()
    pages = sandbox.client.experiments.list_by_workspace(
        sandbox.group, WORKSPACE, models.ExperimentsListByWorkspaceOptions(max_results=2)
    )
    assert [experiment.name for experiment in pages] == [EXPERIMENT, "extra0", "extra1", "extra2"]
    sandbox.submit(cluster, "files", **custom("for n in 1 2 3 4 5; do echo $n > $AZ_BATCHAI_OUTPUT_OUT/f$n.txt; done"),
                   output_directories=[models.OutputDirectory(id="OUT", path_prefix="$AZ_BATCHAI_MOUNT_ROOT/afs")])
    assert sandbox.wait_job("files").execution_state == "succeeded"
    # listOutputFiles is a POST; its next pages are GETs on nextLink, which carries every parameter.
    listed = sandbox.output_files("files", "OUT", max_results=2)
    assert [item.name for item in listed] == [f"f{n}.txt" for n in range(1, 6)]
    first = raw(endpoint, "POST", f"{group_path(endpoint, sandbox.group)}/workspaces/{WORKSPACE}/experiments/"
                f"{EXPERIMENT}/jobs/files/listOutputFiles",
                query="api-version=2018-05-01&outputdirectoryid=OUT&directory=.&linkexpiryinminutes=60&maxresults=2")
    next_link = first.json()["nextLink"]
    assert "api-version=2018-05-01" in next_link and "outputdirectoryid=OUT" in next_link
    with pytest.raises(HttpResponseError) as unknown:
        sandbox.output_files("files", "NOPE")
    assert unknown.value.error.code == "OutputDirectoryNotFound"


def test_experiment_and_workspace_deletion_cascade(sandbox, resource_client):
    client, group = sandbox.client, sandbox.group
    cluster = sandbox.create_cluster(nodes=1)
    sandbox.submit(cluster, "sleeper", **custom("sleep 60"))
    sandbox.wait_job("sleeper", ("running",))
    client.experiments.begin_delete(group, WORKSPACE, EXPERIMENT).result()
    with pytest.raises(ResourceNotFoundError):
        client.jobs.get(group, WORKSPACE, EXPERIMENT, "sleeper")
    assert sandbox.wait_cluster("cluster", lambda c: c.node_state_counts.idle_node_count == 1)
    client.experiments.begin_create(group, WORKSPACE, EXPERIMENT).result()
    resource_client.resource_groups.begin_delete(group).result()
    with pytest.raises(ResourceNotFoundError):
        client.workspaces.get(group, WORKSPACE)


def test_file_servers_operations_and_usages(sandbox):
    client, group = sandbox.client, sandbox.group
    server = client.file_servers.begin_create(group, WORKSPACE, "nfs", models.FileServerCreateParameters(
        vm_size="Standard_D2",
        ssh_configuration=models.SshConfiguration(
            user_account_settings=models.UserAccountSettings(admin_user_name="u", admin_user_password="p")),
        data_disks=models.DataDisks(disk_size_in_gb=10, disk_count=2, storage_account_type="Standard_LRS"),
    )).result()
    assert server.mount_settings.mount_point == "/mnt/data" and server.data_disks.caching_type == "none"
    assert server.ssh_configuration.user_account_settings.admin_user_password is None
    assert [item.name for item in client.file_servers.list_by_workspace(group, WORKSPACE)] == ["nfs"]
    cluster = sandbox.create_cluster(nodes=1, mount_volumes=models.MountVolumes(file_servers=[
        models.FileServerReference(file_server=models.ResourceId(id=server.id), relative_mount_path="nfs")]))
    sandbox.submit(cluster, "nfsjob", **custom("echo shared > $AZ_BATCHAI_MOUNT_ROOT/nfs/out.txt"))
    assert sandbox.wait_job("nfsjob").execution_state == "succeeded"
    operations = {operation.name for operation in client.operations.list()}
    assert "Microsoft.BatchAI/workspaces/experiments/jobs/terminate/action" in operations
    usages = {usage.name.value: usage for usage in client.usages.list(LOCATION)}
    assert usages["Clusters"].current_value >= 1 and usages["Clusters"].limit == 20
    assert usages["Standard NC Family Cluster Dedicated vCPUs"].current_value >= 6
    login = list(client.clusters.list_remote_login_information(group, WORKSPACE, "cluster"))
    assert len(login) == 1 and login[0].port == 50000 and login[0].node_id.startswith("tvm-")


def test_a_failed_operation_surfaces_through_the_poller(sandbox, admin):
    admin.add_fault(f"/resourceGroups/{sandbox.group}/.*/clusters/doomed$", "fail_operation", method="PUT",
                    code="ClusterProvisioningFailed", message="No capacity for this VM size.")
    with pytest.raises(HttpResponseError) as failed:
        sandbox.create_cluster("doomed", nodes=0)
    assert failed.value.error.code == "ClusterProvisioningFailed"
    with pytest.raises(ResourceNotFoundError):
        sandbox.client.clusters.get(sandbox.group, WORKSPACE, "doomed")
