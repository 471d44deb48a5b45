"""Directories through ShareDirectoryClient."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError


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
