"""Shared access signatures for Files: verifying account, share and file SAS the SDK generates; minting file SAS.

Service SAS (`sr=f` file, `sr=s` share) sign the resource's canonical name, so a file SAS only opens that file.
Account SAS (`ss`/`srt`) open the services and resource types they list.
"""

from __future__ import annotations

import hmac
import ipaddress
from datetime import datetime, timezone
from urllib.parse import quote, urlencode

from batchai_spec.emulator.arm.storage_accounts import account_keys
from batchai_spec.emulator.clock import now, parse_sas_time
from batchai_spec.emulator.files.paths import RequestTarget, split_path
from batchai_spec.emulator.files.sharedkey import authentication_failed, sign
from batchai_spec.emulator.routing import Call, ServiceError
from batchai_spec.emulator.state import State

SAS_VERSION = "2025-11-05"
_SERVICE_SAS_FIELDS = ("si", "sip", "spr", "sv", "rscc", "rscd", "rsce", "rscl", "rsct")


def is_sas(call: Call) -> bool:
    return "sig" in call.query


def verify_sas(call: Call, target: RequestTarget, keys: tuple[str, ...], permission: str, resource_type: str) -> None:
    """Signature (either key), validity window, client IP, then `permission` (one of r/w/c/d/l; `c` is also
    granted by `w`) and, for account SAS, `resource_type` (s service, c share, o directory or file)."""
    query = call.query
    if "ss" in query or "srt" in query:
        string_to_sign = _account_string_to_sign(target.account, query)
    elif query.get("sr") in ("f", "s"):
        string_to_sign = _service_string_to_sign(_canonical_resource(target, query["sr"]), query)
    else:
        raise authentication_failed("The SAS names no signed resource (sr) or services (ss).")
    signature = query.get("sig", "")
    if not any(hmac.compare_digest(sign(key, string_to_sign).encode(), signature.encode()) for key in keys):
        raise authentication_failed("Signature did not match.")
    _check_window(query)
    _check_ip(query.get("sip"), call.client_host)
    if "ss" in query:
        if "f" not in query.get("ss", ""):
            raise ServiceError(
                403, "AuthorizationServiceMismatch", "This request is not authorized for the File service."
            )
        if resource_type not in query.get("srt", ""):
            raise ServiceError(
                403, "AuthorizationResourceTypeMismatch", "This request is not authorized for this resource type."
            )
    granted = query.get("sp", "")
    if permission not in granted and not (permission == "c" and "w" in granted):
        raise ServiceError(
            403, "AuthorizationPermissionMismatch", "This request is not authorized to perform this operation."
        )


def mint_file_sas_url(
    state: State, account: str, share: str, path: str, expiry: datetime, permissions: str = "r"
) -> str:
    """A service SAS URL for one file (as `generate_file_sas` makes them), signed with the account's first key."""
    keys = account_keys(state, account)
    if keys is None:
        raise LookupError(f"storage account {account} does not exist")
    names = split_path(path)
    parameters = {
        "se": expiry.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sp": permissions,
        "sv": SAS_VERSION,
        "sr": "f",
    }
    target = RequestTarget(account, share, names)
    parameters["sig"] = sign(keys[0], _service_string_to_sign(_canonical_resource(target, "f"), parameters))
    quoted_path = "/".join(quote(name, safe="") for name in names)
    return f"{state.storage_url}/{account}/{share}/{quoted_path}?{urlencode(parameters)}"


def _account_string_to_sign(account: str, query) -> str:
    fields = [account] + [query.get(name, "") for name in ("sp", "ss", "srt", "st", "se", "sip", "spr", "sv")]
    # The trailing empty field is the encryption scope, always empty for Files.
    return "\n".join(fields) + "\n\n"


def _service_string_to_sign(canonical_resource: str, query) -> str:
    fields = [query.get("sp", ""), query.get("st", ""), query.get("se", ""), canonical_resource]
    return "\n".join(fields + [query.get(name, "") for name in _SERVICE_SAS_FIELDS])


def _canonical_resource(target: RequestTarget, signed_resource: str) -> str:
    resource = f"/file/{target.account}/{target.share or ''}"
    if signed_resource == "f":
        resource += "/" + target.relative_path
    return resource


def _check_window(query) -> None:
    try:
        expiry = parse_sas_time(query.get("se", ""))
        start = parse_sas_time(query["st"]) if query.get("st") else None
    except ValueError:
        raise authentication_failed("The SAS start or expiry time is malformed.") from None
    moment = now()
    if expiry <= moment:
        raise authentication_failed("Signed expiry time has to be after the current time.")
    if start is not None and start > moment:
        raise authentication_failed("Signed start time is in the future.")


def _check_ip(allowed: str | None, client: str) -> None:
    if not allowed:
        return
    low, _, high = allowed.partition("-")
    try:
        address = ipaddress.ip_address(client)
        inside = ipaddress.ip_address(low) <= address <= ipaddress.ip_address(high or low)
    except ValueError:
        inside = False
    if not inside:
        raise ServiceError(403, "AuthorizationSourceIPMismatch", "This request is not authorized from this IP address.")
