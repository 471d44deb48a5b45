"""What a share holds: its quota counts every file's length (Create File, resize; Put Range never grows a file),
the 4 TiB file limit, and Create File's initial content (service version 2026-02-06 and later)."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.fileshare import ShareFileClient

from batchai_spec.emulator.files.store import share_directory
from tests.emulator.raw_https import send
from tests.emulator.raw_streams import account_sas
from tests.emulator_clients import unique_name

MIB = 1024 * 1024
GIB = 1024 * MIB
TIB = 1024 * GIB


def _refused(call) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as raised:
        call()
    return raised.value


def _on_disk(emulator, storage_account, share, name: str):
    return share_directory(emulator.state, storage_account.name, share.share_name) / name


# --- quota --------------------------------------------------------------------------------------------------


def test_a_4_tib_file_in_a_5_gib_share_is_refused_and_leaves_nothing(emulator, storage_account):
    share = storage_account.service().create_share(unique_name("share"), quota=5)
    error = _refused(lambda: share.get_file_client("huge.bin").create_file(4 * TIB))
    assert (error.status_code, error.error_code) == (403, "ShareSizeLimitReached")
    assert not _on_disk(emulator, storage_account, share, "huge.bin").exists()
    error = _refused(lambda: share.get_file_client("huge.bin").create_file(4 * TIB + 1))
    assert (error.status_code, error.error_code) == (400, "InvalidHeaderValue")  # past the file limit itself
    assert not _on_disk(emulator, storage_account, share, "huge.bin").exists()


def test_file_lengths_count_against_the_quota(emulator, storage_account):
    share = storage_account.service().create_share(unique_name("share"), quota=1)
    first, second = share.get_file_client("first.bin"), share.get_file_client("second.bin")
    first.create_file(600 * MIB)  # lengths count at once, content or not (as on Azure)
    error = _refused(lambda: second.create_file(600 * MIB))
    assert (error.status_code, error.error_code) == (403, "ShareSizeLimitReached")
    assert not _on_disk(emulator, storage_account, share, "second.bin").exists()

    error = _refused(lambda: first.resize_file(2 * GIB))  # Set File Properties with a new length
    assert (error.status_code, error.error_code) == (403, "ShareSizeLimitReached")
    assert first.get_file_properties().size == 600 * MIB
    error = _refused(lambda: first.resize_file(4 * TIB + 1))
    assert (error.status_code, error.error_code) == (400, "InvalidHeaderValue")

    first.resize_file(100 * MIB)  # shrinking frees quota
    second.create_file(600 * MIB)
    first.create_file(400 * MIB)  # replacing a file counts only its new length: 400 + 600 MiB fit in 1 GiB
    assert share.get_share_stats() == 1000 * MIB
    error = _refused(lambda: share.get_file_client("third.bin").create_file(30 * MIB))
    assert error.error_code == "ShareSizeLimitReached"
    second.delete_file()  # deleting frees it
    share.get_file_client("third.bin").create_file(30 * MIB)


def test_put_range_never_grows_a_file_past_its_length(share):
    """Ranges write inside the length that Create File or a resize charged to the quota; past it: 416."""
    file = share.get_file_client("fixed.bin")
    file.create_file(MIB)
    file.upload_range(b"x" * 1024, offset=MIB - 1024, length=1024)
    error = _refused(lambda: file.upload_range(b"x" * 1024, offset=MIB, length=1024))
    assert (error.status_code, error.error_code) == (416, "InvalidRange")
    assert file.get_file_properties().size == MIB


def test_files_a_job_wrote_into_the_share_count_too(emulator, storage_account):
    share = storage_account.service().create_share(unique_name("share"), quota=1)
    directory = share_directory(emulator.state, storage_account.name, share.share_name)
    with open(directory / "written-by-a-job.bin", "wb") as handle:
        handle.truncate(900 * MIB)
    error = _refused(lambda: share.get_file_client("more.bin").create_file(200 * MIB))
    assert error.error_code == "ShareSizeLimitReached"


# --- Create File with initial content -----------------------------------------------------------------------


def test_create_file_stores_the_content_sent_with_it(share):
    """azure-storage-file-share 12.26+ `create_file(size, data=...)` sends the data in the Create File body."""
    file = share.get_file_client("created.bin")
    file.create_file(10, data=b"hello")
    assert file.download_file().readall() == b"hello" + bytes(5)
    assert file.get_file_properties().size == 10
    file.create_file(6, data=b"again!", validate_content="md5")  # with Content-MD5
    assert file.download_file().readall() == b"again!"


def test_create_file_content_is_checked(emulator, storage_account):
    service = storage_account.service()
    share = service.create_share(unique_name("share"))
    file = share.get_file_client("checked.bin")
    error = _refused(lambda: file.create_file(3, data=b"too long"))
    assert (error.status_code, error.error_code) == (400, "InvalidHeaderValue")
    data = os.urandom(4 * MIB + 1)
    error = _refused(lambda: file.create_file(len(data), data=data))
    assert (error.status_code, error.error_code) == (413, "RequestBodyTooLarge")
    assert not _on_disk(emulator, storage_account, share, "checked.bin").exists()

    sas = account_sas(storage_account.name, storage_account.keys[0])
    url = f"{storage_account.url}/{share.share_name}/checked.bin?{sas}"
    headers = {"x-ms-type": "file", "x-ms-content-length": "5", "x-ms-version": "2026-10-06"}
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    answer = send(storage_account.endpoint, url, "PUT", headers={**headers, "Content-MD5": wrong_md5}, body=b"12345")
    assert (answer.status, answer.error_code) == (400, "Md5Mismatch")
    assert not _on_disk(emulator, storage_account, share, "checked.bin").exists()


def test_before_2026_02_06_create_file_takes_no_content(storage_account):
    """Earlier versions document 'Content-Length: must be zero if present'; the content is refused, not dropped."""
    share = storage_account.service().create_share(unique_name("share"))
    old = ShareFileClient(
        storage_account.url, share.share_name, "old.bin", credential=storage_account.keys[0],
        connection_verify=storage_account.endpoint.ca_cert, retry_total=0, api_version="2025-11-05",
    )
    error = _refused(lambda: old.create_file(10, data=b"hello"))
    assert (error.status_code, error.error_code) == (400, "InvalidHeaderValue")
    old.create_file(10)
    assert old.download_file().readall() == bytes(10)
