"""The data plane's routing: `/{account}/pools/...`, `/{account}/jobs/...`, matched segment by segment on the raw
path (a file path arrives as one percent-encoded segment, `wd%2Fout.txt`, or as several), literal segments without
case, parameters percent-decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from starlette.responses import Response

from batchai_spec.emulator.batch.dataplane.auth import account_segment
from batchai_spec.emulator.batch.dataplane.wire import BatchError, Request, check_api_version, render_error
from batchai_spec.emulator.batch.store import account_by_name
from batchai_spec.emulator.routing import BodyLimit, Call, ServiceError
from batchai_spec.emulator.state import State

# The service refuses request bodies over 1 MB (an addtaskcollection of 100 large tasks): 413 RequestBodyTooLarge,
# which azure-batch's create_tasks answers by halving its chunks.
MAX_BODY_BYTES = 1024 * 1024
_BODY_LIMIT = BodyLimit(
    MAX_BODY_BYTES,
    lambda: BatchError(413, "RequestBodyTooLarge", "The request body is too large and exceeds the maximum permissible"
                       " limit."),
)
Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    segments: tuple[str, ...]  # literals, `{name}` parameters, a final `**` for the rest of the path
    handler: Handler


class Routes:
    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        self._routes.append(Route(method, tuple(template.strip("/").split("/")), handler))

    def match(self, method: str, segments: list[str]) -> tuple[Handler, dict[str, str]]:
        path_matched = False
        for route in self._routes:
            params = _match(route.segments, segments)
            if params is None:
                continue
            path_matched = True
            if route.method == method:
                return route.handler, params
        if path_matched:
            raise BatchError(405, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb.")
        raise BatchError(400, "InvalidUri", "The requested URI does not represent any resource on the server.")


def _match(template: tuple[str, ...], segments: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for index, part in enumerate(template):
        if part == "**":
            rest = segments[index:]
            if not rest or not any(rest):
                return None
            params["path"] = "/".join(unquote(segment) for segment in rest)
            return params
        if index >= len(segments):
            return None
        if part.startswith("{"):
            value = unquote(segments[index])
            if not value:
                return None
            params[part[1:-1]] = value
        elif part.lower() != segments[index].lower():
            return None
    return params if len(template) == len(segments) else None


ROUTES = Routes()


def dispatch(state: State, call: Call) -> Response:
    name = account_segment(call.raw_path)
    account = account_by_name(state.connection(), name)
    base = f"{call.origin}/{account.name if account else name}"
    try:
        if account is None:  # authentication found it; it was deleted since
            raise BatchError(404, "AccountNotFound", f"The Batch account '{name}' does not exist.")
        check_api_version(call)
        segments = call.raw_path.lstrip("/").split("/")[1:]
        if segments and segments[-1] == "":
            segments.pop()
        handler, params = ROUTES.match(call.method, segments)
        response = handler(Request(state, call, account.name, base, params))
    except ServiceError as error:
        if not getattr(error, "base", ""):
            error.base = base  # type: ignore[attr-defined]
        response = render_error(error, base)
    if call.headers.get("return-client-request-id", "").lower() == "true" and call.headers.get("client-request-id"):
        response.headers["client-request-id"] = call.headers["client-request-id"]
    return response


def body_limit(call: Call) -> BodyLimit:
    return _BODY_LIMIT
