"""Rename File and Rename Directory (`PUT <destination>?comp=rename`, with `restype=directory` for directories): the
source is the URL in `x-ms-file-rename-source`, in the same share; `x-ms-file-rename-replace-if-exists` lets a file
replace a file; a new content type (`x-ms-content-type`, files) and metadata (`x-ms-meta-*`) may come with it.
The request's own authorization covers the source (a SAS on the source URL is the same share's)."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import Response

from batchai_spec.emulator.files import store
from batchai_spec.emulator.files.headers import entry_headers, metadata_from, smb_headers
from batchai_spec.emulator.files.paths import RequestTarget, parse_target
from batchai_spec.emulator.routing import Call, ServiceError
from batchai_spec.emulator.state import State

SOURCE_HEADER = "x-ms-file-rename-source"


def rename_file(state: State, call: Call, target: RequestTarget) -> Response:
    return _rename(state, call, target, directory=False)


def rename_directory(state: State, call: Call, target: RequestTarget) -> Response:
    return _rename(state, call, target, directory=True)


def _rename(state: State, call: Call, target: RequestTarget, *, directory: bool) -> Response:
    source_target = _source(call, target)
    source = store.require_target(state, source_target, directory=directory)
    replace = call.headers.get("x-ms-file-rename-replace-if-exists", "").lower() == "true"
    entry = store.rename_entry(state, source, target.names, replace=replace)
    settings = {"Content-Type": call.headers["x-ms-content-type"]} if call.headers.get("x-ms-content-type") else None
    metadata = metadata_from(call)
    if settings or metadata:
        entry = store.touch(state, entry, content_settings={**entry.content_settings, **(settings or {})},
                            metadata=metadata or None)
    return Response(status_code=200, headers={**entry_headers(entry), **smb_headers(entry)})


def _source(call: Call, target: RequestTarget) -> RequestTarget:
    text = call.headers.get(SOURCE_HEADER)
    if not text:
        raise ServiceError(400, "MissingRequiredHeader",
                           f"An HTTP header that's mandatory for this request is not specified: {SOURCE_HEADER}.")
    path = urlsplit(text).path if "://" in text else "/" + "/".join((target.account, target.share, text.lstrip("/")))
    source = parse_target(path)
    if (source.account, source.share) != (target.account, target.share) or not source.names:
        raise ServiceError(400, "InvalidInput", "The rename source must be a file or directory of the same share.")
    return source
