"""Requests in, responses out: the `Call` handlers receive, errors they raise, and the ARM route table.

Handlers are plain synchronous functions `handler(state, call) -> starlette Response`. The ASGI layer authenticates
from the headers alone, then reads the body as a stream, refusing it as soon as it passes the operation's bound
(`BodyLimit`), then runs the handler in the thread pool, so handlers may block on SQLite and the disk. No body is
read for a request that fails authentication, and none is ever held beyond its bound.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from batchai_spec.emulator.state import State

logger = logging.getLogger("batchai_spec.emulator")

# The ASGI scope key under which the fault injector asks the next LRO to fail (see faults.py and lro.py).
OPERATION_FAULT_SCOPE_KEY = "batchai_spec.operation_fault"
# JSON request bodies nested deeper than this are refused (400) before any handler walks them.
MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class OperationFault:
    code: str
    message: str


@dataclass(frozen=True)
class Call:
    """One request as handlers see it."""

    method: str
    path: str  # percent-decoded
    raw_path: str  # exactly as sent (SharedKey signs this)
    raw_query: str
    query: Mapping[str, str]  # decoded; blank values kept; for a repeated name the last value wins
    headers: Headers  # case-insensitive
    body: bytes
    origin: str  # "https://127.0.0.1:PORT" of the service that received the request
    client_host: str
    params: Mapping[str, str] = field(default_factory=dict)  # route parameters
    operation_fault: OperationFault | None = None  # set by a fault rule: the LRO this call starts must fail

    def json(self) -> Any:
        if not self.body:
            return {}
        too_deep = ServiceError(
            400, "InvalidRequestContent",
            f"The request content was invalid and could not be deserialized: it nests deeper than {MAX_JSON_DEPTH}"
            " levels.",
        )
        try:
            document = json.loads(self.body)
        except RecursionError:
            raise too_deep from None
        except ValueError as error:
            raise ServiceError(400, "InvalidRequestContent", f"The request content is not valid JSON: {error}")
        if _nested_deeper_than(document, MAX_JSON_DEPTH):
            raise too_deep
        return document

    @property
    def url(self) -> str:
        return self.origin + self.raw_path + (f"?{self.raw_query}" if self.raw_query else "")


class ServiceError(Exception):
    """An error answer. Each service renders it in its own shape (ARM JSON, Storage XML).

    `details` are the extra elements some Storage errors carry after the message (`MaxLimit`, `HeaderName`, ...).
    """

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None,
        details: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = dict(details or {})


@dataclass(frozen=True)
class BodyLimit:
    """The most bytes the body of one request may have, and what makes the error that answers a longer one (a new
    one each time: a raised exception keeps its traceback)."""

    max_bytes: int
    error: Callable[[], ServiceError]


Handler = Callable[[State, Call], Response]
ErrorRenderer = Callable[[ServiceError], Response]
BodyLimiter = Callable[[Call], BodyLimit]


def parse_query(raw_query: str) -> dict[str, str]:
    """Like the SDKs: split on `&`, keep blank values, last value wins; names and values percent-decoded."""
    query: dict[str, str] = {}
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            query[unquote(name)] = unquote(value)
    return query


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{pattern}/?$", re.IGNORECASE)


@dataclass(frozen=True)
class _Route:
    methods: frozenset[str]
    regex: re.Pattern[str]
    handler: Handler


class Router:
    """ARM routes: templates like `/subscriptions/{subscription}/resourcegroups/{resource_group}`.

    ARM mixes `resourcegroups`/`resourceGroups` and provider casings, so matching ignores case; parameters keep the
    caller's spelling.
    """

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(self, methods: str | Iterable[str], template: str, handler: Handler) -> None:
        names = {methods} if isinstance(methods, str) else set(methods)
        self._routes.append(_Route(frozenset(m.upper() for m in names), _template_regex(template), handler))

    def dispatch(self, state: State, call: Call) -> Response:
        path_matched = False
        for route in self._routes:
            match = route.regex.match(call.path)
            if match is None:
                continue
            path_matched = True
            if call.method in route.methods:
                params = {name: unquote(value) for name, value in match.groupdict().items()}
                return route.handler(state, replace(call, params=params))
        if path_matched:
            raise ServiceError(405, "MethodNotAllowed", f"The method {call.method} is not allowed on this resource.")
        raise ServiceError(404, "NotFound", f"No emulated resource or operation at {call.path}.")


class ServiceApp:
    """ASGI app of one service: builds the Call from the headers, authenticates, reads the body within the
    operation's bound, dispatches in the thread pool, renders errors."""

    def __init__(
        self,
        state: State,
        dispatch: Handler,
        render_error: ErrorRenderer,
        authenticate: Callable[[State, Call], None],
        body_limit: BodyLimiter,
    ):
        self.state = state
        self.dispatch = dispatch
        self.render_error = render_error
        self.authenticate = authenticate
        self.body_limit = body_limit

    async def __call__(self, scope, receive, send) -> None:
        call = _call_from_scope(scope, Headers(scope=scope), b"")
        if _has_body(call.headers):
            try:
                limit = await run_in_threadpool(self._admit, call)
                call = replace(call, body=await _read_body(receive, call.headers, limit))
            except ClientDisconnect:
                return  # the client gave up (a timeout, a delay rule): nobody to answer
            except Exception as error:
                response = self._failure(call, error)
            else:
                response = await run_in_threadpool(self._answer, call, False)
        else:
            response = await run_in_threadpool(self._answer, call, True)  # one trip to the thread pool
        response.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
        client_request_id = call.headers.get("x-ms-client-request-id")
        if client_request_id:
            response.headers["x-ms-client-request-id"] = client_request_id
        # An answer before all of the body was read (refused): the connection discards the rest, within bounds
        # (connections.py), so that the client can read the answer and the connection serve again.
        await response(scope, receive, send)

    def _admit(self, call: Call) -> BodyLimit:
        """Authentication from the headers alone, then the bound on this operation's body."""
        self.authenticate(self.state, call)
        return self.body_limit(call)

    def _answer(self, call: Call, authenticate: bool) -> Response:
        try:
            if authenticate:
                self.authenticate(self.state, call)
            return self.dispatch(self.state, call)
        except Exception as error:
            return self._failure(call, error)

    def _failure(self, call: Call, error: Exception) -> Response:
        if isinstance(error, ServiceError):
            return self.render_error(error)
        logger.error("emulator handler failed on %s %s", call.method, call.path, exc_info=error)
        return self.render_error(ServiceError(500, "InternalError", "The emulator failed on this request."))


