"""The Files service: who may ask (SharedKey, SAS; never anonymous), how large a body it may send, which handler
answers.

Requests are told apart the way the REST API does: by the path depth and the `restype` / `comp` query values.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response

from batchai_spec.emulator.arm.storage_accounts import account_keys
from batchai_spec.emulator.files import (
    directories,
    file_handlers,
    renames,
    service_properties,
    share_security,
    shares,
)
from batchai_spec.emulator.files.headers import MAX_RANGE_BYTES, body_too_large
from batchai_spec.emulator.files.paths import RequestTarget, parse_target
from batchai_spec.emulator.files.sas import is_sas, verify_sas
from batchai_spec.emulator.files.sharedkey import verify_shared_key
from batchai_spec.emulator.routing import BodyLimit, Call, ServiceError
from batchai_spec.emulator.state import State

DEFAULT_VERSION = "2026-10-06"
# Request bodies: Put Range and Create File (initial content) carry file data, up to 4 MiB as on Azure; no other
# operation the emulator serves takes a body, so theirs get a small bound.
SMALL_BODY_BYTES = 64 * 1024
_DATA_BODY = BodyLimit(MAX_RANGE_BYTES, lambda: body_too_large(MAX_RANGE_BYTES))
_SMALL_BODY = BodyLimit(SMALL_BODY_BYTES, lambda: body_too_large(SMALL_BODY_BYTES))
FilesHandler = Callable[[State, Call, RequestTarget], Response]

# (method, comp) -> handler, one table per level of the path.
_ACCOUNT: dict[tuple[str, str | None], FilesHandler] = {
    ("GET", "list"): shares.list_shares,
    ("PUT", "properties"): service_properties.set_service_properties,
    ("GET", "properties"): service_properties.service_properties,
}
_SHARE: dict[tuple[str, str | None], FilesHandler] = {
    ("PUT", None): shares.create_share,
    ("GET", None): shares.share_properties,
    ("HEAD", None): shares.share_properties,
    ("GET", "metadata"): shares.share_properties,
    ("HEAD", "metadata"): shares.share_properties,
    ("PUT", "properties"): shares.set_share_properties,
    ("PUT", "metadata"): shares.set_share_metadata,
    ("GET", "stats"): shares.share_stats,
    ("PUT", "acl"): share_security.set_share_acl,
    ("GET", "acl"): share_security.share_acl,
    ("PUT", "filepermission"): share_security.create_permission,
    ("GET", "filepermission"): share_security.permission,
    ("DELETE", None): shares.delete_share,
}
_DIRECTORY: dict[tuple[str, str | None], FilesHandler] = {
    ("PUT", None): directories.create_directory,
    ("GET", None): directories.directory_properties,
    ("HEAD", None): directories.directory_properties,
    ("PUT", "metadata"): directories.set_directory_metadata,
    ("GET", "list"): directories.list_directory,
    ("PUT", "rename"): renames.rename_directory,
    ("DELETE", None): directories.delete_directory,
}
_FILE: dict[tuple[str, str | None], FilesHandler] = {
    ("PUT", None): file_handlers.create_file,
    ("PUT", "range"): file_handlers.put_range,
    ("PUT", "properties"): file_handlers.set_file_properties,
    ("PUT", "metadata"): file_handlers.set_file_metadata,
    ("PUT", "rename"): renames.rename_file,
    ("GET", None): file_handlers.download,
    ("HEAD", None): file_handlers.file_properties,
    ("DELETE", None): file_handlers.delete_file,
}


def authenticate(state: State, call: Call) -> None:
    target = parse_target(call.raw_path)
    keys = account_keys(state, target.account)
    if keys is None:
        raise ServiceError(404, "ResourceNotFound", "The specified account does not exist.")
    if is_sas(call):
        verify_sas(call, target, keys, _sas_permission(call), _sas_resource_type(call, target))
    elif call.headers.get("authorization"):
        verify_shared_key(call, target.account, keys)
    else:
        raise ServiceError(
            401, "NoAuthenticationInformation", "The request carries neither a SharedKey signature nor a SAS."
        )


def body_limit(call: Call) -> BodyLimit:
    """The bound on this request's body (called after `authenticate`, before any of the body is read)."""
    target = parse_target(call.raw_path)
    carries_data = (
        call.method == "PUT" and bool(target.names) and call.query.get("restype") is None
        and call.query.get("comp") in (None, "range")
    )
    return _DATA_BODY if carries_data else _SMALL_BODY


def dispatch(state: State, call: Call) -> Response:
    target = parse_target(call.raw_path)
    restype = call.query.get("restype")
    if target.share is None:
        table = _ACCOUNT
    elif restype == "share" and not target.names:
        table = _SHARE
    elif restype == "directory":
        table = _DIRECTORY
    elif restype is None and target.names:
        table = _FILE
    else:
        table = {}
    handler = table.get((call.method, call.query.get("comp")))
    if handler is None:
        known_verb = call.method in ("GET", "HEAD", "PUT", "DELETE")
        raise ServiceError(
            400, "InvalidQueryParameterValue" if known_verb else "UnsupportedHttpVerb",
            "The emulator does not support this operation on this resource.",
        )
    response = handler(state, call, target)
    # The service answers in the version the client asked for; the SDKs send any of a dozen, all accepted.
    response.headers["x-ms-version"] = call.headers.get("x-ms-version", DEFAULT_VERSION)
    return response


def _sas_permission(call: Call) -> str:
    comp = call.query.get("comp")
    if call.method in ("GET", "HEAD"):
        return "l" if comp == "list" else "r"
    if call.method == "DELETE":
        return "d"
    return "c" if comp is None else "w"


def _sas_resource_type(call: Call, target: RequestTarget) -> str:
    if target.share is None:
        return "s"
    if not target.names and call.query.get("restype") == "share":
        return "c"
    return "o"
