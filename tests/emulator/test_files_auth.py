"""Who may use Azure Files: SharedKey with either key, SAS the SDK generates; nobody else."""

from __future__ import annotations

import ssl
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.storage.fileshare import (
    AccountSasPermissions,
    FileSasPermissions,
    ResourceTypes,
    ShareFileClient,
    ShareSasPermissions,
    ShareServiceClient,
    generate_account_sas,
    generate_file_sas,
    generate_share_sas,
)

from batchai_spec.emulator.files.sas import mint_file_sas_url
from tests.emulator.raw_https import send
from tests.emulator_clients import unique_name

DATA = b"secret model weights"


def _in(hours: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(hours=hours)


@pytest.fixture
def stored_file(storage_account):
    share = storage_account.service().create_share(unique_name("share"))
    share.create_directory("dir")
    file = share.get_file_client("dir/data file.bin")
    file.upload_file(DATA)
    return file


def _file_sas(storage_account, file, key_index=0, **options) -> str:
    return generate_file_sas(
        storage_account.name, file.share_name, file.file_path, storage_account.keys[key_index],
        **{"permission": FileSasPermissions(read=True), "expiry": _in(1), **options},
    )


def _plain_get(endpoint, url: str) -> bytes:
    context = ssl.create_default_context(cafile=endpoint.ca_cert)
    with urllib.request.urlopen(url, context=context, timeout=30) as response:
        return response.read()


def _sas_file_client(storage_account, file, sas: str) -> ShareFileClient:
    return ShareFileClient(
        storage_account.url, file.share_name, "/".join(file.file_path), credential=sas,
        connection_verify=storage_account.endpoint.ca_cert, retry_total=0,
    )


def _captured(call) -> dict:
    """The signed request an SDK call sent (method, url, headers), for replaying it by hand."""
    seen = {}

    def hook(response):
        request = response.http_request
        seen.update(method=request.method, url=request.url, headers=dict(request.headers))

    call(raw_response_hook=hook)
    return seen


def test_either_key_works_and_a_wrong_key_is_refused(storage_account):
    storage_account.service(storage_account.keys[1]).create_share(unique_name("share"))
    wrong = storage_account.keys[0][:-8] + "AAAAAAA="
    with pytest.raises(ClientAuthenticationError) as raised:
        storage_account.service(wrong).create_share(unique_name("share"))
    assert raised.value.status_code == 403
    assert raised.value.error_code == "AuthenticationFailed"


def test_a_replayed_request_passes_but_tampering_with_it_fails(endpoint, stored_file):
    request = _captured(stored_file.get_file_properties)
    assert send(endpoint, request["url"], request["method"], request["headers"]).status == 200
    tampered = {**request["headers"], "x-ms-version": "2020-02-10"}
    response = send(endpoint, request["url"], request["method"], tampered)
    assert (response.status, response.error_code) == (403, "AuthenticationFailed")
    other_path = request["url"].replace("data%20file.bin", "other.bin")
    response = send(endpoint, other_path, request["method"], request["headers"])
    assert (response.status, response.error_code) == (403, "AuthenticationFailed")


def test_a_signature_for_one_account_does_not_open_another(endpoint, make_storage_account, stored_file):
    other = make_storage_account()
    request = _captured(stored_file.get_file_properties)
    own_account = stored_file.account_name
    response = send(endpoint, request["url"].replace(f"/{own_account}/", f"/{other.name}/"), "HEAD", request["headers"])
    assert (response.status, response.error_code) == (403, "AuthenticationFailed")


def test_anonymous_requests_are_refused(endpoint, storage_account, stored_file):
    response = send(endpoint, f"{storage_account.url}/{stored_file.share_name}/dir/data%20file.bin")
    assert (response.status, response.error_code) == (401, "NoAuthenticationInformation")
    response = send(endpoint, f"{storage_account.url}/{unique_name('share')}?restype=share", "PUT")
    assert (response.status, response.error_code) == (401, "NoAuthenticationInformation")
    garbage = send(endpoint, f"{storage_account.url}/?comp=list", headers={"Authorization": "Bearer something"})
    assert (garbage.status, garbage.error_code) == (403, "AuthenticationFailed")


def test_unknown_account_is_not_found(endpoint, storage_account):
    response = send(endpoint, f"{endpoint.storage_url}/{unique_name('nosuch')}/?comp=list")
    assert (response.status, response.error_code) == (404, "ResourceNotFound")


def test_file_sas_downloads_with_a_plain_get_and_through_the_sdk(endpoint, storage_account, stored_file):
    sas = _file_sas(storage_account, stored_file, key_index=1)
    assert _plain_get(endpoint, f"{stored_file.url}?{sas}") == DATA
    assert _sas_file_client(storage_account, stored_file, sas).download_file().readall() == DATA


def test_tampered_expired_or_misdirected_file_sas_is_refused(endpoint, storage_account, stored_file):
    sas = _file_sas(storage_account, stored_file)
    for tampered in (sas.replace("sp=r", "sp=rw"), sas[:-6] + "AAAA%3D"):
        response = send(endpoint, f"{stored_file.url}?{tampered}")
        assert (response.status, response.error_code) == (403, "AuthenticationFailed")
    expired = _file_sas(storage_account, stored_file, expiry=_in(-1))
    assert send(endpoint, f"{stored_file.url}?{expired}").error_code == "AuthenticationFailed"
    not_yet = _file_sas(storage_account, stored_file, start=_in(1), expiry=_in(2))
    assert send(endpoint, f"{stored_file.url}?{not_yet}").error_code == "AuthenticationFailed"
    other = stored_file.url.replace("data%20file.bin", "other.bin")
    assert send(endpoint, f"{other}?{sas}").error_code == "AuthenticationFailed"


def test_sas_permissions_are_enforced(storage_account, stored_file):
    read_only = _sas_file_client(storage_account, stored_file, _file_sas(storage_account, stored_file))
    with pytest.raises(HttpResponseError) as raised:
        read_only.upload_file(b"overwrite")
    assert (raised.value.status_code, raised.value.error_code) == (403, "AuthorizationPermissionMismatch")
    read_write = FileSasPermissions(read=True, write=True, create=True)
    writer_sas = _file_sas(storage_account, stored_file, permission=read_write)
    writer = _sas_file_client(storage_account, stored_file, writer_sas)
    writer.upload_file(b"new content")
    assert writer.download_file().readall() == b"new content"
    with pytest.raises(HttpResponseError) as raised:
        writer.delete_file()
    assert raised.value.error_code == "AuthorizationPermissionMismatch"


def test_share_sas_lists_and_reads_inside_its_share(endpoint, storage_account, stored_file):
    sas = generate_share_sas(
        storage_account.name, stored_file.share_name, storage_account.keys[0],
        permission=ShareSasPermissions(read=True, list=True), expiry=_in(1),
    )
    service = ShareServiceClient(storage_account.url, credential=sas, connection_verify=endpoint.ca_cert, retry_total=0)
    share = service.get_share_client(stored_file.share_name)
    assert [item.name for item in share.list_directories_and_files("dir")] == ["data file.bin"]
    assert share.get_file_client("/".join(stored_file.file_path)).download_file().readall() == DATA


def test_account_sas_grants_only_its_resource_types(endpoint, storage_account, stored_file):
    sas = generate_account_sas(
        storage_account.name, storage_account.keys[0], ResourceTypes(service=True, container=True),
        AccountSasPermissions(read=True, list=True, create=True, write=True), expiry=_in(1),
    )
    service = ShareServiceClient(storage_account.url, credential=sas, connection_verify=endpoint.ca_cert, retry_total=0)
    created = unique_name("share")
    service.create_share(created)
    assert created in {share.name for share in service.list_shares()}
    with pytest.raises(HttpResponseError) as raised:
        share = service.get_share_client(stored_file.share_name)
        share.get_file_client("/".join(stored_file.file_path)).download_file()
    assert raised.value.error_code == "AuthorizationResourceTypeMismatch"


def test_minted_sas_url_downloads_with_a_plain_get(endpoint, emulator, storage_account, stored_file):
    url = mint_file_sas_url(emulator.state, storage_account.name, stored_file.share_name, "dir/data file.bin", _in(1))
    assert url.startswith(f"{storage_account.url}/{stored_file.share_name}/dir/data%20file.bin?")
    assert _plain_get(endpoint, url) == DATA
    assert send(endpoint, url.replace("dir/", "other/")).error_code == "AuthenticationFailed"
    with pytest.raises(LookupError):
        mint_file_sas_url(emulator.state, unique_name("nosuch"), "share", "a.txt", _in(1))


def test_deleted_file_behind_a_valid_sas_is_not_found(storage_account, stored_file):
    sas = _file_sas(storage_account, stored_file)
    stored_file.delete_file()
    with pytest.raises(ResourceNotFoundError):
        _sas_file_client(storage_account, stored_file, sas).download_file()