def _has_body(headers: Headers) -> bool:
    declared = headers.get("content-length", "")  # h11 has refused malformed lengths and double framing
    return (declared.isdigit() and int(declared) > 0) or "chunked" in headers.get("transfer-encoding", "").lower()


async def _read_body(receive, headers: Headers, limit: BodyLimit) -> bytes:
    """The request body from the ASGI stream, refused (`limit.error`) as soon as it passes `limit.max_bytes`:
    from Content-Length before any of it is read, or while reading a chunked one. Never holds more."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit.max_bytes:
        raise limit.error()
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit.max_bytes:
            raise limit.error()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _nested_deeper_than(document: Any, limit: int) -> bool:
    """Whether arrays and objects nest deeper than `limit` (iteratively: deep input must not recurse)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _call_from_scope(scope, headers: Headers, body: bytes) -> Call:
    raw_path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
    raw_query = scope.get("query_string", b"").decode("latin-1")
    server_host, server_port = scope["server"]
    client = scope.get("client") or ("", 0)
    return Call(
        method=scope["method"].upper(),
        path=scope["path"],
        raw_path=raw_path,
        raw_query=raw_query,
        query=parse_query(raw_query),
        headers=headers,
        body=body,
        origin=f"{scope.get('scheme', 'https')}://{server_host}:{server_port}",
        client_host=client[0],
        operation_fault=scope.get(OPERATION_FAULT_SCOPE_KEY),
    )

