"""ARM answers: JSON bodies with the content type msrest-era clients expect, errors as `{"error": {...}}`."""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.responses import Response

from batchai_spec.emulator.routing import BodyLimit, Call, ServiceError
from batchai_spec.emulator.state import State

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
# ARM refuses request bodies over 4 MB with this answer (every operation, the admin API too).
MAX_BODY_BYTES = 4 * 1024 * 1024
_BODY_LIMIT = BodyLimit(
    MAX_BODY_BYTES,
    lambda: ServiceError(413, "RequestContentTooLarge", "The request content size exceeds the maximum size of 4 MB."),
)


def arm_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, headers=headers, media_type=JSON_CONTENT_TYPE)


def arm_empty(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(b"", status_code=status, headers=headers)


def render_arm_error(error: ServiceError) -> Response:
    """Never with Retry-After unless asked: azure-core retries any >= 400 answer that carries one."""
    return arm_json({"error": {"code": error.code, "message": error.message}}, error.status, error.headers)


def authenticate_bearer(state: State, call: Call) -> None:
    """ARM wants `Authorization: Bearer <token>`; a 401 without WWW-Authenticate makes the SDKs raise at once."""
    scheme, _, token = call.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ServiceError(401, "InvalidAuthenticationToken", "The request has no bearer token, or it is malformed.")
    if not hmac.compare_digest(token.strip().encode(), state.token.encode()):
        raise ServiceError(401, "InvalidAuthenticationToken", "The access token is invalid.")


def arm_body_limit(call: Call) -> BodyLimit:
    return _BODY_LIMIT


def require_subscription(state: State, subscription: str) -> None:
    if subscription.lower() != state.subscription_id.lower():
        raise ServiceError(404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found.")
