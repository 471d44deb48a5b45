"""File contents through ShareFileClient: chunked and parallel uploads, ranges, MD5, properties, deletion."""

from __future__ import annotations

import base64
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.fileshare import ContentSettings

from batchai_spec.emulator.files.store import share_directory
from tests.emulator_clients import unique_name

SMALL_RANGE = 64 * 1024  # small ranges give multi-chunk uploads from small data


def test_parallel_chunked_upload_round_trips_with_content_md5(storage_account):
    share = storage_account.service(max_range_size=SMALL_RANGE).create_share(unique_name("share"))
    data = os.urandom(10 * SMALL_RANGE + 123)
    md5 = hashlib.md5(data).digest()
    file = share.get_file_client("data.bin")
    file.upload_file(
        data, max_concurrency=4, validate_content=True,
        content_settings=ContentSettings(content_type="application/x-test", content_md5=bytearray(md5)),
        metadata={"source": "test"},
    )
    properties = file.get_file_properties()
    assert properties.size == len(data)
    assert bytes(properties.content_settings.content_md5) == md5
    assert properties.content_settings.content_type == "application/x-test"
    assert properties.metadata == {"source": "test"}
    assert file.download_file(max_concurrency=3, validate_content=True).readall() == data


def test_ranged_download_and_put_range(share):
    file = share.get_file_client("ranges.bin")
    file.create_file(2000)
    file.upload_range(b"A" * 600, offset=400, length=600)
    file.upload_range(b"B" * 10, offset=1990, length=10)
    whole = file.download_file().readall()
    assert whole == b"\0" * 400 + b"A" * 600 + b"\0" * 990 + b"B" * 10
    assert file.download_file(offset=950, length=60).readall() == b"A" * 50 + b"\0" * 10
    assert file.download_file(offset=1995).readall() == b"B" * 5
    file.clear_range(offset=512, length=512)
    assert file.download_file(offset=400, length=200).readall() == b"A" * 112 + b"\0" * 88
    with pytest.raises(HttpResponseError) as raised:
        file.upload_range(b"C" * 10, offset=1995, length=10)
    assert raised.value.error_code == "InvalidRange"


def test_empty_file_round_trip(share):
    file = share.get_file_client("empty")
    file.upload_file(b"")
    assert file.download_file().readall() == b""
    assert file.get_file_properties().size == 0


def test_properties_metadata_and_resize(share):
    file = share.get_file_client("props.txt")
    file.upload_file(b"hello", metadata={"a": "1"})
    etag = file.get_file_properties().etag
    file.set_file_metadata({"b": "2", "with_underscore": "3"})
    file.set_http_headers(ContentSettings(content_type="text/plain", content_language="en"))
    properties = file.get_file_properties()
    assert properties.metadata == {"b": "2", "with_underscore": "3"}
    assert (properties.content_settings.content_type, properties.content_settings.content_language) == (
        "text/plain", "en"
    )
    assert properties.etag != etag
    file.resize_file(2)
    assert file.download_file().readall() == b"he"


def test_delete_file_and_missing_file_errors(share):
    file = share.get_file_client("temp.bin")
    file.upload_file(b"123")
    file.delete_file()
    assert file.exists() is False
    with pytest.raises(ResourceNotFoundError) as raised:
        file.download_file()
    assert raised.value.error_code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as raised:
        share.get_file_client("no/such/parent.bin").upload_file(b"1")
    assert raised.value.error_code == "ParentNotFound"


def test_range_md5_mismatch_and_oversized_ranges_are_refused(share):
    file = share.get_file_client("checked.bin")
    file.create_file(8 * 1024 * 1024)
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(HttpResponseError) as raised:
        file.upload_range(b"x" * 10, offset=0, length=10, headers={"Content-MD5": wrong_md5})
    assert raised.value.error_code == "Md5Mismatch"
    with pytest.raises(HttpResponseError) as raised:
        file.upload_range(b"x" * (4 * 1024 * 1024 + 1), offset=0, length=4 * 1024 * 1024 + 1)
    assert raised.value.status_code == 413


def test_concurrent_writers_to_different_files_of_one_share(storage_account):
    share = storage_account.service(max_range_size=SMALL_RANGE).create_share(unique_name("share"))
    share.create_directory("out")
    payloads = {f"out/worker-{index}.bin": os.urandom(3 * SMALL_RANGE + index) for index in range(8)}

    def upload(item):
        path, data = item
        share.get_file_client(path).upload_file(data, max_concurrency=2)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(upload, payloads.items()))
    for path, data in payloads.items():
        assert share.get_file_client(path).download_file().readall() == data
    assert len(list(share.get_directory_client("out").list_directories_and_files())) == 8


def test_files_written_on_disk_are_visible_through_the_api(emulator, storage_account):
    share = storage_account.service().create_share(unique_name("share"))
    directory = share_directory(emulator.state, storage_account.name, share.share_name)
    (directory / "job-output").mkdir()
    (directory / "job-output" / "log.txt").write_bytes(b"written by a job\n")
    items = list(share.get_directory_client("job-output").list_directories_and_files())
    assert [(item.name, item.size) for item in items] == [("log.txt", 17)]
    file = share.get_file_client("job-output/log.txt")
    assert file.get_file_properties().size == 17
    assert file.download_file().readall() == b"written by a job\n"
    share.get_file_client("from-api.txt").upload_file(b"api")
    assert (directory / "from-api.txt").read_bytes() == b"api"


def test_share_directory_of_a_missing_share(emulator, storage_account):
    with pytest.raises(LookupError):
        share_directory(emulator.state, storage_account.name, "nosuchshare")


def test_one_hundred_megabytes_with_parallel_chunks(share):
    """The only large test: 25 ranges of 4 MiB in parallel, byte-identical back, Content-MD5 kept."""
    data = os.urandom(100 * 1024 * 1024)
    md5 = hashlib.md5(data).digest()
    file = share.get_file_client("big/model.bin")
    share.create_directory("big")
    file.upload_file(data, max_concurrency=4, content_settings=ContentSettings(content_md5=bytearray(md5)))
    assert bytes(file.get_file_properties().content_settings.content_md5) == md5
    downloaded = file.download_file(max_concurrency=4).readall()
    assert hashlib.md5(downloaded).digest() == md5
    assert downloaded == data
