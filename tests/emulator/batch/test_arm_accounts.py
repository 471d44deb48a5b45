"""Batch accounts on ARM through the unmodified azure-mgmt-batch: the create/delete LROs answered as recorded,
get, update, lists, keys, name rules and the resource group cascade."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.core.exceptions import (
    HttpResponseError, ResourceExistsError, ResourceNotFoundError, ResponseNotReadError,
)

from batchai_spec.emulator.batch import store
from tests.emulator.batch.conftest import BatchAccount, batch_mgmt_for, nodes_of, pool_body, wait_for
from tests.emulator_clients import LOCATION, unique_name

# The account's keys as the 2024-10-24 recording shows them (test_batch_jobs_and_tasks.yaml); the emulator's
# GET, poll result and lists have exactly these.
ACCOUNT_KEYS = {"id", "name", "type", "location", "properties", "identity"}
PROPERTY_KEYS = {
    "accountEndpoint", "nodeManagementEndpoint", "provisioningState", "dedicatedCoreQuota",
    "dedicatedCoreQuotaPerVMFamily", "dedicatedCoreQuotaPerVMFamilyEnforced", "lowPriorityCoreQuota", "poolQuota",
    "activeJobAndJobScheduleQuota", "poolAllocationMode", "publicNetworkAccess", "privateEndpointConnections",
    "encryption", "allowedAuthenticationModes",
}


class Exchanges:
    """Every response the client got (raw_response_hook), for the LRO shapes."""

    def __init__(self):
        self.seen = []

    def __call__(self, pipeline_response) -> None:
        response = pipeline_response.http_response
        headers = {name.lower(): value for name, value in response.headers.items()}
        try:
            text = response.text()
        except ResponseNotReadError:  # a streamed answer (an LRO's first): its length says whether it is empty
            text = "" if headers.get("content-length") == "0" else None
        self.seen.append((response.request.method, response.request.url, response.status_code, headers, text))


def test_create_is_the_recorded_lro_and_get_shows_the_account(endpoint, resource_client):
    exchanges = Exchanges()
    client = batch_mgmt_for(endpoint, raw_response_hook=exchanges)
    group, name = unique_name("rg"), unique_name("batch")
    resource_client.resource_groups.create_or_update(group, {"location": LOCATION})

    account = client.batch_account.begin_create(group, name, {"location": LOCATION}).result()

    (put, *polls) = exchanges.seen
    assert put[0] == "PUT" and put[2] == 202 and put[4] == ""
    assert "azure-asyncoperation" not in put[3] and "retry-after" not in put[3]
    location = put[3]["location"]
    prefix = (f"{endpoint.arm_url}/subscriptions/{endpoint.subscription_id}/resourceGroups/{group}"
              f"/providers/Microsoft.Batch/batchAccounts/{name}/operationResults/")
    assert location.startswith(prefix) and location.endswith("?api-version=2025-06-01")
    assert [(method, status) for method, _, status, _, _ in polls] == [("GET", 202), ("GET", 200)]
    assert polls[0][4] == "" and polls[0][3]["location"] == location
    assert polls[1][3]["content-type"].startswith("application/json")

    assert account.name == name and account.location == LOCATION
    assert account.account_endpoint == f"{name}.{LOCATION}.batch.azure.com"  # no scheme, as recorded
    assert account.provisioning_state == "Succeeded"
    assert account.pool_allocation_mode == "BatchService"
    assert account.allowed_authentication_modes == ["SharedKey", "AAD", "TaskAuthenticationToken"]
    quotas = {item.name: item.core_quota for item in account.dedicated_core_quota_per_vm_family}
    assert quotas["Standard NCASv3_T4 Family"] == 0 and quotas["standardDv3Family"] == 500

    exchanges.seen.clear()
    fetched = client.batch_account.get(group, name)
    (_, _, status, headers, text) = exchanges.seen[0]
    assert status == 200 and headers["etag"].startswith('"0x') and "last-modified" in headers
    document = fetched.as_dict()
    assert set(fetched.keys()) == ACCOUNT_KEYS and set(fetched["properties"]) == PROPERTY_KEYS
    assert "primary" not in text and "key" not in {key.lower() for key in document["properties"]}
    assert fetched.id == (f"/subscriptions/{endpoint.subscription_id}/resourceGroups/{group}"
                          f"/providers/Microsoft.Batch/batchAccounts/{name}")


def test_keys_are_listed_and_regenerated_one_at_a_time(batch_mgmt, batch_account: BatchAccount):
    keys = batch_mgmt.batch_account.get_keys(batch_account.resource_group, batch_account.name)
    assert keys.as_dict() == {"accountName": batch_account.name, "primary": batch_account.keys[0],
                              "secondary": batch_account.keys[1]}
    assert len(keys.primary) == 88 and keys.primary != keys.secondary

    renewed = batch_mgmt.batch_account.regenerate_key(batch_account.resource_group, batch_account.name,
                                                      {"keyName": "Primary"})
    assert renewed.primary != keys.primary and renewed.secondary == keys.secondary
    again = batch_mgmt.batch_account.get_keys(batch_account.resource_group, batch_account.name)
    assert (again.primary, again.secondary) == (renewed.primary, renewed.secondary)

    with pytest.raises(HttpResponseError) as raised:
        batch_mgmt.batch_account.regenerate_key(batch_account.resource_group, batch_account.name,
                                                {"keyName": "Tertiary"})
    assert raised.value.status_code == 400


def test_update_changes_tags_and_properties(endpoint, batch_mgmt, batch_account: BatchAccount, storage_account):
    group, name = batch_account.resource_group, batch_account.name
    before = batch_mgmt.batch_account.get(group, name)
    assert before.tags is None  # no tags: the key is left out, as recorded

    storage_id = (f"/subscriptions/{endpoint.subscription_id}/resourceGroups/{storage_account.resource_group}"
                  f"/providers/Microsoft.Storage/storageAccounts/{storage_account.name}")
    updated = batch_mgmt.batch_account.update(group, name, {
        "tags": {"managed-by": "batchai-spec"},
        "properties": {"allowedAuthenticationModes": ["AAD"], "autoStorage": {"storageAccountId": storage_id}},
    })
    assert updated.tags == {"managed-by": "batchai-spec"}
    assert updated.allowed_authentication_modes == ["AAD"]
    assert updated.auto_storage.storage_account_id == storage_id and updated.auto_storage.last_key_sync
    assert batch_mgmt.batch_account.get(group, name).tags == {"managed-by": "batchai-spec"}

    cleared = batch_mgmt.batch_account.update(group, name, {"tags": {}})
    assert cleared.tags is None and cleared.allowed_authentication_modes == ["AAD"]


def test_lists_by_group_and_subscription(batch_mgmt, resource_client):
    group = unique_name("rg")
    resource_client.resource_groups.create_or_update(group, {"location": LOCATION})
    names = [unique_name("batch") for _ in range(2)]
    for name in names:
        batch_mgmt.batch_account.begin_create(group, name, {"location": LOCATION, "tags": {"n": name}}).result()

    in_group = list(batch_mgmt.batch_account.list_by_resource_group(group))
    assert [account.name for account in in_group] == names
    assert [account.tags for account in in_group] == [{"n": name} for name in names]
    everywhere = {account.name for account in batch_mgmt.batch_account.list()}
    assert set(names) <= everywhere


def test_names_are_checked_and_unique_across_groups(batch_mgmt, batch_account: BatchAccount, resource_client):
    group = batch_account.resource_group
    for bad in ("ab", "UpperCase1", "with-dash", "x" * 25):
        with pytest.raises(HttpResponseError) as raised:
            batch_mgmt.batch_account.begin_create(group, bad, {"location": LOCATION}).result()
        assert raised.value.status_code == 400 and raised.value.error.code == "AccountNameInvalid"

    other = unique_name("rg")
    resource_client.resource_groups.create_or_update(other, {"location": LOCATION})
    with pytest.raises(ResourceExistsError) as raised:
        batch_mgmt.batch_account.begin_create(other, batch_account.name, {"location": LOCATION}).result()
    assert raised.value.error.code == "AccountNameAlreadyExists"
    assert f"An account named '{batch_account.name}' is already in use." in str(raised.value)

    availability = batch_mgmt.location.check_name_availability(
        LOCATION, {"name": batch_account.name, "type": "Microsoft.Batch/batchAccounts"})
    assert (availability.name_available, availability.reason) == (False, "AlreadyExists")
    assert batch_mgmt.location.check_name_availability(
        LOCATION, {"name": unique_name("free"), "type": "Microsoft.Batch/batchAccounts"}).name_available
    assert batch_mgmt.location.get_quotas(LOCATION).account_quota == 3

    # The same PUT again in the account's own group is accepted (and keeps the keys).
    batch_mgmt.batch_account.begin_create(group, batch_account.name, {"location": LOCATION, "tags": {"a": "b"}}
                                          ).result()
    assert batch_mgmt.batch_account.get_keys(group, batch_account.name).primary == batch_account.keys[0]


def test_missing_accounts_are_404(batch_mgmt, batch_account: BatchAccount):
    with pytest.raises(ResourceNotFoundError) as raised:
        batch_mgmt.batch_account.get(batch_account.resource_group, unique_name("none"))
    assert raised.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError):
        batch_mgmt.batch_account.get_keys(batch_account.resource_group, unique_name("none"))


def test_delete_is_an_lro_and_takes_the_pools(endpoint, emulator, batch_account: BatchAccount, batch_mgmt):
    group, name = batch_account.resource_group, batch_account.name
    batch_mgmt.pool.create(group, name, "p1", pool_body(dedicated=1))
    wait_for(lambda: nodes_of(emulator, name, "p1"), lambda nodes: len(nodes) == 1)
    exchanges = Exchanges()
    client = batch_mgmt_for(endpoint, raw_response_hook=exchanges)

    client.batch_account.begin_delete(group, name).result()

    delete, *polls = exchanges.seen
    assert delete[0] == "DELETE" and delete[2] == 202 and delete[4] == ""
    assert "azure-asyncoperation" not in delete[3]
    location = delete[3]["location"]
    assert location.startswith(f"{endpoint.arm_url}/subscriptions/{endpoint.subscription_id}/providers/"
                               f"Microsoft.Batch/locations/{LOCATION}/accountOperationResults/{name}-")
    assert polls[-1][2] == 200 and polls[-1][4] == ""
    assert all(status == 202 for _, _, status, _, _ in polls[:-1])
    with pytest.raises(ResourceNotFoundError):
        batch_mgmt.batch_account.get(group, name)
    assert nodes_of(emulator, name, "p1") == []
    assert store.list_pools(emulator.state.connection(), name) == []
    # Deleting what is not there is no error (204).
    batch_mgmt.batch_account.begin_delete(group, name).result()


def test_resource_group_deletion_takes_accounts_pools_and_nodes(emulator, batch_mgmt, batch_account: BatchAccount,
                                                                resource_client):
    group, name = batch_account.resource_group, batch_account.name
    batch_mgmt.pool.create(group, name, "p1", pool_body(dedicated=2))
    wait_for(lambda: nodes_of(emulator, name, "p1"), lambda nodes: len(nodes) == 2)
    roots = [node.runtime["root"] for node in nodes_of(emulator, name, "p1")]

    resource_client.resource_groups.begin_delete(group).result()

    connection = emulator.state.connection()
    wait_for(lambda: store.account_by_name(connection, name), lambda account: account is None)
    assert store.list_pools(connection, name) == [] and nodes_of(emulator, name, "p1") == []
    assert name not in {account.name for account in batch_mgmt.batch_account.list()}
    assert not any(Path(root).exists() for root in roots)
    # The name is free again.
    resource_client.resource_groups.create_or_update(group, {"location": LOCATION})
    batch_mgmt.batch_account.begin_create(group, name, {"location": LOCATION}).result()


def test_injected_faults_reach_the_batch_routes(admin, emulator, batch_mgmt, batch_account: BatchAccount):
    group = batch_account.resource_group
    name = unique_name("batch")
    admin.add_fault(f"/batchAccounts/{name}$", "fail_operation", method="PUT", code="QuotaExceeded",
                    message="No more Batch accounts today.")
    with pytest.raises(HttpResponseError) as raised:
        batch_mgmt.batch_account.begin_create(group, name, {"location": LOCATION}).result()
    assert raised.value.error.code == "QuotaExceeded"
    assert store.account_by_name(emulator.state.connection(), name) is None

    batch_mgmt.pool.create(group, batch_account.name, "p1", pool_body())
    admin.add_fault(f"/batchAccounts/{batch_account.name}/pools/p1$", "fail_operation", method="DELETE")
    with pytest.raises(HttpResponseError) as raised:
        batch_mgmt.pool.begin_delete(group, batch_account.name, "p1").result()
    assert raised.value.error.code == "InjectedFault"
    assert batch_mgmt.pool.get(group, batch_account.name, "p1").provisioning_state == "Succeeded"
