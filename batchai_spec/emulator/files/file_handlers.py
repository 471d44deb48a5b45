"""Handlers for files: create (with initial content), put range (update or clear), properties (resize), metadata,
(ranged) download, delete."""

from __future__ import annotations

import base64
import hashlib

from starlette.responses import Response

from batchai_spec.emulator.files import store
from batchai_spec.emulator.files.headers import (
    MAX_RANGE_BYTES,
    body_too_large,
    content_settings_from,
    entry_headers,
    file_headers,
    integer_header,
    metadata_from,
    requested_range,
    smb_headers,
)
from batchai_spec.emulator.files.paths import RequestTarget
from batchai_spec.emulator.files.sas import is_sas
from batchai_spec.emulator.routing import Call, ServiceError
from batchai_spec.emulator.state import State

# Create File takes initial content (up to 4 MiB) from this service version on; before it, no body.
CREATE_WITH_CONTENT_VERSION = "2026-02-06"
# Response headers a SAS may override (rscc...rsct), as the service does for downloads.
_SAS_OVERRIDES = {
    "rscc": "Cache-Control", "rscd": "Content-Disposition", "rsce": "Content-Encoding", "rscl": "Content-Language",
    "rsct": "Content-Type",
}
_ZEROS = bytes(MAX_RANGE_BYTES)


def create_file(state: State, call: Call, target: RequestTarget) -> Response:
    """Create File; with x-ms-version 2026-02-06 or later the body, if any, is the file's first bytes (the SDK's
    `create_file(size, data=...)` sends it so). Earlier versions allow no body ("Content-Length: must be zero")."""
    if call.headers.get("x-ms-type", "").lower() != "file":
        raise ServiceError(400, "InvalidHeaderValue", "The value for header x-ms-type must be 'file'.")
    size = integer_header(call, "x-ms-content-length", required=True)
    if call.body:
        version = call.headers.get("x-ms-version", CREATE_WITH_CONTENT_VERSION)
        if version < CREATE_WITH_CONTENT_VERSION:
            raise ServiceError(
                400, "InvalidHeaderValue",
                f"The value for one of the HTTP headers is not in the correct format: before version"
                f" {CREATE_WITH_CONTENT_VERSION}, Create File takes no content (Content-Length must be zero).",
                details={"HeaderName": "Content-Length", "HeaderValue": str(len(call.body))},
            )
        if len(call.body) > size:
            raise ServiceError(
                400, "InvalidHeaderValue",
                "The content is longer than the file (Content-Length exceeds x-ms-content-length).",
                details={"HeaderName": "Content-Length", "HeaderValue": str(len(call.body))},
            )
        _check_content_md5(call)
    share = store.get_share(state, target.account, target.share)
    entry = store.create_file(
        state, share, target.names, size, content_settings_from(call), metadata_from(call), content=call.body
    )
    return Response(status_code=201, headers={**entry_headers(entry), **smb_headers(entry),
                                              "x-ms-request-server-encrypted": "true"})


def put_range(state: State, call: Call, target: RequestTarget) -> Response:
    entry = store.require_target(state, target, directory=False)
    mode = call.headers.get("x-ms-write", "").lower()
    if mode not in ("update", "clear"):
        raise ServiceError(400, "InvalidHeaderValue", "The value for header x-ms-write must be 'update' or 'clear'.")
    start, end = _write_range(call)
    length = end - start + 1
    if end >= entry.size:
        # Ranges never extend a file (its length is what counts against the quota): resize it first.
        raise ServiceError(416, "InvalidRange", "The range specified is invalid for the current size of the resource.")
    headers = {}
    if mode == "update":
        if length > MAX_RANGE_BYTES:
            raise body_too_large(MAX_RANGE_BYTES)
        if len(call.body) != length:
            raise ServiceError(400, "InvalidHeaderValue", "The body length does not match the range.")
        md5 = _check_content_md5(call)
        if md5:
            headers["Content-MD5"] = md5
        entry = store.write_range(state, entry, start, call.body)
    else:
        if call.body:
            raise ServiceError(400, "InvalidHeaderValue", "A clear range request must have no body.")
        for offset in range(start, end + 1, MAX_RANGE_BYTES):
            entry = store.write_range(state, entry, offset, _ZEROS[: min(MAX_RANGE_BYTES, end + 1 - offset)])
    headers.update(entry_headers(entry))
    return Response(status_code=201, headers={**headers, "x-ms-request-server-encrypted": "true"})


