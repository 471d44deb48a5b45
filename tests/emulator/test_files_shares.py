"""Shares through ShareServiceClient / ShareClient."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.fileshare import AccessPolicy, ShareSasPermissions

from tests.emulator_clients import unique_name


def test_create_with_quota_and_metadata_then_read_them_back(storage_account):
    service = storage_account.service()
    name = unique_name("share")
    share = service.create_share(name, quota=10, metadata={"owner": "me", "team_a": "x"})
    properties = share.get_share_properties()
    assert (properties.name, properties.quota) == (name, 10)
    assert properties.metadata == {"owner": "me", "team_a": "x"}
    assert properties.etag and properties.last_modified


def test_create_twice_conflicts_and_missing_share_is_not_found(storage_account):
    service = storage_account.service()
    name = unique_name("share")
    service.create_share(name)
    with pytest.raises(ResourceExistsError) as raised:
        service.create_share(name)
    assert raised.value.error_code == "ShareAlreadyExists"
    with pytest.raises(ResourceNotFoundError) as raised:
        service.get_share_client(unique_name("share")).get_share_properties()
    assert raised.value.error_code == "ShareNotFound"


def test_metadata_names_that_sort_differently_by_code_point_and_by_the_sdks_collation(storage_account):
    """12.27 signs x-ms-meta-a_1 before x-ms-meta-a1 (plain sorting puts it after); the signature must verify."""
    metadata = {"a_1": "1", "a1": "2", "ab": "3", "a_b_c": "4"}
    share = storage_account.service().create_share(unique_name("share"), metadata=metadata)
    share.set_share_metadata(metadata)
    assert share.get_share_properties().metadata == metadata


def test_quota_and_metadata_can_change(share):
    before = share.get_share_properties().etag
    share.set_share_quota(42)
    share.set_share_metadata({"stage": "two"})
    properties = share.get_share_properties()
    assert (properties.quota, properties.metadata) == (42, {"stage": "two"})
    assert properties.etag != before


def test_list_shares_pages_with_markers_and_prefix(storage_account):
    service = storage_account.service()
    names = sorted(f"page-{index:02d}" for index in range(7))
    for name in names:
        service.create_share(name, metadata={"index": name[-2:]})
    service.create_share("other")
    pages = service.list_shares(name_starts_with="page-", results_per_page=3, include_metadata=True).by_page()
    listed = [[(share.name, share.metadata["index"]) for share in page] for page in pages]
    assert [len(page) for page in listed] == [3, 3, 1]
    assert [name for page in listed for name, _ in page] == names
    assert {share.name for share in service.list_shares()} == set(names) | {"other"}


def test_delete_share_removes_it_and_its_contents(storage_account):
    service = storage_account.service()
    share = service.create_share(unique_name("share"))
    share.create_directory("dir").upload_file("f.txt", b"x")
    share.delete_share()
    with pytest.raises(ResourceNotFoundError):
        share.get_share_properties()
    share.create_share()
    assert list(share.list_directories_and_files()) == []


def test_share_stats_count_bytes(share):
    share.get_file_client("a.bin").upload_file(b"x" * 1000)
    share.get_file_client("b.bin").upload_file(b"y" * 24)
    assert share.get_share_stats() == 1024


def test_access_policies_and_permissions_are_kept_with_the_share(storage_account):
    share = storage_account.service().create_share(unique_name("secured"))
    assert share.get_share_access_policy()["signed_identifiers"] == []
    policy = AccessPolicy(permission=ShareSasPermissions(read=True), expiry=datetime(2030, 1, 1, tzinfo=timezone.utc))
    share.set_share_access_policy({"readers": policy})
    [kept] = share.get_share_access_policy()["signed_identifiers"]
    assert (kept.id, kept.access_policy.permission) == ("readers", "r")

    sddl = "O:S-1-5-21-1G:S-1-5-21-2D:AI(A;;FA;;;SY)"
    key = share.create_permission_for_share(sddl)
    assert share.get_permission_for_share(key) == sddl
    assert share.create_permission_for_share(share.get_permission_for_share(key)) == key  # one key per permission
    with pytest.raises(ResourceNotFoundError):
        share.get_permission_for_share("1*1")
    file = share.get_file_client("f")
    file.upload_file(b"1")
    assert share.get_permission_for_share(file.get_file_properties().permission_key).startswith("O:")

    name = share.share_name
    share.delete_share()
    again = storage_account.service().create_share(name)  # a new share of that name starts without them
    assert again.get_share_access_policy()["signed_identifiers"] == []
