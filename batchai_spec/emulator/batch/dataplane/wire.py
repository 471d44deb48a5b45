"""The Batch data plane's answers: headers, OData errors, durations, times, api-versions, conditional headers.

What the real service sends (reference batch-api.md §3.1, §3.4; recordings/batch): `request-id`,
`DataServiceVersion: 3.0`, an unquoted `ETag` and `Last-Modified` on entities, JSON as
`application/json;odata=minimalmetadata` with `odata.metadata`, errors as
`{"odata.metadata", "code", "message": {"lang", "value": "...\\nRequestId:...\\nTime:..."}, "values"?}`.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from batchai_spec.emulator.clock import iso8601, now, rfc1123
from batchai_spec.emulator.routing import Call, ServiceError
from batchai_spec.emulator.state import State

JSON_TYPE = "application/json;odata=minimalmetadata"
ERROR_METADATA = "$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"
# TimeSpan.MaxValue: what the service answers for a duration that was not set ("unlimited").
UNLIMITED = "P10675199DT2H48M5.4775807S"
_MAX_TICKS = 9223372036854775807
_TICKS_PER_SECOND = 10_000_000
# `2025-06-01` (azure-batch 15.x) and `2024-02-01.19.0` (14.x and older msrest clients).
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(\.\d+\.\d+)?$")
# Job and task ids: letters, digits, hyphens and underscores, at most 64 characters.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class BatchError(ServiceError):
    """An error answer of the data plane; `values` become the body's `values` list (key/value pairs)."""

    def __init__(
        self, status: int, code: str, message: str, values: Iterable[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None, base: str = "",
    ):
        super().__init__(status, code, message, headers)
        self.values = list(values)
        self.base = base  # https://host:port/ACCOUNT, for odata.metadata


def not_found(code: str, what: str) -> BatchError:
    return BatchError(404, code, f"The specified {what} does not exist.")


def conflict(code: str, message: str) -> BatchError:
    return BatchError(409, code, message)


def missing_property(name: str) -> BatchError:
    return BatchError(
        400, "MissingRequiredProperty", "A required property was not specified in the request body.",
        [("PropertyName", name)],
    )


def invalid_property(name: str, value: Any, reason: str) -> BatchError:
    return BatchError(
        400, "InvalidPropertyValue", "The value provided for one of the properties in the request body is invalid.",
        [("PropertyName", name), ("PropertyValue", json.dumps(value) if not isinstance(value, str) else value),
         ("Reason", reason)],
    )


def invalid_query(name: str, value: str, reason: str) -> BatchError:
    return BatchError(
        400, "InvalidQueryParameterValue", "Value for one of the query parameters specified in the request URI is"
        " invalid.", [("QueryParameterName", name), ("QueryParameterValue", value), ("Reason", reason)],
    )


def invalid_body(reason: str) -> BatchError:
    return BatchError(400, "InvalidRequestBody", "The specified Request Body is not syntactically valid.",
                      [("Reason", reason)])


def render_error(error: ServiceError, default_base: str) -> Response:
    """Any ServiceError in the data plane's shape; a 304 has no body."""
    request_id = str(uuid.uuid4())
    headers = {"request-id": request_id, "DataServiceVersion": "3.0", **error.headers}
    if error.status == 304:
        return Response(b"", status_code=304, headers=headers)
    base = getattr(error, "base", "") or default_base
    body: dict[str, Any] = {
        "odata.metadata": f"{base}/{ERROR_METADATA}",
        "code": error.code,
        "message": {"lang": "en-US", "value": f"{error.message}\nRequestId:{request_id}\nTime:{iso8601(now())}"},
    }
    values = getattr(error, "values", None) or list(error.details.items())
    if values:
        body["values"] = [{"key": key, "value": value} for key, value in values]
    return Response(_dumps(body), status_code=error.status, headers=headers, media_type=JSON_TYPE)


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class Request:
    """One data-plane call as its handler sees it: the emulator's Call plus the account it names."""

    state: State
    call: Call
    account: str  # as the account row spells it
    base: str  # https://127.0.0.1:PORT/ACCOUNT: what entity urls and odata.metadata start with
    params: dict[str, str] = field(default_factory=dict)

    @property
    def query(self) -> Mapping[str, str]:
        return self.call.query

    def body(self) -> dict[str, Any]:
        """The JSON object the request carries ({} when none); a syntax error is InvalidRequestBody."""
        if not self.call.body:
            return {}
        try:
            document = json.loads(self.call.body)
        except (ValueError, RecursionError) as error:
            raise invalid_body(f"The body is not valid JSON: {error}") from None
        if not isinstance(document, dict):
            raise invalid_body("The body must be a JSON object.")
        return document

    def url(self, *segments: str) -> str:
        return self.base + "".join("/" + quote(segment, safe="") for segment in segments)

    def metadata(self, name: str) -> str:
        return f"{self.base}/$metadata#{name}"

    def json(self, body: dict[str, Any], metadata: str, status: int = 200, headers: Mapping[str, str] | None = None,
             ) -> Response:
        document = {"odata.metadata": self.metadata(metadata), **body}
        return answer(status, _dumps(document), headers, JSON_TYPE)


def answer(status: int, body: bytes = b"", headers: Mapping[str, str] | None = None,
           media_type: str | None = None) -> Response:
    response = Response(body, status_code=status, media_type=media_type)
    response.headers["request-id"] = str(uuid.uuid4())
    response.headers["DataServiceVersion"] = "3.0"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def entity_headers(etag: str, modified_at: float) -> dict[str, str]:
    return {"ETag": etag, "Last-Modified": rfc1123(modified_at)}


def created(url: str, etag: str, modified_at: float) -> Response:
    """201, empty body, where the new entity is: as the service answers every create."""
    return answer(201, b"", {**entity_headers(etag, modified_at), "Location": url, "DataServiceId": url})


def accepted(url: str, status: int = 202, etag: str | None = None,
             modified_at: float | None = None) -> Response:
    headers = {"DataServiceId": url}
    if etag is not None and modified_at is not None:
        headers.update(entity_headers(etag, modified_at))
    return answer(status, b"", headers)


def check_api_version(call: Call) -> None:
    version = call.query.get("api-version")
    if version is None:
        raise BatchError(
            400, "MissingRequiredQueryParameter", "A query parameter that's mandatory for this request is not"
            " specified.", [("QueryParameterName", "api-version")],
        )
    if not _API_VERSION.match(version):
        raise BatchError(400, "UnsupportedRequestVersion", "The specified request version is not supported.",
                         [("QueryParameterName", "api-version"), ("QueryParameterValue", version)])


# --- conditional headers ---------------------------------------------------------------------------------------


def _http_date(call: Call, name: str) -> float | None:
    text = call.headers.get(name)
    if not text:
        return None
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        raise BatchError(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct"
                         " format.", [("HeaderName", name), ("HeaderValue", text)]) from None


def check_conditions(call: Call, etag: str, modified_at: float) -> None:
    """If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since against an entity that exists.

    Reads (GET, HEAD) answer 304 where the condition is only about freshness; everything else 412 ConditionNotMet,
    as recorded. Times compare at whole seconds, the precision of the HTTP dates the client sends."""
    read = call.method in ("GET", "HEAD")
    modified = math.floor(modified_at)
    failed = False
    not_modified = False
    if_match = call.headers.get("if-match")
    if if_match and if_match.strip() != "*" and etag not in _etags(if_match):
        failed = True
    if_none_match = call.headers.get("if-none-match")
    if if_none_match and (if_none_match.strip() == "*" or etag in _etags(if_none_match)):
        not_modified = read
        failed = failed or not read
    since = _http_date(call, "if-modified-since")
    if since is not None and modified <= since:
        not_modified = not_modified or read
        failed = failed or not read
    unmodified_since = _http_date(call, "if-unmodified-since")
    if unmodified_since is not None and modified > unmodified_since:
        failed = True
    if failed:
        raise BatchError(412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not"
                         " met.")
    if not_modified:
        raise BatchError(304, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not"
                         " met.", headers={"ETag": etag, "Last-Modified": rfc1123(modified_at)})


def _etags(header: str) -> set[str]:
    return {item.strip().removeprefix("W/").strip('"') for item in header.split(",")}


# --- durations -------------------------------------------------------------------------------------------------

_DURATION = re.compile(
    r"^P(?:(?P<Y>\d+(?:\.\d+)?)Y)?(?:(?P<MO>\d+(?:\.\d+)?)M)?(?:(?P<W>\d+(?:\.\d+)?)W)?(?:(?P<D>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<H>\d+(?:\.\d+)?)H)?(?:(?P<MI>\d+(?:\.\d+)?)M)?(?:(?P<S>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {"Y": 365 * 86400, "MO": 30 * 86400, "W": 7 * 86400, "D": 86400, "H": 3600, "MI": 60, "S": 1}


def duration_seconds(text: str) -> Decimal | None:
    """Seconds of an ISO 8601 duration as the service reads it (a year 365 days, a month 30), None if invalid."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None or text in ("P", "PT") or text.endswith("T"):
        return None
    return sum((Decimal(value) * _UNIT_SECONDS[unit] for unit, value in match.groupdict().items() if value),
               Decimal(0))


def normalize_duration(text: Any, name: str) -> str:
    """The duration as the service answers it: `P3Y6M4DT12H30M5S` -> `P1279DT12H30M5S`, `PT01H00M00S` -> `PT1H`;
    anything at or past TimeSpan.MaxValue is the unlimited value."""
    seconds = duration_seconds(text)
    if seconds is None:
        raise invalid_property(name, text, "The value is not a valid ISO 8601 duration.")
    ticks = int(seconds * _TICKS_PER_SECOND)
    if ticks >= _MAX_TICKS:
        return UNLIMITED
    days, rest = divmod(ticks, 86400 * _TICKS_PER_SECOND)
    hours, rest = divmod(rest, 3600 * _TICKS_PER_SECOND)
    minutes, rest = divmod(rest, 60 * _TICKS_PER_SECOND)
    whole, fraction = divmod(rest, _TICKS_PER_SECOND)
    text_out = "P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if whole or fraction:
        clock += str(whole) + (f".{fraction:07d}".rstrip("0") if fraction else "") + "S"
    if clock:
        text_out += "T" + clock
    return text_out if text_out != "P" else "PT0S"
