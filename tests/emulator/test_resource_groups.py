"""Resource groups through azure-mgmt-resource's ResourceManagementClient."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ClientAuthenticationError, ResourceExistsError, ResourceNotFoundError

from tests.emulator_clients import LOCATION, resource_client_for, unique_name


def _status(pipeline_response, deserialized, headers):
    return pipeline_response.http_response.status_code, deserialized


def test_create_answers_201_then_200_and_get_returns_the_group(resource_client, endpoint):
    name = unique_name("RG-Mixed.Case_")
    status, created = resource_client.resource_groups.create_or_update(
        name, {"location": LOCATION, "tags": {"owner": "tests"}}, cls=_status
    )
    assert status == 201
    assert created.id == f"/subscriptions/{endpoint.subscription_id}/resourceGroups/{name}"
    assert created.properties.provisioning_state == "Succeeded"
    status, again = resource_client.resource_groups.create_or_update(name, {"location": LOCATION}, cls=_status)
    assert status == 200
    assert again.tags is None
    fetched = resource_client.resource_groups.get(name.lower())
    assert (fetched.name, fetched.location, fetched.type) == (name, LOCATION, "Microsoft.Resources/resourceGroups")


def test_check_existence_and_missing_group(resource_client, resource_group):
    assert resource_client.resource_groups.check_existence(resource_group) is True
    assert resource_client.resource_groups.check_existence(unique_name("rg")) is False
    with pytest.raises(ResourceNotFoundError) as raised:
        resource_client.resource_groups.get(unique_name("rg"))
    assert raised.value.error.code == "ResourceGroupNotFound"


def test_update_replaces_tags(resource_client, resource_group):
    updated = resource_client.resource_groups.update(resource_group, {"tags": {"a": "1", "b": "2"}})
    assert updated.tags == {"a": "1", "b": "2"}
    assert resource_client.resource_groups.get(resource_group).tags == {"a": "1", "b": "2"}


def test_existing_group_cannot_move(resource_client, resource_group):
    with pytest.raises(ResourceExistsError) as raised:
        resource_client.resource_groups.create_or_update(resource_group, {"location": "eastus"})
    assert raised.value.error.code == "InvalidResourceGroupLocation"


def test_list_pages_and_filters_by_tag(resource_client):
    tag = unique_name("t")
    names = {unique_name("rglist") for _ in range(105)}
    for name in names:
        resource_client.resource_groups.create_or_update(name, {"location": LOCATION, "tags": {"suite": tag}})
    tagged = resource_client.resource_groups.list(filter=f"tagName eq 'suite' and tagValue eq '{tag}'")
    listed = {group.name for group in tagged}
    assert listed == names
    assert names <= {group.name for group in resource_client.resource_groups.list()}


def test_delete_is_a_long_running_operation(resource_client, resource_group):
    poller = resource_client.resource_groups.begin_delete(resource_group)
    assert poller.result() is None
    assert poller.status() == "Succeeded"
    assert resource_client.resource_groups.check_existence(resource_group) is False
    with pytest.raises(ResourceNotFoundError):
        resource_client.resource_groups.begin_delete(resource_group)


def test_delete_cascades_to_storage_accounts_and_their_shares(resource_client, storage_client, storage_account):
    share = storage_account.service().create_share(unique_name("share"))
    share.get_file_client("kept.txt").upload_file(b"data")
    resource_client.resource_groups.begin_delete(storage_account.resource_group).result()
    with pytest.raises(ResourceNotFoundError):
        storage_client.storage_accounts.get_properties(storage_account.resource_group, storage_account.name)
    assert storage_client.storage_accounts.check_name_availability({"name": storage_account.name}).name_available
    with pytest.raises(ResourceNotFoundError):
        share.get_share_properties()


def test_wrong_or_missing_token_is_refused(endpoint):
    client = resource_client_for(endpoint, token="not-the-token")
    with pytest.raises(ClientAuthenticationError) as raised:
        client.resource_groups.get(unique_name("rg"))
    assert raised.value.status_code == 401
    assert raised.value.error.code == "InvalidAuthenticationToken"


def test_other_subscription_is_unknown(resource_client_other_subscription):
    with pytest.raises(ResourceNotFoundError) as raised:
        resource_client_other_subscription.resource_groups.create_or_update(unique_name("rg"), {"location": LOCATION})
    assert raised.value.error.code == "SubscriptionNotFound"


@pytest.fixture
def resource_client_other_subscription(endpoint, arm_credential):
    from azure.mgmt.resource.resources import ResourceManagementClient

    from tests.emulator_clients import arm_clients_options

    unknown = "00000000-0000-0000-0000-000000000000"
    return ResourceManagementClient(arm_credential, unknown, **arm_clients_options(endpoint))


def test_the_next_page_of_a_filtered_list_is_filtered_too(resource_client):
    """Groups of no tag sort between the tagged ones: the second page keeps the filter (its link carries it)."""
    tag = unique_name("t")
    tagged = {f"rgpage-{index:03d}-b-{tag}" for index in range(101)}
    others = {f"rgpage-{index:03d}-a-{tag}" for index in range(101)}
    for name in tagged | others:
        tags = {"suite": tag} if name in tagged else {}
        resource_client.resource_groups.create_or_update(name, {"location": LOCATION, "tags": tags})
    listed = [group.name for group in resource_client.resource_groups.list(filter=f"tagName eq 'suite' and tagValue eq '{tag}'")]
    assert sorted(listed) == sorted(tagged)
