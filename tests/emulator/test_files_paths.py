"""No request path reaches outside its share, however it is spelled."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.fileshare import AccountSasPermissions, ResourceTypes, generate_account_sas

from batchai_spec.emulator.files.store import share_directory
from tests.emulator.raw_https import send
from tests.emulator_clients import unique_name

HOSTILE_PATHS = [
    "../escaped",
    "%2E%2E/escaped",
    "..%2Fescaped",
    "dir/..%2F..%2F..%2Fescaped",
    "dir%2F..%2F..%2F..%2Fescaped",
    "dir/%2E%2E%2F%2E%2E%2Fescaped",
    "{absolute_quoted}",
    "/{absolute}",
    "dir%5C..%5C..%5Cescaped",
    "dir/x%00y",
    "dir/./file",
]


@pytest.fixture(scope="module")
def storage_account(make_storage_account):
    return make_storage_account()


@pytest.fixture(scope="module")
def all_powerful_sas(storage_account) -> str:
    """An account SAS does not sign the path, so these requests pass authentication and meet the path checks."""
    return generate_account_sas(
        storage_account.name, storage_account.keys[0], ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, write=True, delete=True, list=True, create=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )


@pytest.fixture(scope="module")
def prepared_share(emulator, storage_account):
    """A share holding dir/file, next to a file `escaped` just outside it (in the account's directory)."""
    share = storage_account.service().create_share(unique_name("share"))
    share.create_directory("dir")
    share.get_file_client("dir/file").upload_file(b"inside")
    outside = share_directory(emulator.state, storage_account.name, share.share_name).parent
    (outside / "escaped").write_bytes(b"outside the share")
    return share


@pytest.fixture
def account_directory(emulator, storage_account, prepared_share):
    return share_directory(emulator.state, storage_account.name, prepared_share.share_name).parent


@pytest.mark.parametrize("hostile", HOSTILE_PATHS)
@pytest.mark.parametrize(
    ("method", "query", "headers"),
    [
        ("GET", "", {}),
        ("PUT", "", {"x-ms-type": "file", "x-ms-content-length": "5"}),
        ("PUT", "restype=directory", {}),
        ("GET", "restype=directory&comp=list", {}),
        ("DELETE", "", {}),
    ],
    ids=["download", "create-file", "create-directory", "list", "delete"],
)
def test_hostile_paths_are_refused(endpoint, storage_account, prepared_share, account_directory, all_powerful_sas,
                                   hostile, method, query, headers):
    victim = account_directory / "escaped"
    hostile = hostile.format(absolute=str(victim).lstrip("/"), absolute_quoted=quote(str(victim), safe=""))
    query = f"{query}&{all_powerful_sas}" if query else all_powerful_sas
    url = f"{storage_account.url}/{prepared_share.share_name}/{hostile}?{query}"
    response = send(endpoint, url, method, headers)
    assert response.status in (400, 404), response.body
    assert b"outside the share" not in response.body
    assert victim.read_bytes() == b"outside the share"
    for above in account_directory.parents[:3]:
        assert not (above / "escaped").exists()


def test_the_sas_reaches_ordinary_paths(endpoint, storage_account, prepared_share, all_powerful_sas):
    response = send(endpoint, f"{storage_account.url}/{prepared_share.share_name}/dir/file?{all_powerful_sas}")
    assert (response.status, response.body) == (200, b"inside")


def test_share_names_cannot_escape_the_account(endpoint, storage_account, all_powerful_sas):
    for share in ("..", "%2E%2E", "a%2Fb", "UPPER"):
        response = send(endpoint, f"{storage_account.url}/{share}?restype=share&{all_powerful_sas}", "PUT")
        assert (response.status, response.error_code) == (400, "InvalidResourceName")


def test_sdk_names_with_traversal_are_refused(prepared_share):
    for name in ("../escaped", "dir/../../escaped"):
        with pytest.raises(HttpResponseError) as raised:
            prepared_share.get_directory_client(name).create_directory()
        assert raised.value.status_code == 400


def test_links_out_of_the_share_are_neither_followed_nor_listed(storage_account, account_directory):
    share = storage_account.service().create_share(unique_name("share"))
    share.create_directory("dir")
    share.get_file_client("dir/file").upload_file(b"inside")
    directory = account_directory / share.share_name
    (directory / "dir" / "link").symlink_to(account_directory / "escaped")
    (directory / "dir" / "linked-dir").symlink_to(account_directory, target_is_directory=True)
    assert [item.name for item in share.list_directories_and_files("dir")] == ["file"]
    with pytest.raises(HttpResponseError) as raised:
        share.get_file_client("dir/link").download_file()
    assert raised.value.status_code == 400
    with pytest.raises(HttpResponseError):
        share.get_directory_client("dir/linked-dir").list_directories_and_files().next()
