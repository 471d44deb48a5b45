"""Directories through ShareDirectoryClient."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.fileshare import ContentSettings


def test_nested_directories_with_metadata(share):
    top = share.create_directory("top", metadata={"kind": "input"})
    nested = top.create_subdirectory("nested").create_subdirectory("deeper")
    assert nested.directory_path == "top/nested/deeper"
    assert nested.exists()
    assert top.get_directory_properties().metadata == {"kind": "input"}
    top.set_directory_metadata({"kind": "output"})
    assert share.get_directory_client("top").get_directory_properties().metadata == {"kind": "output"}


def test_errors_have_the_service_codes(share):
    share.create_directory("here")
    with pytest.raises(ResourceExistsError) as raised:
        share.create_directory("here")
    assert raised.value.error_code == "ResourceAlreadyExists"
    with pytest.raises(ResourceNotFoundError) as raised:
        share.get_directory_client("missing/child").create_directory()
    assert raised.value.error_code == "ParentNotFound"
    with pytest.raises(ResourceNotFoundError) as raised:
        share.get_directory_client("missing").get_directory_properties()
    assert raised.value.error_code == "ResourceNotFound"
    # Under a missing directory, Azure names the parent (the SDK's own test_directory_parent_not_exists).
    for missing in (share.get_directory_client("missing1/missing2").get_directory_properties,
                    share.get_file_client("missing1/file").get_file_properties):
        with pytest.raises(ResourceNotFoundError) as raised:
            missing()
        assert raised.value.error_code == "ParentNotFound"
    share.create_directory("present")
    with pytest.raises(ResourceNotFoundError) as raised:
        share.get_file_client("present/file").get_file_properties()
    assert raised.value.error_code == "ResourceNotFound"
    assert share.get_directory_client("missing").exists() is False
    share.get_file_client("here/file").upload_file(b"1")
    with pytest.raises(ResourceExistsError) as raised:
        share.get_directory_client("here").delete_directory()
    assert raised.value.error_code == "DirectoryNotEmpty"


def test_listing_pages_directories_and_files_in_name_order(share):
    directory = share.create_directory("many")
    for index in range(5):
        directory.create_subdirectory(f"d{index}")
    for index in range(6):
        directory.upload_file(f"f{index}.txt", b"x" * index)
    pages = [list(page) for page in directory.list_directories_and_files(results_per_page=4).by_page()]
    assert [len(page) for page in pages] == [4, 4, 3]
    items = [item for page in pages for item in page]
    assert sorted(item.name for item in items if item.is_directory) == [f"d{index}" for index in range(5)]
    sizes = {item.name: item.size for item in items if not item.is_directory}
    assert sizes == {f"f{index}.txt": index for index in range(6)}
    prefixed = [item.name for item in directory.list_directories_and_files(name_starts_with="f1")]
    assert prefixed == ["f1.txt"]


def test_listing_with_extended_information(share):
    share.create_directory("ext").upload_file("file.bin", b"abc")
    items = list(share.get_directory_client("ext").list_directories_and_files(include=["timestamps", "Etag"]))
    assert [(item.name, item.size) for item in items] == [("file.bin", 3)]
    assert items[0].last_modified is not None and items[0].etag


def test_delete_directory(share):
    directory = share.create_directory("gone")
    directory.delete_directory()
    assert not directory.exists()
    assert [item.name for item in share.list_directories_and_files()] == []


def test_files_and_directories_have_smb_properties(share):
    """What Azure answers for SMB clients, as the SDK reads it (its own tests check them on every create)."""
    directory = share.create_directory("smb")
    created = directory.get_directory_properties()
    file = directory.upload_file("data.bin", b"12345")
    properties = file.get_file_properties()
    for item in (created, properties):
        assert item.creation_time is not None and item.last_write_time is not None and item.change_time is not None
        assert item.permission_key and item.file_id and item.parent_id and item.server_encrypted is True
    assert created.file_attributes == "Directory" and properties.file_attributes == "Archive"
    assert properties.parent_id == created.file_id != properties.file_id
    assert (properties.lease.state, properties.lease.status) == ("available", "unlocked")
    assert properties.last_write_time >= properties.creation_time
    answered = file.set_http_headers(ContentSettings(content_type="text/plain"))  # answers the SMB times too
    assert answered["file_last_write_time"] is not None and answered["file_permission_key"]


def test_names_xml_cannot_carry_are_listed_encoded(share):
    """U+FFFE and U+FFFF are legal in Azure Files names but not in XML: listings percent-encode them."""
    directory = share.create_directory("\uffffdirectory\ufffe")
    directory.create_subdirectory("subdir1\ufffe")
    directory.upload_file("\uffff file", b"data1")
    listed = [(item["name"], item["is_directory"]) for item in directory.list_directories_and_files()]
    assert listed == [("subdir1\ufffe", True), ("\uffff file", False)]
    assert [item["name"] for item in directory.list_directories_and_files(name_starts_with="\uffff")] == ["\uffff file"]


def test_renames_move_files_and_directory_trees_with_what_they_keep(share):
    source = share.create_directory("old")
    source.create_subdirectory("inner").upload_file("deep.txt", b"deep", metadata={"kept": "yes"})
    moved = source.rename_directory("new")
    assert moved.directory_path == "new" and not share.get_directory_client("old").exists()
    deep = moved.get_subdirectory_client("inner").get_file_client("deep.txt")
    assert deep.download_file().readall() == b"deep" and deep.get_file_properties().metadata == {"kept": "yes"}

    renamed = deep.rename_file("new/top.txt", content_type="text/plain")
    properties = renamed.get_file_properties()
    assert (properties.path, properties.content_settings.content_type) == ("new/top.txt", "text/plain")
    assert properties.metadata == {"kept": "yes"}
    other = share.get_file_client("new/other.txt")
    other.upload_file(b"other")
    with pytest.raises(ResourceExistsError):
        other.rename_file("new/top.txt")
    assert other.rename_file("new/top.txt", overwrite=True).download_file().readall() == b"other"
    with pytest.raises(HttpResponseError):
        moved.rename_directory("new/inner/loop")  # not into itself
