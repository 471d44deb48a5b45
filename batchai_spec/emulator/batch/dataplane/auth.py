"""Who may call the Batch data plane: a SharedKey signature made with either key of the account the path names, or
the emulator's bearer token (what a Microsoft Entra token is to the real service).

SharedKey is recomputed exactly as azure-batch 15.1.0's `BatchSharedKeyAuthPolicy` computes it (reference §3.2):
the verb, eleven standard headers (Content-Length `0` for a body-less request other than GET/HEAD), every header
whose name holds `ocp-` sorted, `/` + account + the raw path as sent (percent-encoding kept: the account segment
the emulator's URL carries is part of it), then each query parameter with a value, sorted by name, decoded once.
A wrong signature is 403 AuthenticationFailed (with `AuthenticationErrorDetail`), a wrong or missing token 401.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, unquote

from batchai_spec.emulator.batch.store import account_by_name
from batchai_spec.emulator.batch.dataplane.wire import BatchError
from batchai_spec.emulator.clock import now
from batchai_spec.emulator.routing import Call
from batchai_spec.emulator.state import State

_SIGNED_HEADERS = (
    "content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
    "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range",
)
_MAX_CLOCK_SKEW_S = 15 * 60
_SIGNATURE_MESSAGE = (
    "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly"
    " including the signature."
)
_TOKEN_MESSAGE = "Server failed to authenticate the request. Make sure the value of Authorization header is formed" \
                 " correctly."


def account_segment(raw_path: str) -> str:
    """The account a request names: the first path segment (`/ACCOUNT/jobs/...`)."""
    return unquote(raw_path.lstrip("/").split("/", 1)[0])


def authenticate(state: State, call: Call) -> None:
    name = account_segment(call.raw_path)
    base = f"{call.origin}/{name}" if name else call.origin
    if not name:
        raise BatchError(400, "InvalidUri", "The requested URI does not represent any resource on the server.",
                         base=base)
    account = account_by_name(state.connection(), name)
    if account is None:
        # A real account name that does not exist has no DNS name at all; here the account is in the path, so the
        # emulator says so (404, which the SDK raises as ResourceNotFoundError).
        raise BatchError(404, "AccountNotFound", f"The Batch account '{name}' does not exist.", base=base)
    base = f"{call.origin}/{account.name}"
    header = call.headers.get("authorization", "")
    scheme, _, credentials = header.strip().partition(" ")
    if not header:
        raise BatchError(401, "AuthenticationFailed", _TOKEN_MESSAGE,
                         [("AuthenticationErrorDetail", "The request carries no Authorization header.")], base=base)
    if scheme.lower() == "bearer":
        token = credentials.strip()
        if not token or not hmac.compare_digest(token.encode(), state.token.encode()):
            raise BatchError(401, "AuthenticationFailed", _TOKEN_MESSAGE,
                             [("AuthenticationErrorDetail", "The access token is not valid for this service.")],
                             base=base)
        return
    if scheme != "SharedKey":
        raise BatchError(401, "AuthenticationFailed", _TOKEN_MESSAGE,
                         [("AuthenticationErrorDetail", f"The authorization scheme '{scheme}' is not supported.")],
                         base=base)
    verify_shared_key(call, account.name, (account.key1, account.key2), base)


def verify_shared_key(call: Call, account: str, keys: tuple[str, ...], base: str) -> None:
    signed_account, _, signature = call.headers.get("authorization", "").strip()[len("SharedKey "):].partition(":")
    if not signature:
        raise _refused("The Authorization header is not of the form 'SharedKey account:signature'.", base)
    if signed_account.lower() != account.lower():
        raise _refused(f"The signature was made for the account '{signed_account}', not '{account}'.", base)
    _check_repeats(call, base)
    _check_date(call, base)
    string_to_sign = _string_to_sign(call, signed_account)
    for key in keys:
        try:
            expected = _sign(key, string_to_sign)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected.encode(), signature.encode()):
            return
    raise _refused("The MAC signature found in the HTTP request is not the same as any computed signature.", base)


def _check_repeats(call: Call, base: str) -> None:
    """Refuse a repeated query parameter name or signed header: the string-to-sign could only cover one of the
    values while a handler reads another (`Call.query` keeps the last), so a captured request could be extended
    (`&maxresults=1`) without breaking its signature. The SDK never repeats either."""
    seen: set[str] = set()
    for part in call.raw_query.split("&"):
        if not part:
            continue
        name = unquote(part.partition("=")[0])
        if name in seen:
            raise _refused(f"The query parameter '{name}' is given more than once.", base)
        seen.add(name)
    counts: dict[str, int] = {}
    for name, _ in call.headers.items():
        name = name.lower()
        if name in _SIGNED_HEADERS or "ocp-" in name or name == "authorization":
            counts[name] = counts.get(name, 0) + 1
            if counts[name] > 1:
                raise _refused(f"The header '{name}' is given more than once.", base)


def _refused(detail: str, base: str) -> BatchError:
    return BatchError(403, "AuthenticationFailed", _SIGNATURE_MESSAGE, [("AuthenticationErrorDetail", detail)],
                      base=base)


def _sign(key: str, string_to_sign: str) -> str:
    digest = hmac.new(base64.b64decode(key), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _check_date(call: Call, base: str) -> None:
    text = call.headers.get("ocp-date") or call.headers.get("date")
    if not text:
        raise _refused("The request has neither an ocp-date nor a Date header.", base)
    try:
        sent = parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        raise _refused("The ocp-date header is not a valid HTTP date.", base) from None
    if abs(now() - sent) > _MAX_CLOCK_SKEW_S:
        raise _refused("The request time is more than 15 minutes off the server's clock.", base)


def _string_to_sign(call: Call, account: str) -> str:
    headers: dict[str, str] = {}
    for name, value in call.headers.items():
        if value:
            headers.setdefault(name.lower(), value)
    if call.method not in ("GET", "HEAD") and "content-length" not in headers:
        headers["content-length"] = "0"
    text = call.method + "\n" + "\n".join(headers.get(name, "") for name in _SIGNED_HEADERS) + "\n"
    text += "".join(f"{name}:{value}\n" for name, value in sorted(headers.items()) if "ocp-" in name)
    text += f"/{account}{call.raw_path}"
    query = parse_qs(call.raw_query)
    for name in sorted(query):
        value = query[name][0]
        if value:
            text += f"\n{name}:{value}"
    return text
