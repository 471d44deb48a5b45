"""Handlers for the account (List Shares) and for shares: create, properties, quota, metadata, stats, delete."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from starlette.responses import Response

from batchai_spec.emulator.files import listing, store
from batchai_spec.emulator.files.headers import integer_header, metadata_from, metadata_headers, share_headers
from batchai_spec.emulator.files.paths import RequestTarget
from batchai_spec.emulator.routing import Call, ServiceError
from batchai_spec.emulator.state import State


def list_shares(state: State, call: Call, target: RequestTarget) -> Response:
    prefix = call.query.get("prefix", "")
    marker = call.query.get("marker", "")
    size = listing.page_size(call.query.get("maxresults"))
    shares = store.list_shares(state, target.account, prefix, marker)
    endpoint = f"{call.origin}/{target.account}/"
    return listing.shares_page(
        endpoint, shares, prefix=prefix, marker=marker, size=size, include=call.query.get("include", "")
    )


def create_share(state: State, call: Call, target: RequestTarget) -> Response:
    quota = _quota(call) or store.DEFAULT_QUOTA_GIB
    share = store.create_share(state, target.account, target.share, quota, metadata_from(call))
    return Response(status_code=201, headers=share_headers(share))


def share_properties(state: State, call: Call, target: RequestTarget) -> Response:
    share = store.get_share(state, target.account, target.share)
    headers = {**share_headers(share), **metadata_headers(share.metadata), "x-ms-share-quota": str(share.quota)}
    return Response(status_code=200, headers=headers)


def set_share_properties(state: State, call: Call, target: RequestTarget) -> Response:
    share = store.update_share(state, store.get_share(state, target.account, target.share), quota=_quota(call))
    return Response(status_code=200, headers=share_headers(share))


def set_share_metadata(state: State, call: Call, target: RequestTarget) -> Response:
    share = store.get_share(state, target.account, target.share)
    share = store.update_share(state, share, metadata=metadata_from(call))
    return Response(status_code=200, headers=share_headers(share))


def share_stats(state: State, call: Call, target: RequestTarget) -> Response:
    share = store.get_share(state, target.account, target.share)
    root = ET.Element("ShareStats")
    ET.SubElement(root, "ShareUsageBytes").text = str(store.share_usage_bytes(share))
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(body, status_code=200, headers=share_headers(share), media_type="application/xml")


def delete_share(state: State, call: Call, target: RequestTarget) -> Response:
    store.delete_share(state, store.get_share(state, target.account, target.share))
    return Response(status_code=202)


def _quota(call: Call) -> int | None:
    quota = integer_header(call, "x-ms-share-quota", required=False)
    if quota is not None and not 1 <= quota <= store.MAX_QUOTA_GIB:
        raise ServiceError(
            400, "InvalidHeaderValue", f"The share quota must be between 1 and {store.MAX_QUOTA_GIB} GiB."
        )
    return quota
