"""Handlers for directories: create, properties, metadata, list (paged), delete."""

from __future__ import annotations

from starlette.responses import Response

from batchai_spec.emulator.files import listing, store
from batchai_spec.emulator.files.headers import entry_headers, metadata_from, metadata_headers, smb_headers
from batchai_spec.emulator.files.paths import RequestTarget
from batchai_spec.emulator.routing import Call
from batchai_spec.emulator.state import State


def create_directory(state: State, call: Call, target: RequestTarget) -> Response:
    share = store.get_share(state, target.account, target.share)
    entry = store.create_directory(state, share, target.names, metadata_from(call))
    return Response(status_code=201, headers={**entry_headers(entry), **smb_headers(entry)})


def directory_properties(state: State, call: Call, target: RequestTarget) -> Response:
    entry = store.require_target(state, target, directory=True)
    return Response(status_code=200, headers={**entry_headers(entry), **smb_headers(entry),
                                              **metadata_headers(entry.metadata), "x-ms-server-encrypted": "true"})


def set_directory_metadata(state: State, call: Call, target: RequestTarget) -> Response:
    entry = store.touch(state, store.require_target(state, target, directory=True), metadata=metadata_from(call))
    return Response(status_code=200, headers=entry_headers(entry))


def list_directory(state: State, call: Call, target: RequestTarget) -> Response:
    directory = store.require_target(state, target, directory=True)
    prefix = call.query.get("prefix", "")
    marker = call.query.get("marker", "")
    size = listing.page_size(call.query.get("maxresults"))
    entries = store.list_directory(state, directory, prefix, marker)
    include = call.query.get("include", "")
    if call.headers.get("x-ms-file-extended-info", "").lower() == "true":
        include += ",timestamps,etag"
    return listing.entries_page(
        f"{call.origin}/{target.account}/", directory, entries, prefix=prefix, marker=marker, size=size,
        include=include,
    )


def delete_directory(state: State, call: Call, target: RequestTarget) -> Response:
    store.delete_directory(state, store.require_target(state, target, directory=True))
    return Response(status_code=202)

