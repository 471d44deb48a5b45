"""A share's access policies (Set and Get Share ACL, `?restype=share&comp=acl`) and its SMB permissions (Create and
Get Permission, `?restype=share&comp=filepermission`), kept with the share and deleted with it.

Access policies are kept as sent (at most 5 signed identifiers, as Azure allows); SAS tokens that name one (`si`)
are not resolved against them yet. Permissions are SDDL strings; a permission's key is derived from its text, so
the same permission always gets the same key. The binary format (`x-ms-file-permission-format: binary`) is not
served.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET

from starlette.responses import Response

from batchai_spec.emulator.files import store
from batchai_spec.emulator.files.headers import DEFAULT_PERMISSION_KEY, share_headers
from batchai_spec.emulator.files.listing import xml_response
from batchai_spec.emulator.files.paths import RequestTarget
from batchai_spec.emulator.routing import Call, ServiceError
from batchai_spec.emulator.state import State

MAX_SIGNED_IDENTIFIERS = 5
ACL = "acl"
PERMISSION = "permission"
KEY_HEADER = "x-ms-file-permission-key"
# What every file and directory reports (headers.DEFAULT_PERMISSION_KEY): full control for the administrators and
# SYSTEM, modify for authenticated users, read for users, as a new Azure file share's root has.
DEFAULT_PERMISSION = "O:SYG:SYD:(A;;FA;;;BA)(A;;FA;;;SY)(A;;0x1301bf;;;AU)(A;;0x1200a9;;;BU)"


def set_share_acl(state: State, call: Call, target: RequestTarget) -> Response:
    share = store.get_share(state, target.account, target.share)
    try:
        root = ET.fromstring(call.body) if call.body.strip() else ET.Element("SignedIdentifiers")
    except ET.ParseError:
        raise ServiceError(400, "InvalidXmlDocument", "The XML specified is not syntactically valid.") from None
    if root.tag != "SignedIdentifiers" or len(root.findall("SignedIdentifier")) > MAX_SIGNED_IDENTIFIERS:
        raise ServiceError(400, "InvalidXmlDocument",
                           f"A share has at most {MAX_SIGNED_IDENTIFIERS} signed identifiers.")
    store.save_share_record(state, share, ACL, "", ET.tostring(root, encoding="unicode"))
    return Response(status_code=200, headers=share_headers(share))


def share_acl(state: State, call: Call, target: RequestTarget) -> Response:
    share = store.get_share(state, target.account, target.share)
    stored = store.share_record(state, share, ACL, "")
    response = xml_response(ET.fromstring(stored) if stored else ET.Element("SignedIdentifiers"))
    response.headers.update(share_headers(share))
    return response


def create_permission(state: State, call: Call, target: RequestTarget) -> Response:
    share = store.get_share(state, target.account, target.share)
    try:
        permission = json.loads(call.body)["permission"]
    except (ValueError, KeyError, TypeError):
        raise ServiceError(400, "InvalidInput", "The body must be a JSON object with a permission.") from None
    if not isinstance(permission, str) or not permission.startswith(("O:", "G:", "D:", "S:")):
        raise ServiceError(400, "FileInvalidPermission", "The specified permission is not a valid SDDL string.")
    digest = int(hashlib.sha256(permission.encode()).hexdigest(), 16)
    key = f"{digest % 10**19}*{digest % 10**4}"
    store.save_share_record(state, share, PERMISSION, key, permission)
    return Response(status_code=201, headers={KEY_HEADER: key})


def permission(state: State, call: Call, target: RequestTarget) -> Response:
    share = store.get_share(state, target.account, target.share)
    if (call.headers.get("x-ms-file-permission-format") or "sddl").lower() != "sddl":
        raise ServiceError(400, "InvalidHeaderValue", "The emulator serves permissions in SDDL only.")
    key = call.headers.get(KEY_HEADER, "")
    stored = store.share_record(state, share, PERMISSION, key)
    if stored is None and key == DEFAULT_PERMISSION_KEY:
        stored = DEFAULT_PERMISSION
    if stored is None:
        raise ServiceError(404, "FilePermissionNotFound", "The specified file permission was not found.")
    return Response(json.dumps({"permission": stored}), status_code=200, media_type="application/json")
