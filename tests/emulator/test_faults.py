"""Fault rules of the admin API, each kind seen through the SDKs the way a client-side test would."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from batchai_spec.emulator.admin_client import AdminClient, AdminError
from tests.emulator_clients import LOCATION, resource_client_for, storage_client_for, unique_name

ACCOUNT = {"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": LOCATION}


@pytest.fixture
def admin(endpoint):
    """Per test, rules cleared after: rules are shared by the whole emulator."""
    client = AdminClient(endpoint)
    yield client
    client.clear_faults()


def _group_path(name: str) -> str:
    return f"/resourcegroups/{name}$"


def test_status_rules_are_retried_by_the_arm_client_and_count_down(admin, resource_client, resource_group):
    admin.add_fault(_group_path(resource_group), "status", method="GET", status=503, count=1)
    assert resource_client.resource_groups.get(resource_group).name == resource_group
    assert admin.faults() == []


def test_a_rule_without_count_holds_until_cleared(admin, endpoint, resource_group):
    client = resource_client_for(endpoint, retry_total=0)
    admin.add_fault(_group_path(resource_group), "status", method="GET", status=500, count=None, code="Boom")
    for _ in range(2):
        with pytest.raises(HttpResponseError) as raised:
            client.resource_groups.get(resource_group)
        assert (raised.value.status_code, raised.value.error.code) == (500, "Boom")
    admin.clear_faults()
    assert client.resource_groups.get(resource_group).name == resource_group


def test_429_carries_retry_after(admin, storage_account):
    share_name = unique_name("share")
    admin.add_fault(f"/{share_name}$", "status", service="storage", method="PUT", status=429, retry_after=7)
    with pytest.raises(HttpResponseError) as raised:
        storage_account.service().create_share(share_name)
    assert raised.value.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"
    assert raised.value.error_code == "InjectedFault"
    storage_account.service().create_share(share_name)


def test_dropped_connection(admin, endpoint, resource_group):
    admin.add_fault(_group_path(resource_group), "drop", method="GET", count=1)
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        resource_client_for(endpoint, retry_total=0).resource_groups.get(resource_group)
    admin.add_fault(_group_path(resource_group), "drop", method="GET", count=1)
    # The default client retries a dropped connection and succeeds.
    assert resource_client_for(endpoint).resource_groups.get(resource_group).name == resource_group


def test_delayed_response_outlasts_a_short_read_timeout(admin, endpoint, resource_group):
    admin.add_fault(_group_path(resource_group), "delay", method="GET", delay_s=1.0, count=1)
    with pytest.raises(ServiceResponseError):
        resource_client_for(endpoint, retry_total=0, read_timeout=0.2).resource_groups.get(resource_group)
    assert admin.faults() == []


def test_failed_operation_on_storage_account_create(admin, endpoint, resource_group):
    client = storage_client_for(endpoint)
    name = unique_name("sa")
    admin.add_fault(f"/storageAccounts/{name}$", "fail_operation", method="PUT", code="QuotaExceeded",
                    message="No more accounts today.")
    with pytest.raises(HttpResponseError) as raised:
        client.storage_accounts.begin_create(resource_group, name, ACCOUNT).result()
    assert raised.value.error.code == "QuotaExceeded"
    assert client.storage_accounts.check_name_availability({"name": name}).name_available
    assert client.storage_accounts.begin_create(resource_group, name, ACCOUNT).result().name == name


def test_failed_operation_on_resource_group_delete_keeps_the_group(admin, resource_client, resource_group):
    admin.add_fault(_group_path(resource_group), "fail_operation", method="DELETE")
    with pytest.raises(HttpResponseError) as raised:
        resource_client.resource_groups.begin_delete(resource_group).result()
    assert raised.value.error.code == "InjectedFault"
    assert resource_client.resource_groups.check_existence(resource_group)


def test_service_scoping_and_listing(admin, storage_account, resource_client):
    rule = admin.add_fault(".*", "status", service="storage", method="*", status=503, count=None)
    assert rule["id"] and admin.faults() == [rule]
    assert resource_client.resource_groups.check_existence(storage_account.resource_group)
    with pytest.raises(HttpResponseError) as raised:
        storage_account.service().create_share(unique_name("share"))
    assert raised.value.status_code == 503


def test_admin_api_checks_its_input_and_its_token(admin, endpoint):
    with pytest.raises(AdminError) as raised:
        admin.add_fault("(", "status")
    assert (raised.value.status, raised.value.code) == (400, "InvalidFaultRule")
    with pytest.raises(AdminError):
        admin.add_fault(".*", "explode")
    stranger = AdminClient(type(endpoint)(**{**endpoint.to_json(), "token": "wrong"}))
    with pytest.raises(AdminError) as raised:
        stranger.faults()
    assert (raised.value.status, raised.value.code) == (401, "InvalidAuthenticationToken")
    assert admin.health()["status"] == "ok"
