"""Request headers in, response headers out: metadata, ranges, content settings, the common entity headers."""

from __future__ import annotations

import os
import re

from batchai_spec.emulator.clock import iso8601, rfc1123
from batchai_spec.emulator.files.store import CONTENT_SETTINGS, Entry, Share
from batchai_spec.emulator.routing import Call, ServiceError

MAX_RANGE_BYTES = 4 * 1024 * 1024
# The emulator keeps no SMB security descriptors yet: every file and directory has the share's default one, which
# this key names (Azure's keys are opaque strings of this shape).
DEFAULT_PERMISSION_KEY = "4066528134148476695*1"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# Where the Create File / Set Properties requests carry each content setting.
_SETTING_REQUEST_HEADERS = {
    "Content-Type": "x-ms-content-type",
    "Content-Encoding": "x-ms-content-encoding",
    "Content-Language": "x-ms-content-language",
    "Content-Disposition": "x-ms-content-disposition",
    "Cache-Control": "x-ms-cache-control",
    "Content-MD5": "x-ms-content-md5",
}


def body_too_large(max_bytes: int) -> ServiceError:
    """The service's 413 for a request body over an operation's bound, with the bound as `MaxLimit`."""
    return ServiceError(
        413, "RequestBodyTooLarge", "The request body is too large and exceeds the maximum permissible limit.",
        details={"MaxLimit": str(max_bytes)},
    )


def metadata_from(call: Call) -> dict[str, str]:
    """`x-ms-meta-NAME` headers (the bare `x-ms-meta` the SDK also sends is a repr of the dict: not metadata)."""
    return {name[len("x-ms-meta-"):]: value for name, value in call.headers.items() if name.startswith("x-ms-meta-")}


def content_settings_from(call: Call) -> dict[str, str]:
    return {
        setting: call.headers[header]
        for setting, header in _SETTING_REQUEST_HEADERS.items()
        if call.headers.get(header)
    }


def integer_header(call: Call, name: str, *, required: bool) -> int | None:
    text = call.headers.get(name)
    if text is None:
        if required:
            raise ServiceError(
                400, "MissingRequiredHeader",
                f"An HTTP header that's mandatory for this request is not specified: {name}.",
            )
        return None
    try:
        value = int(text)
    except ValueError:
        raise ServiceError(400, "InvalidHeaderValue", f"The value for header {name} is not valid.") from None
    if value < 0:
        raise ServiceError(400, "InvalidHeaderValue", f"The value for header {name} is not valid.")
    return value


def requested_range(call: Call) -> tuple[int | None, int | None] | None:
    """(start, end) from `x-ms-range` or `Range`; start None means a suffix of `end` bytes; end None: to the end."""
    text = call.headers.get("x-ms-range") or call.headers.get("range")
    if not text:
        return None
    match = _RANGE.match(text.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise ServiceError(
            400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format."
        )
    start = int(match.group(1)) if match.group(1) else None
    end = int(match.group(2)) if match.group(2) else None
    if start is not None and end is not None and end < start:
        raise ServiceError(400, "InvalidHeaderValue", "The range end is before its start.")
    return start, end


def metadata_headers(metadata: dict[str, str]) -> dict[str, str]:
    return {f"x-ms-meta-{name}": value for name, value in metadata.items()}


def share_headers(share: Share) -> dict[str, str]:
    return {"ETag": share.etag, "Last-Modified": rfc1123(share.modified_at)}


def entry_headers(entry: Entry) -> dict[str, str]:
    return {"ETag": entry.etag, "Last-Modified": rfc1123(entry.modified_at)}


def smb_headers(entry: Entry) -> dict[str, str]:
    """The SMB properties Azure answers for a file or directory (creation, last write and change times,
    attributes, permission key, file and parent ids), from the file system under the emulator's share."""
    try:
        parent_id = str(os.stat(entry.path.parent).st_ino) if entry.names else "0"
    except OSError:
        parent_id = "0"
    return {
        "x-ms-file-creation-time": iso8601(entry.created_at),
        "x-ms-file-last-write-time": iso8601(entry.modified_at),
        "x-ms-file-change-time": iso8601(entry.modified_at),
        "x-ms-file-attributes": "Directory" if entry.is_directory else "Archive",
        "x-ms-file-permission-key": DEFAULT_PERMISSION_KEY,
        "x-ms-file-id": str(entry.inode),
        "x-ms-file-parent-id": parent_id,
    }


def file_headers(entry: Entry) -> dict[str, str]:
    """What Get File Properties answers (Content-Length is the caller's: it differs for ranged downloads). No file
    leases yet: every file is `available` and `unlocked`."""
    headers = {
        **entry_headers(entry),
        **smb_headers(entry),
        **metadata_headers(entry.metadata),
        "x-ms-type": "File",
        "Accept-Ranges": "bytes",
        "Content-Type": entry.content_settings.get("Content-Type") or "application/octet-stream",
        "x-ms-lease-state": "available",
        "x-ms-lease-status": "unlocked",
        "x-ms-server-encrypted": "true",
    }
    for setting in CONTENT_SETTINGS:
        if setting != "Content-Type" and entry.content_settings.get(setting):
            headers[setting] = entry.content_settings[setting]
    return headers
