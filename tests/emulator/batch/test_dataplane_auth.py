"""Who may call the Batch data plane: SharedKey with either key of the account, the emulator's bearer token; nobody
else. Also the api-versions it accepts, an unknown account, and fault rules on its routes.

Every request goes through the unmodified azure-batch 15.1.0 client; the negative cases bend it with pipeline
policies (a wrong key, a request changed after it was signed, no authentication policy at all).
"""

from __future__ import annotations

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.policies import SansIOHTTPPolicy

from batchai_spec.emulator.admin_client import AdminClient
from tests.emulator.batch.conftest import BatchAccount
from tests.emulator.batch.dataplane_support import DataPlane, dataplane, new_job  # noqa: F401 (fixtures)
from tests.emulator_clients import unique_name


def test_shared_key_with_either_key_and_the_bearer_token(dataplane: DataPlane):
    job_id = new_job(dataplane.client())
    assert dataplane.client(key=dataplane.account.keys[1]).get_job(job_id).id == job_id
    assert dataplane.token_client().get_job(job_id).id == job_id
    # A file path is one percent-encoded segment (`wd%2Fx`): the signature covers the raw path.
    with pytest.raises(ResourceNotFoundError) as raised:
        dataplane.client().get_task_file_properties(job_id, "no-task", "wd/x.txt")
    assert raised.value.response.headers["DataServiceVersion"] == "3.0"


def test_a_wrong_key_is_403_authentication_failed(dataplane: DataPlane):
    with pytest.raises(HttpResponseError) as raised:
        dataplane.client(key="d3Jvbmcga2V5").list_jobs().next()
    assert raised.value.status_code == 403
    assert raised.value.error.code == "AuthenticationFailed"
    assert "Server failed to authenticate the request" in raised.value.error.message
    assert raised.value.response.headers["DataServiceVersion"] == "3.0"
    body = raised.value.response.json()
    assert body["odata.metadata"] == (
        f"{dataplane.url}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element")
    assert body["values"][0]["key"] == "AuthenticationErrorDetail"
    assert f"\nRequestId:{raised.value.response.headers['request-id']}\nTime:" in body["message"]["value"]


def _tamper(request) -> None:
    """Runs after the SharedKey policy signed the request (the client's raw_request_hook), and changes it."""
    request.http_request.url = request.http_request.url.replace("maxresults=5", "maxresults=6")


def test_a_request_changed_after_signing_is_refused(dataplane: DataPlane):
    client = dataplane.client(raw_request_hook=_tamper)
    with pytest.raises(HttpResponseError) as raised:
        client.list_jobs(max_results=5).next()
    assert (raised.value.status_code, raised.value.error.code) == (403, "AuthenticationFailed")
    assert "not the same as any computed signature" in raised.value.error.details[0].message


def _append_repeat(request) -> None:
    """After signing, repeat a signed query parameter: a string-to-sign that kept the first value would still match
    while the handler read the last."""
    request.http_request.url += "&maxresults=1"


def test_a_repeated_query_parameter_is_refused(dataplane: DataPlane):
    new_job(dataplane.client())
    new_job(dataplane.client())
    client = dataplane.client(raw_request_hook=_append_repeat)
    with pytest.raises(HttpResponseError) as raised:
        client.list_jobs(max_results=5).next()
    assert (raised.value.status_code, raised.value.error.code) == (403, "AuthenticationFailed")
    assert "more than once" in raised.value.error.details[0].message
    assert raised.value.response.json()["values"][0]["key"] == "AuthenticationErrorDetail"


def test_a_wrong_token_is_401(dataplane: DataPlane):
    with pytest.raises(ClientAuthenticationError) as raised:
        dataplane.token_client(token="not-the-token").list_jobs().next()
    assert (raised.value.status_code, raised.value.error.code) == (401, "AuthenticationFailed")


def test_no_authentication_is_401(dataplane: DataPlane):
    client = dataplane.client(authentication_policy=SansIOHTTPPolicy())
    with pytest.raises(ClientAuthenticationError) as raised:
        client.list_jobs().next()
    assert raised.value.error.code == "AuthenticationFailed"


def test_an_unknown_account_is_404(dataplane: DataPlane):
    other = DataPlane(dataplane.endpoint, BatchAccount("rg", unique_name("nobody"), dataplane.account.keys))
    with pytest.raises(ResourceNotFoundError) as raised:
        other.token_client().list_jobs().next()
    assert raised.value.error.code == "AccountNotFound"


@pytest.mark.parametrize("version", ["2024-02-01.19.0", "2023-05-01.17.0", "2025-06-01"])
def test_both_api_version_forms_are_accepted(dataplane: DataPlane, version: str):
    client = dataplane.client(api_version=version)
    job_id = new_job(client)
    assert client.get_job(job_id).id == job_id


def test_an_unknown_api_version_form_is_refused(dataplane: DataPlane):
    with pytest.raises(HttpResponseError) as raised:
        dataplane.client(api_version="latest").list_jobs().next()
    assert (raised.value.status_code, raised.value.error.code) == (400, "UnsupportedRequestVersion")


@pytest.fixture
def admin(endpoint):
    client = AdminClient(endpoint)
    yield client
    client.clear_faults()


def test_fault_rules_apply_to_the_batch_service(admin, dataplane: DataPlane):
    job_id = new_job(dataplane.client())
    admin.add_fault(f"/jobs/{job_id}$", "status", service="batch", method="GET", status=503, count=1)
    with pytest.raises(HttpResponseError) as raised:
        dataplane.client().get_job(job_id)
    assert (raised.value.status_code, raised.value.error.code) == (503, "InjectedFault")
    assert raised.value.response.json()["odata.metadata"].startswith(dataplane.endpoint.batch_url)
    # The rule is used up; the default client (retries on) rides over a 500 by itself.
    assert dataplane.client().get_job(job_id).id == job_id
    admin.add_fault(f"/jobs/{job_id}$", "status", service="batch", method="GET", status=500, count=1)
    assert dataplane.client(retry_total=3, retry_backoff_factor=0.01).get_job(job_id).id == job_id
    # A rule for another service leaves the data plane alone.
    admin.add_fault(f"/jobs/{job_id}$", "status", service="arm", method="GET", status=500, count=1)
    assert dataplane.client().get_job(job_id).id == job_id
