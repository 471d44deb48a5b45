"""Connections that never finish their request are closed: a silent connection, a request head left half sent or
trickled a byte at a time, a body that stops. The timeout is short here (BATCHAI_SPEC_EMULATOR_REQUEST_TIMEOUT_S);
10 s by default."""

from __future__ import annotations

import time

import pytest

from batchai_spec.emulator.connections import DEFAULT_REQUEST_TIMEOUT_S, REQUEST_TIMEOUT_ENV, OpenConnections
from batchai_spec.emulator.server import start_in_process
from tests.emulator.raw_streams import account_sas, connect, read_answer, request_head, wait_closed
from tests.emulator_clients import new_storage_account, share_service_for, unique_name

TIMEOUT_S = 1.0
# Closed within the timeout plus this (the watchdog looks every TIMEOUT_S / 4; a loaded machine is slower).
SLACK_S = 5.0


@pytest.fixture
def quick_emulator(tmp_path, monkeypatch):
    monkeypatch.setenv(REQUEST_TIMEOUT_ENV, str(TIMEOUT_S))
    with start_in_process(tmp_path / "state") as running:
        yield running


@pytest.fixture
def account(quick_emulator):
    created = new_storage_account(quick_emulator.endpoint)
    return created.name, created.keys[0]


def _closed_in_time(connection, feed: bytes | None = None) -> tuple[bytes | None, float]:
    started = time.monotonic()
    received = wait_closed(connection, TIMEOUT_S + SLACK_S, feed=feed)
    return received, time.monotonic() - started


def test_the_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(REQUEST_TIMEOUT_ENV, raising=False)
    assert OpenConnections().request_timeout_s == DEFAULT_REQUEST_TIMEOUT_S == 10.0
    monkeypatch.setenv(REQUEST_TIMEOUT_ENV, "2.5")
    assert OpenConnections().request_timeout_s == 2.5
    monkeypatch.setenv(REQUEST_TIMEOUT_ENV, "soon")
    assert OpenConnections().request_timeout_s == DEFAULT_REQUEST_TIMEOUT_S


@pytest.mark.parametrize("service", ["arm_url", "storage_url"])
def test_a_connection_that_sends_nothing_is_closed(quick_emulator, service):
    url = getattr(quick_emulator.endpoint, service) + "/"
    connection = connect(quick_emulator.endpoint, url)
    try:
        received, elapsed = _closed_in_time(connection)
    finally:
        connection.close()
    assert received == b"", "the connection stayed open"
    assert elapsed >= TIMEOUT_S / 2


def test_a_half_sent_request_head_is_closed(quick_emulator):
    url = quick_emulator.endpoint.arm_url + "/_emulator/health"
    connection = connect(quick_emulator.endpoint, url)
    try:
        connection.sendall(request_head(url, "GET", {})[:30])
        received, elapsed = _closed_in_time(connection)
    finally:
        connection.close()
    assert received == b"", "the connection stayed open (or answered a request it never got)"
    assert elapsed >= TIMEOUT_S / 2


def test_a_request_head_trickled_a_byte_at_a_time_is_closed(quick_emulator):
    """Steady progress does not help a head: it must be complete within the timeout of its first byte."""
    url = quick_emulator.endpoint.arm_url + "/_emulator/health"
    connection = connect(quick_emulator.endpoint, url)
    endless_head = request_head(url, "GET", {f"x-slow-{n}": "y" * 20 for n in range(200)})
    try:
        connection.sendall(endless_head[:1])
        received, _ = _closed_in_time(connection, feed=endless_head[1:])
    finally:
        connection.close()
    assert received == b"", "a trickled head kept the connection open"


def test_a_stalled_body_is_closed(quick_emulator, account):
    name, key = account
    service = share_service_for(quick_emulator.endpoint, name, key)
    share = service.create_share(unique_name("share"))
    share.get_file_client("f.bin").create_file(1000)
    url = f"{quick_emulator.endpoint.file_endpoint(name)}/{share.share_name}/f.bin?comp=range&{account_sas(name, key)}"
    headers = {"Content-Length": "1000", "x-ms-range": "bytes=0-999", "x-ms-write": "update"}
    connection = connect(quick_emulator.endpoint, url)
    try:
        connection.sendall(request_head(url, "PUT", headers) + b"x" * 10)
        received, elapsed = _closed_in_time(connection)
    finally:
        connection.close()
    assert received == b"", "the stalled body was answered or kept open"
    assert elapsed >= TIMEOUT_S / 2
    assert share.get_file_client("f.bin").download_file().readall() == bytes(1000)


def test_a_refused_body_that_stalls_is_closed_after_its_answer(quick_emulator):
    """Answered 401 before its body was read, a client that then neither sends the rest nor leaves is closed."""
    url = f"{quick_emulator.endpoint.storage_url}/nosuchaccount/share/f.bin?comp=range"
    connection = connect(quick_emulator.endpoint, url)
    try:
        connection.sendall(request_head(url, "PUT", {"Content-Length": "1000"}) + b"x" * 10)
        assert read_answer(connection, deadline_s=10).status == 404
        received, _ = _closed_in_time(connection)
    finally:
        connection.close()
    assert received == b"", "the connection stayed open"


def test_ordinary_clients_are_not_affected(quick_emulator, account):
    """The SDKs, keep-alive included, work as before on an emulator with short timeouts."""
    name, key = account
    share = share_service_for(quick_emulator.endpoint, name, key).create_share(unique_name("share"))
    file = share.get_file_client("data.bin")
    data = bytes(range(256)) * 40_000  # 10 MB: several 4 MiB ranges over one pooled connection
    file.upload_file(data)
    assert file.download_file().readall() == data
