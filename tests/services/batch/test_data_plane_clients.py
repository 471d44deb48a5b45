"""How the tool reaches a Batch account's data plane (services/azure/clients.py): with the account's shared key read
from ARM (the local default) or the endpoint's credential, Microsoft Entra ID on Azure (`BATCHAI_SPEC_BATCH_AUTH`),
against the emulator's data plane, which checks both as Batch does."""

from __future__ import annotations

import pytest

from batchai_spec.emulator.endpoint import Endpoint as EmulatorAddress
from batchai_spec.errors import UserError
from batchai_spec.services.azure.clients import BATCH_AUTH_VARIABLE, Clients
from batchai_spec.services.azure.endpoint import Endpoint, StaticTokenCredential
from tests.emulator_clients import LOCATION, unique_name


def _endpoint(address: EmulatorAddress) -> Endpoint:
    return Endpoint(
        kind="local",
        description="the test's emulator",
        subscription_id=address.subscription_id,
        arm_url=address.arm_url,
        credential=StaticTokenCredential(address.token),
        connection_verify=address.ca_cert,
        storage_url=address.storage_url,
        polling_interval=0.05,
        batch_url=address.batch_url,
    )


@pytest.fixture
def account(endpoint: EmulatorAddress, resource_group: str) -> tuple[Clients, str, str]:
    clients = Clients(_endpoint(endpoint))
    name = unique_name("acct").replace("-", "")[:24].lower()
    clients.batch.batch_account.begin_create(resource_group, name, {"location": LOCATION}).result()
    return clients, resource_group, name


@pytest.mark.parametrize(("auth", "scheme"), [("key", "SharedKey"), ("entra", "Bearer")])
def test_the_data_plane_answers_with_either_credential(account, auth: str, scheme: str, monkeypatch: pytest.MonkeyPatch):
    clients, resource_group, name = account
    monkeypatch.setenv(BATCH_AUTH_VARIABLE, auth)
    data = clients.batch_account(resource_group, name)
    sent = []
    data.create_job({"id": "probe", "poolInfo": {"poolId": "none"}})
    jobs = data.list_jobs(raw_request_hook=lambda pipeline: sent.append(pipeline.http_request.headers["Authorization"]))
    assert [job.id for job in jobs] == ["probe"]
    assert sent and sent[0].startswith(f"{scheme} ")
    assert clients.batch_account(resource_group, name) is data  # one client per account and command


def test_an_unknown_way_to_authenticate_is_one_clear_error(account, monkeypatch: pytest.MonkeyPatch):
    clients, resource_group, name = account
    monkeypatch.setenv(BATCH_AUTH_VARIABLE, "certificate")
    with pytest.raises(UserError, match=f"{BATCH_AUTH_VARIABLE} must be 'key' or 'entra', not 'certificate'"):
        clients.batch_account(resource_group, name)
