"""Pools on ARM through the unmodified azure-mgmt-batch: create (synchronous, conditional), get, list, PATCH and
its mutability rules, secrets, unsupported mounts, delete (an LRO), stopResize and disableAutoScale."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from batchai_spec.emulator.batch import store
from tests.emulator.batch.conftest import BatchAccount, BatchShare, batch_delays, nodes_of, pool_body, wait_for

SERVER_PROPERTIES = {
    "lastModified", "creationTime", "provisioningState", "provisioningStateTransitionTime", "allocationState",
    "allocationStateTransitionTime", "currentDedicatedNodes", "currentLowPriorityNodes",
}


def steady(client, account: BatchAccount, pool: str, dedicated: int):
    return wait_for(lambda: client.pool.get(account.resource_group, account.name, pool),
                    lambda found: found.allocation_state == "Steady" and found.current_dedicated_nodes == dedicated)


def test_create_get_and_list(emulator, batch_mgmt, batch_account: BatchAccount, batch_share: BatchShare):
    group, name = batch_account.resource_group, batch_account.name
    body = pool_body(
        dedicated=0,
        startTask={"commandLine": "/bin/true", "environmentSettings": [{"name": "A", "value": "1"}]},
        mountConfiguration=[batch_share.mount()],
        userAccounts=[{"name": "demo", "password": "Secret-pw1", "elevationLevel": "Admin"}],
        metadata=[{"name": "managed-by", "value": "batchai-spec"}],
        interNodeCommunication="Enabled",
        taskSlotsPerNode=2,
        networkConfiguration={"subnetId": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/"
                                          "virtualNetworks/v/subnets/s"},
    )
    body["properties"]["deploymentConfiguration"]["virtualMachineConfiguration"]["containerConfiguration"] = {
        "type": "DockerCompatible", "containerImageNames": ["ubuntu:22.04"],
        "containerRegistries": [{"registryServer": "r.azurecr.io", "username": "u", "password": "reg-pw"}],
    }
    created = batch_mgmt.pool.create(group, name, "p1", body)

    assert created.name == "p1" and created.type == "Microsoft.Batch/batchAccounts/pools"
    assert created.id.endswith(f"/providers/Microsoft.Batch/batchAccounts/{name}/pools/p1")
    assert created.etag.startswith('W/"0x')
    properties = created["properties"]
    assert SERVER_PROPERTIES <= set(properties)
    assert (created.provisioning_state, created.allocation_state) == ("Succeeded", "Steady")
    assert properties["scaleSettings"] == {"fixedScale": {"targetDedicatedNodes": 0, "targetLowPriorityNodes": 0,
                                                          "resizeTimeout": "PT15M"}}
    assert properties["startTask"] == {
        "commandLine": "/bin/true", "environmentSettings": [{"name": "A", "value": "1"}], "maxTaskRetryCount": 0,
        "waitForSuccess": True, "userIdentity": {"autoUser": {"scope": "Pool", "elevationLevel": "NonAdmin"}},
    }
    assert (properties["taskSlotsPerNode"], properties["interNodeCommunication"]) == (2, "Enabled")
    assert properties["taskSchedulingPolicy"] == {"nodeFillType": "Spread"}
    # Secrets are kept for the nodes, never shown.
    share = properties["mountConfiguration"][0]["azureFileShareConfiguration"]
    assert "accountKey" not in share and share["relativeMountPath"] == "afs"
    assert properties["userAccounts"] == [{"name": "demo", "elevationLevel": "Admin"}]
    registry = properties["deploymentConfiguration"]["virtualMachineConfiguration"]["containerConfiguration"][
        "containerRegistries"][0]
    assert registry == {"registryServer": "r.azurecr.io", "username": "u"}
    stored = store.get_pool(emulator.state.connection(), name, "p1")
    assert stored.properties["userAccounts"][0]["password"] == "Secret-pw1"
    assert stored.properties["mountConfiguration"][0]["azureFileShareConfiguration"]["accountKey"] == batch_share.key

    fetched = batch_mgmt.pool.get(group, name, "p1")
    assert fetched.as_dict() == created.as_dict()
    listed = list(batch_mgmt.pool.list_by_batch_account(group, name))
    assert [pool.name for pool in listed] == ["p1"] and listed[0].etag == created.etag
    with pytest.raises(ResourceNotFoundError) as raised:
        batch_mgmt.pool.get(group, name, "nope")
    assert raised.value.error.code == "PoolNotFound"


def test_conditional_create_and_update(batch_mgmt, batch_account: BatchAccount):
    group, name = batch_account.resource_group, batch_account.name
    created = batch_mgmt.pool.create(group, name, "p1", pool_body(), match_condition=MatchConditions.IfMissing)
    with pytest.raises(ResourceExistsError):
        batch_mgmt.pool.create(group, name, "p1", pool_body(), match_condition=MatchConditions.IfMissing)

    metadata = {"properties": {"metadata": [{"name": "k", "value": "v"}]}}
    updated = batch_mgmt.pool.update(group, name, "p1", metadata, etag=created.etag,
                                     match_condition=MatchConditions.IfNotModified)
    assert updated.etag != created.etag and updated["properties"]["metadata"] == [{"name": "k", "value": "v"}]
    with pytest.raises(ResourceModifiedError) as raised:
        batch_mgmt.pool.update(group, name, "p1", metadata, etag=created.etag,
                               match_condition=MatchConditions.IfNotModified)
    assert raised.value.status_code == 412 and raised.value.error.code == "ConditionNotMet"
    # A PUT that changes nothing keeps the etag (applying twice is a no-op).
    again = batch_mgmt.pool.create(group, name, "p1", {"properties": {**pool_body()["properties"],
                                                                       "metadata": [{"name": "k", "value": "v"}]}})
    assert again.etag == updated.etag


def test_mutability_of_pool_properties(emulator, batch_mgmt, batch_account: BatchAccount):
    group, name = batch_account.resource_group, batch_account.name
    batch_mgmt.pool.create(group, name, "p1", pool_body(dedicated=1))
    steady(batch_mgmt, batch_account, "p1", 1)

    # Changeable with nodes present: scale settings, start task, metadata.
    changed = batch_mgmt.pool.update(group, name, "p1", {"properties": {
        "startTask": {"commandLine": "/bin/echo hi"}, "metadata": [{"name": "a", "value": "b"}],
    }})
    assert changed["properties"]["startTask"]["commandLine"] == "/bin/echo hi"
    assert changed["properties"]["vmSize"] == "Standard_D2s_v3"  # a merge: the rest is kept

    for properties in ({"vmSize": "Standard_NC4as_T4_v3"},
                       {"deploymentConfiguration": {"virtualMachineConfiguration": {
                           "imageReference": {"publisher": "p", "offer": "o", "sku": "s", "version": "latest"},
                           "nodeAgentSkuId": "batch.node.ubuntu 24.04"}}}):
        with pytest.raises(HttpResponseError) as raised:
            batch_mgmt.pool.update(group, name, "p1", {"properties": properties})
        assert raised.value.status_code == 400 and raised.value.error.code == "PropertyCannotBeUpdated"
        assert "no dedicated" in raised.value.error.message
    for properties in ({"interNodeCommunication": "Enabled"}, {"taskSlotsPerNode": 4},
                       {"networkConfiguration": {"subnetId": "/s"}}):
        with pytest.raises(HttpResponseError) as raised:
            batch_mgmt.pool.update(group, name, "p1", {"properties": properties})
        assert raised.value.error.code == "PropertyCannotBeUpdated", properties
    # A PUT replaces: the same rules apply to what it changes.
    with pytest.raises(HttpResponseError) as raised:
        batch_mgmt.pool.create(group, name, "p1", pool_body(dedicated=1, taskSlotsPerNode=3))
    assert raised.value.error.code == "PropertyCannotBeUpdated"

    # Once Steady with no node, the VM size and image can change.
    batch_mgmt.pool.update(group, name, "p1", {"properties": {"scaleSettings": {"fixedScale": {
        "targetDedicatedNodes": 0}}}})
    steady(batch_mgmt, batch_account, "p1", 0)
    wait_for(lambda: nodes_of(emulator, name, "p1"), lambda nodes: nodes == [])
    resized = batch_mgmt.pool.update(group, name, "p1", {"properties": {"vmSize": "Standard_NC4as_T4_v3"}})
    assert resized["properties"]["vmSize"] == "Standard_NC4as_T4_v3"
    assert resized["properties"]["startTask"]["commandLine"] == "/bin/echo hi"


def test_bodies_are_checked(batch_mgmt, batch_account: BatchAccount, batch_share: BatchShare):
    group, name = batch_account.resource_group, batch_account.name
    cases = [
        ({"properties": {}}, "MissingRequiredProperty"),
        ({"properties": {"vmSize": "Standard_D2s_v3"}}, "MissingRequiredProperty"),
        (pool_body(startTask={"waitForSuccess": True}), "MissingRequiredProperty"),
        (pool_body(scaleSettings={"fixedScale": {}, "autoScale": {"formula": "$TargetDedicatedNodes=1"}}),
         "InvalidPropertyValue"),
        (pool_body(formula="$TargetDedicatedNodes=1", scaleSettings={"autoScale": {
            "formula": "$TargetDedicatedNodes=1", "evaluationInterval": "PT1M"}}), "InvalidPropertyValue"),
        (pool_body(mountConfiguration=[{"azureBlobFileSystemConfiguration": {
            "accountName": "a", "containerName": "c", "accountKey": "k", "relativeMountPath": "blob"}}]),
         "MountTypeNotSupported"),
        (pool_body(mountConfiguration=[{"nfsMountConfiguration": {"source": "10.0.0.9:/x",
                                                                  "relativeMountPath": "nfs"}}]),
         "MountTypeNotSupported"),
        (pool_body(mountConfiguration=[{"cifsMountConfiguration": {
            "source": "//s/x", "relativeMountPath": "cifs", "username": "u", "password": "p"}}]),
         "MountTypeNotSupported"),
        (pool_body(mountConfiguration=[batch_share.mount(path="../escape")]), "InvalidPropertyValue"),
        (pool_body(mountConfiguration=[batch_share.mount(), batch_share.mount()]), "InvalidPropertyValue"),
        (pool_body(scaleSettings={"fixedScale": {"nodeDeallocationOption": "Sometimes"}}), "InvalidPropertyValue"),
    ]
    for body, code in cases:
        with pytest.raises(HttpResponseError) as raised:
            batch_mgmt.pool.create(group, name, "bad", body)
        assert (raised.value.status_code, raised.value.error.code) == (400, code), body
    with pytest.raises(HttpResponseError) as raised:
        batch_mgmt.pool.create(group, name, "bad", pool_body(mountConfiguration=[{"nfsMountConfiguration": {
            "source": "s", "relativeMountPath": "n"}}]))
    assert "Azure File shares only" in raised.value.error.message
    assert list(batch_mgmt.pool.list_by_batch_account(group, name)) == []


def test_delete_is_an_lro_and_nodes_leave_first(emulator, batch_mgmt, batch_account: BatchAccount):
    group, name = batch_account.resource_group, batch_account.name
    batch_mgmt.pool.create(group, name, "p1", pool_body(dedicated=2))
    steady(batch_mgmt, batch_account, "p1", 2)
    roots = [node.runtime["root"] for node in nodes_of(emulator, name, "p1")]

    poller = batch_mgmt.pool.begin_delete(group, name, "p1")
    initial = poller.polling_method()._initial_response.http_response
    assert initial.status_code == 202 and "/operationResults/" in initial.headers["Location"]
    assert "Azure-AsyncOperation" not in initial.headers
    poller.result()

    with pytest.raises(ResourceNotFoundError):
        batch_mgmt.pool.get(group, name, "p1")
    assert nodes_of(emulator, name, "p1") == []
    assert not any(Path(root).exists() for root in roots)
    batch_mgmt.pool.begin_delete(group, name, "p1").result()  # nothing there: 204


def test_deleting_pool_shows_deleting_while_its_nodes_leave(emulator, batch_context, batch_mgmt,
                                                            batch_account: BatchAccount):
    group, name = batch_account.resource_group, batch_account.name
    batch_mgmt.pool.create(group, name, "p1", pool_body(dedicated=1))
    steady(batch_mgmt, batch_account, "p1", 1)
    with batch_delays(batch_context, node_leaving_s=3.0):
        poller = batch_mgmt.pool.begin_delete(group, name, "p1")
        seen = batch_mgmt.pool.get(group, name, "p1")
        assert seen.provisioning_state == "Deleting"
        assert [node.state for node in nodes_of(emulator, name, "p1")] in (["leavingpool"], [])
        with pytest.raises(HttpResponseError) as raised:
            batch_mgmt.pool.update(group, name, "p1", {"properties": {"metadata": []}})
        assert raised.value.status_code == 409
        poller.result()


def test_stop_resize_and_disable_auto_scale(emulator, batch_context, batch_mgmt, batch_account: BatchAccount):
    group, name = batch_account.resource_group, batch_account.name
    with batch_delays(batch_context, allocation_s=30.0):
        batch_mgmt.pool.create(group, name, "p1", pool_body(dedicated=3))
        stopped = batch_mgmt.pool.stop_resize(group, name, "p1")
    assert stopped.allocation_state == "Stopping"
    assert stopped["properties"]["resizeOperationStatus"]["errors"][0]["code"] == "ResizeStopped"
    settled = steady(batch_mgmt, batch_account, "p1", 0)
    assert settled["properties"]["scaleSettings"]["fixedScale"]["targetDedicatedNodes"] == 3
    assert nodes_of(emulator, name, "p1") == []

    auto = batch_mgmt.pool.create(group, name, "p2", pool_body(formula="$TargetDedicatedNodes = 2;"))
    assert auto["properties"]["autoScaleRun"]["results"].startswith("$TargetDedicatedNodes=2;")
    steady(batch_mgmt, batch_account, "p2", 2)
    disabled = batch_mgmt.pool.disable_auto_scale(group, name, "p2")
    assert disabled["properties"]["scaleSettings"] == {"fixedScale": {
        "targetDedicatedNodes": 2, "targetLowPriorityNodes": 0, "resizeTimeout": "PT15M"}}
    assert "autoScaleRun" not in disabled["properties"]
    assert steady(batch_mgmt, batch_account, "p2", 2).allocation_state == "Steady"
