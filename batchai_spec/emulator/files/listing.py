"""The XML of Files listings (List Shares, List Directories and Files), one page at a time.

Markers are the name of the first entry of the next page, so a listing resumes correctly after entries come or go.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from urllib.parse import quote

from starlette.responses import Response

from batchai_spec.emulator.clock import iso8601, rfc1123
from batchai_spec.emulator.files.store import Entry, Share
from batchai_spec.emulator.routing import ServiceError

MAX_RESULTS = 5000
# Characters XML 1.0 cannot carry: names holding one are sent percent-encoded, flagged `Encoded="true"`, as Azure does.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def page_size(text: str | None) -> int:
    if text is None or text == "":
        return MAX_RESULTS
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise ServiceError(400, "OutOfRangeQueryParameterValue", "maxresults must be at least 1.")
    return min(size, MAX_RESULTS)


def shares_page(service_endpoint: str, shares: Sequence[Share], *, prefix: str, marker: str, size: int,
                include: str) -> Response:
    root = ET.Element("EnumerationResults", ServiceEndpoint=service_endpoint)
    _text(root, "Prefix", prefix)
    _text(root, "Marker", marker)
    _text(root, "MaxResults", str(size))
    items = ET.SubElement(root, "Shares")
    for share in shares[:size]:
        item = ET.SubElement(items, "Share")
        _text(item, "Name", share.name)
        properties = ET.SubElement(item, "Properties")
        _text(properties, "Last-Modified", rfc1123(share.modified_at))
        _text(properties, "Etag", share.etag)
        _text(properties, "Quota", str(share.quota))
        if "metadata" in include.lower().split(","):
            metadata = ET.SubElement(item, "Metadata")
            for name, value in share.metadata.items():
                _text(metadata, name, value)
    ET.SubElement(root, "NextMarker").text = shares[size].name if len(shares) > size else ""
    return xml_response(root)


def entries_page(service_endpoint: str, directory: Entry, entries: Sequence[Entry], *, prefix: str, marker: str,
                 size: int, include: str) -> Response:
    extended = {part.strip().lower() for part in include.split(",") if part.strip()}
    root = ET.Element("EnumerationResults", ServiceEndpoint=service_endpoint, ShareName=directory.share.name)
    if _NOT_XML.search(directory.relative_path):
        root.set("Encoded", "true")
        root.set("DirectoryPath", quote(directory.relative_path, safe="/"))
    else:
        root.set("DirectoryPath", directory.relative_path)
    _name(root, "Prefix", prefix)
    _text(root, "Marker", marker)
    _text(root, "MaxResults", str(size))
    _text(root, "DirectoryId", str(directory.inode))
    items = ET.SubElement(root, "Entries")
    for entry in entries[:size]:
        item = ET.SubElement(items, "Directory" if entry.is_directory else "File")
        _name(item, "Name", entry.names[-1])
        _text(item, "FileId", str(entry.inode))
        properties = ET.SubElement(item, "Properties")
        if not entry.is_directory:
            _text(properties, "Content-Length", str(entry.size))
        if "timestamps" in extended:
            _text(properties, "CreationTime", iso8601(entry.created_at))
            _text(properties, "LastWriteTime", iso8601(entry.modified_at))
            _text(properties, "ChangeTime", iso8601(entry.modified_at))
            _text(properties, "Last-Modified", rfc1123(entry.modified_at))
        if "etag" in extended:
            _text(properties, "Etag", entry.etag)
        if "attributes" in extended:
            _text(item, "Attributes", "Directory" if entry.is_directory else "Archive")
    ET.SubElement(root, "NextMarker").text = entries[size].names[-1] if len(entries) > size else ""
    return xml_response(root)


def _text(parent: ET.Element, tag: str, text: str) -> None:
    if text:
        ET.SubElement(parent, tag).text = text


def _name(parent: ET.Element, tag: str, text: str) -> None:
    """A name or prefix: as it is, or percent-encoded with `Encoded="true"` where XML cannot carry it."""
    if _NOT_XML.search(text):
        ET.SubElement(parent, tag, Encoded="true").text = quote(text, safe="")
    else:
        _text(parent, tag, text)


def xml_response(root: ET.Element) -> Response:
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(body, media_type="application/xml")
