"""SharedKey authentication of Files requests, recomputing the signature the SDK made (either account key)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

from batchai_spec.emulator.clock import now
from batchai_spec.emulator.routing import Call, ServiceError

_STANDARD_HEADERS = (
    "content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
    "if-modified-since", "if-match", "if-none-match", "if-unmodified-since",
)
_MAX_CLOCK_SKEW_S = 15 * 60


def sign(key: str, string_to_sign: str) -> str:
    digest = hmac.new(base64.b64decode(key), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def authentication_failed(detail: str) -> ServiceError:
    return ServiceError(
        403,
        "AuthenticationFailed",
        "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly"
        f" including the signature. {detail}",
    )


def verify_shared_key(call: Call, account: str, keys: tuple[str, ...]) -> None:
    scheme, _, credentials = call.headers.get("authorization", "").partition(" ")
    signed_account, _, signature = credentials.partition(":")
    if scheme != "SharedKey" or not signature:
        raise authentication_failed("Only SharedKey and SAS authentication are supported.")
    if signed_account != account:
        raise authentication_failed("The signature was made for another account.")
    _check_date(call)
    for string_to_sign in _strings_to_sign(call, account):
        for key in keys:
            if hmac.compare_digest(sign(key, string_to_sign).encode(), signature.encode()):
                return
    raise authentication_failed(
        "The MAC signature found in the HTTP request is not the same as any computed signature."
    )


def _check_date(call: Call) -> None:
    text = call.headers.get("x-ms-date") or call.headers.get("date")
    if not text:
        raise authentication_failed("The request has no x-ms-date header.")
    try:
        sent = parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        raise authentication_failed("The x-ms-date header is not a valid HTTP date.") from None
    if abs(now() - sent) > _MAX_CLOCK_SKEW_S:
        raise authentication_failed("The request time is more than 15 minutes off the server's clock.")


def _strings_to_sign(call: Call, account: str) -> list[str]:
    """Canonical x-ms headers in each order some SDK version sorts them (see `_header_orders`)."""
    standard = []
    for name in _STANDARD_HEADERS:
        value = call.headers.get(name, "")
        standard.append("" if name == "content-length" and value == "0" else value)
    head = call.method + "\n" + "\n".join(standard) + "\n" + "\n"  # the last slot is Range: never signed
    resource = "/" + account + call.raw_path + _canonical_query(call.raw_query)
    x_ms_headers = [(name, value) for name, value in call.headers.items() if name.startswith("x-ms-")]
    return [
        head + "".join(f"{name}:{value}\n" for name, value in ordering) + resource
        for ordering in _header_orders(x_ms_headers)
    ]


def _canonical_query(raw_query: str) -> str:
    """Names as sent, sorted, lower-cased; values decoded; for a repeated name the last value wins."""
    parameters: dict[str, str] = {}
    for part in raw_query.split("&") if raw_query else ():
        name, _, value = part.partition("=")
        parameters[name] = value
    return "".join(f"\n{name.lower()}:{unquote(value)}" for name, value in sorted(parameters.items()))


def _header_orders(headers: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Plain code-point order (file-share 12.10) and the collation 12.27 uses: `-` ignored, then `_` before digits
    before letters, letters without case; the two differ only for metadata names holding `-` or `_`."""
    plain = sorted(headers)
    collated = sorted(headers, key=lambda header: (_collation_key(header[0]), header[0]))
    return [plain] if collated == plain else [plain, collated]


def _collation_key(name: str) -> tuple[tuple[int, str], ...]:
    weights = []
    for character in name:
        if character == "-":
            continue
        if character == "_":
            weights.append((0, character))
        elif character.isdigit():
            weights.append((1, character))
        elif character.isalpha():
            weights.append((2, character.lower()))
        else:
            weights.append((3, character))
    return tuple(weights)
