"""Raw TLS connections for what no client library does on purpose: bodies streamed until the server answers,
requests left half sent, connections left silent. Every wait is a deadline polled in short steps."""

from __future__ import annotations

import select
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from azure.storage.fileshare import AccountSasPermissions, ResourceTypes, generate_account_sas

from batchai_spec.emulator.endpoint import Endpoint

POLL_S = 0.1
_CLOSED_ERRORS = (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLError)


@dataclass(frozen=True)
class StreamedAnswer:
    status: int | None  # None: the connection closed without an answer
    headers: dict[str, str]
    body: bytes
    body_bytes_sent: int


def account_sas(account: str, key: str) -> str:
    """A SAS for every Files operation on the account (raw requests need no header signing with it)."""
    return generate_account_sas(
        account, key, ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, write=True, delete=True, list=True, create=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )


def connect(endpoint: Endpoint, url: str, timeout: float = 10.0) -> ssl.SSLSocket:
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=endpoint.ca_cert)
    raw = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    return context.wrap_socket(raw, server_hostname=parts.hostname)


def request_head(url: str, method: str, headers: dict[str, str]) -> bytes:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def stream_request(
    endpoint: Endpoint, url: str, method: str, headers: dict[str, str], body_bytes: int,
    chunk_bytes: int = 1024 * 1024, deadline_s: float = 120.0, chunk_framing: bool = False,
) -> StreamedAnswer:
    """Send the head, then up to `body_bytes` zero bytes in chunks (with `chunk_framing`, as a chunked body),
    looking for an answer before each chunk and stopping as soon as one arrives (or the connection closes).
    Returns the answer and how much body was sent."""
    connection = connect(endpoint, url)
    try:
        connection.sendall(request_head(url, method, headers))
        received = b""
        sent = 0
        deadline = time.monotonic() + deadline_s
        while sent < body_bytes and time.monotonic() < deadline:
            data = _read_available(connection)
            if data is None:
                size = min(chunk_bytes, body_bytes - sent)
                chunk = bytes(size)
                if chunk_framing:
                    chunk = f"{size:x}\r\n".encode() + chunk + b"\r\n"
                try:
                    connection.sendall(chunk)
                except _CLOSED_ERRORS:
                    break
                sent += size
                continue
            received += data
            break  # an answer (or the close) has begun: stop sending
        return _finish_answer(connection, received, sent, deadline)
    finally:
        connection.close()


def read_answer(connection: ssl.SSLSocket, deadline_s: float = 30.0) -> StreamedAnswer:
    return _finish_answer(connection, b"", 0, time.monotonic() + deadline_s)


def wait_closed(connection: ssl.SSLSocket, deadline_s: float, feed: bytes | None = None) -> bytes | None:
    """Poll until the server closes the connection (returns what it sent first) or the deadline passes (None).
    With `feed`, send one byte of it every poll step, as a slow client would."""
    received = b""
    remaining = memoryview(feed or b"")
    deadline = time.monotonic() + deadline_s
    connection.settimeout(POLL_S)
    while time.monotonic() < deadline:
        try:
            data = connection.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            data = None
        except _CLOSED_ERRORS:
            return received
        if data == b"":
            return received
        if data:
            received += data
        if remaining:
            try:
                connection.sendall(remaining[:1])
            except _CLOSED_ERRORS:
                return received
            remaining = remaining[1:]
    return None


def _read_available(connection: ssl.SSLSocket) -> bytes | None:
    """Application data the server has sent, b"" if it closed, None if nothing yet (TLS session tickets are not
    data)."""
    readable, _, _ = select.select([connection], [], [], 0)
    if not readable and not connection.pending():
        return None
    timeout = connection.gettimeout()
    connection.setblocking(False)
    try:
        return connection.recv(65536)
    except ssl.SSLWantReadError:
        return None
    except _CLOSED_ERRORS:
        return b""
    finally:
        connection.settimeout(timeout)


def _finish_answer(connection: ssl.SSLSocket, received: bytes, sent: int, deadline: float) -> StreamedAnswer:
    connection.settimeout(POLL_S)
    while time.monotonic() < deadline:
        head, separator, rest = received.partition(b"\r\n\r\n")
        if separator:
            status, headers = _parse_head(head)
            length = int(headers.get("content-length", "0"))
            if len(rest) >= length:
                return StreamedAnswer(status, headers, rest[:length], sent)
        try:
            data = connection.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        except _CLOSED_ERRORS:
            data = b""
        if not data:
            break
        received += data
    head, separator, rest = received.partition(b"\r\n\r\n")
    if not separator:
        return StreamedAnswer(None, {}, b"", sent)
    status, headers = _parse_head(head)
    return StreamedAnswer(status, headers, rest, sent)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers
