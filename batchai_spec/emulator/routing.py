"""Requests in, responses out: the `Call` handlers receive, errors they raise, and the ARM route table.

Handlers are plain synchronous functions `handler(state, call) -> starlette Response`. The ASGI layer reads the
whole body first (an unread body left on a keep-alive socket corrupts the next request), then runs the handler in
the thread pool, so handlers may block on SQLite and the disk.
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
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from batchai_spec.emulator.state import State

logger = logging.getLogger("batchai_spec.emulator")

# The ASGI scope key under which the fault injector asks the next LRO to fail (see faults.py and lro.py).
OPERATION_FAULT_SCOPE_KEY = "batchai_spec.operation_fault"


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
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise ServiceError(400, "InvalidRequestContent", f"The request content is not valid JSON: {error}")

    @property
    def url(self) -> str:
        return self.origin + self.raw_path + (f"?{self.raw_query}" if self.raw_query else "")


class ServiceError(Exception):
    """An error answer. Each service renders it in its own shape (ARM JSON, Storage XML)."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


Handler = Callable[[State, Call], Response]
ErrorRenderer = Callable[[ServiceError], Response]


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
    """ASGI app of one service: builds the Call, authenticates, dispatches in the thread pool, renders errors."""

    def __init__(
        self,
        state: State,
        dispatch: Handler,
        render_error: ErrorRenderer,
        authenticate: Callable[[State, Call], None],
    ):
        self.state = state
        self.dispatch = dispatch
        self.render_error = render_error
        self.authenticate = authenticate

    async def __call__(self, scope, receive, send) -> None:
        request = Request(scope, receive)
        try:
            body = await request.body()
        except ClientDisconnect:
            return  # the client gave up (a timeout, a delay rule): nobody to answer

        call = _call_from_scope(scope, request, body)
        response = await run_in_threadpool(self._answer, call)
        response.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
        client_request_id = call.headers.get("x-ms-client-request-id")
        if client_request_id:
            response.headers["x-ms-client-request-id"] = client_request_id
        await response(scope, receive, send)

    def _answer(self, call: Call) -> Response:
        try:
            self.authenticate(self.state, call)
            return self.dispatch(self.state, call)
        except ServiceError as error:
            return self.render_error(error)
        except Exception:
            logger.exception("emulator handler failed on %s %s", call.method, call.path)
            return self.render_error(ServiceError(500, "InternalError", "The emulator failed on this request."))


def _call_from_scope(scope, request: Request, body: bytes) -> Call:
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
        headers=request.headers,
        body=body,
        origin=f"{scope.get('scheme', 'https')}://{server_host}:{server_port}",
        client_host=client[0],
        operation_fault=scope.get(OPERATION_FAULT_SCOPE_KEY),
    )

