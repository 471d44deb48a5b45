"""Storage accounts through azure-mgmt-storage's StorageManagementClient."""

from __future__ import annotations

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)

from tests.emulator_clients import LOCATION, unique_name

ACCOUNT = {"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": LOCATION}


def test_create_is_a_long_running_operation_returning_the_account(storage_client, resource_group, endpoint):
    name = unique_name("sa")
    poller = storage_client.storage_accounts.begin_create(
        resource_group, name, {**ACCOUNT, "tags": {"env": "test"}, "properties": {"minimumTlsVersion": "TLS1_2"}}
    )
    account = poller.result()
    assert poller.status() == "Succeeded"
    assert account.name == name
    assert account.id.endswith(f"/resourceGroups/{resource_group}/providers/Microsoft.Storage/storageAccounts/{name}")
    assert account.primary_endpoints.file == f"{endpoint.storage_url}/{name}/"
    assert account.provisioning_state == "Succeeded"
    assert (account.sku.name, account.sku.tier, account.kind) == ("Standard_LRS", "Standard", "StorageV2")
    assert account.minimum_tls_version == "TLS1_2"
    assert account.tags == {"env": "test"}
    assert storage_client.storage_accounts.get_properties(resource_group, name).creation_time == account.creation_time


def test_list_by_resource_group_and_update_tags(storage_client, make_storage_account):
    first = make_storage_account()
    second = make_storage_account(first.resource_group)
    listed = {account.name for account in storage_client.storage_accounts.list_by_resource_group(first.resource_group)}
    assert listed == {first.name, second.name}
    assert {first.name, second.name} <= {account.name for account in storage_client.storage_accounts.list()}
    updated = storage_client.storage_accounts.update(first.resource_group, first.name, {"tags": {"team": "ml"}})
    assert updated.tags == {"team": "ml"}
    assert storage_client.storage_accounts.get_properties(first.resource_group, first.name).tags == {"team": "ml"}


def test_keys_are_two_distinct_and_regenerate_replaces_one(storage_client, storage_account):
    keys = storage_client.storage_accounts.list_keys(storage_account.resource_group, storage_account.name).keys
    assert [key.key_name for key in keys] == ["key1", "key2"]
    assert keys[0].value != keys[1].value
    regenerated = storage_client.storage_accounts.regenerate_key(
        storage_account.resource_group, storage_account.name, {"key_name": "key1"}
    ).keys
    assert regenerated[0].value != keys[0].value
    assert regenerated[1].value == keys[1].value
    with pytest.raises(ClientAuthenticationError):
        storage_account.service(keys[0].value).create_share(unique_name("share"))
    storage_account.service(regenerated[0].value).create_share(unique_name("share"))


def test_delete_removes_the_account_and_its_files(storage_client, storage_account):
    share = storage_account.service().create_share(unique_name("share"))
    storage_client.storage_accounts.delete(storage_account.resource_group, storage_account.name)
    with pytest.raises(ResourceNotFoundError):
        storage_client.storage_accounts.get_properties(storage_account.resource_group, storage_account.name)
    with pytest.raises(ResourceNotFoundError):
        share.get_share_properties()
    # Deleting what is not there is not an error (204).
    storage_client.storage_accounts.delete(storage_account.resource_group, storage_account.name)


def test_names_are_global_and_checked(storage_client, storage_account, resource_group):
    with pytest.raises(ResourceExistsError) as raised:
        storage_client.storage_accounts.begin_create(resource_group, storage_account.name, ACCOUNT).result()
    assert raised.value.error.code == "StorageAccountAlreadyTaken"
    with pytest.raises(HttpResponseError) as raised:
        storage_client.storage_accounts.begin_create(resource_group, "Not_Valid", ACCOUNT).result()
    assert raised.value.error.code == "AccountNameInvalid"
    taken = storage_client.storage_accounts.check_name_availability({"name": storage_account.name})
    assert (taken.name_available, taken.reason) == (False, "AlreadyExists")
    assert storage_client.storage_accounts.check_name_availability({"name": unique_name("sa")}).name_available


def test_account_needs_an_existing_resource_group(storage_client):
    with pytest.raises(ResourceNotFoundError) as raised:
        storage_client.storage_accounts.begin_create(unique_name("rg"), unique_name("sa"), ACCOUNT).result()
    assert raised.value.error.code == "ResourceGroupNotFound"


def test_create_again_updates_in_place(storage_client, storage_account):
    again = storage_client.storage_accounts.begin_create(
        storage_account.resource_group, storage_account.name, {**ACCOUNT, "tags": {"second": "yes"}}
    ).result()
    assert again.tags == {"second": "yes"}
    keys = storage_client.storage_accounts.list_keys(storage_account.resource_group, storage_account.name).keys
    assert (keys[0].value, keys[1].value) == storage_account.keys