def set_file_properties(state: State, call: Call, target: RequestTarget) -> Response:
    """Set HTTP Headers and Resize File: settings in the request replace the stored ones; a size resizes."""
    entry = store.require_target(state, target, directory=False)
    size = integer_header(call, "x-ms-content-length", required=False)
    if size is not None:
        store.resize_file(entry, size)  # refused past the 4 TiB file limit or the share's quota
    settings = content_settings_from(call)
    entry = store.touch(state, entry, content_settings=settings if settings or size is None else None)
    return Response(status_code=200, headers={**entry_headers(entry), **smb_headers(entry)})


def set_file_metadata(state: State, call: Call, target: RequestTarget) -> Response:
    entry = store.touch(state, store.require_target(state, target, directory=False), metadata=metadata_from(call))
    return Response(status_code=200, headers=entry_headers(entry))


def file_properties(state: State, call: Call, target: RequestTarget) -> Response:
    entry = store.require_target(state, target, directory=False)
    return Response(status_code=200, headers={**file_headers(entry), "Content-Length": str(entry.size)})


def download(state: State, call: Call, target: RequestTarget) -> Response:
    entry = store.require_target(state, target, directory=False)
    headers = file_headers(entry)
    if is_sas(call):
        headers.update({header: call.query[name] for name, header in _SAS_OVERRIDES.items() if call.query.get(name)})
    requested = requested_range(call)
    if requested is None:
        body = store.read_range(entry, 0, entry.size - 1) if entry.size else b""
        return Response(body, status_code=200, headers=headers)
    start, end = _clamp(requested, entry.size)
    body = store.read_range(entry, start, end)
    headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
    if "Content-MD5" in headers:
        # On ranged reads the whole file's MD5 moves aside; Content-MD5 would be the range's.
        headers["x-ms-content-md5"] = headers.pop("Content-MD5")
    if call.headers.get("x-ms-range-get-content-md5", "").lower() == "true":
        if len(body) > MAX_RANGE_BYTES:
            raise ServiceError(400, "OutOfRangeInput", "Content-MD5 is only available for ranges up to 4 MiB.")
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    return Response(body, status_code=206, headers=headers)


def delete_file(state: State, call: Call, target: RequestTarget) -> Response:
    store.delete_file(state, store.require_target(state, target, directory=False))
    return Response(status_code=202)


def _check_content_md5(call: Call) -> str | None:
    """Verify a transactional Content-MD5 of the body (400 Md5Mismatch); returns it when sent."""
    sent_md5 = call.headers.get("content-md5")
    if not sent_md5:
        return None
    actual = base64.b64encode(hashlib.md5(call.body).digest()).decode()
    if actual != sent_md5:
        raise ServiceError(
            400, "Md5Mismatch",
            "The MD5 value specified in the request did not match the MD5 value calculated by the server.",
        )
    return actual


def _write_range(call: Call) -> tuple[int, int]:
    requested = requested_range(call)
    if requested is None or requested[0] is None or requested[1] is None:
        raise ServiceError(400, "MissingRequiredHeader", "Put Range needs x-ms-range: bytes=START-END.")
    return requested[0], requested[1]


def _clamp(requested: tuple[int | None, int | None], size: int) -> tuple[int, int]:
    start, end = requested
    if start is None:
        start, end = max(0, size - (end or 0)), size - 1
    if start >= size:
        raise ServiceError(
            416, "InvalidRange", "The range specified is invalid for the current size of the resource.",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, min(size - 1 if end is None else end, size - 1)
