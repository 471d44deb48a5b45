"""Fault injection: rules that make matching requests fail the way real Azure sometimes does.

A rule matches a service (`arm`, `storage`, `batch` (the Batch data plane) or `any`), an HTTP method (or `*`) and a
regular expression searched in the percent-decoded path, for `count` requests (None: until cleared). Actions:
- `status`: answer `status` (429, 500, 503, ...) in the service's error shape; 429 also gets `Retry-After`.
- `drop`: close the connection without any answer.
- `delay`: wait `delay_s` seconds, then serve the request normally.
- `fail_operation`: serve the request, but the long-running operation it starts ends Failed with `code`/`message`.
Rules live in memory (matching is on every request) and in SQLite, so they survive a restart like everything else.
Admin paths (`/_emulator/...`) are never faulted.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass, field

import anyio

from batchai_spec.emulator.connections import OpenConnections
from batchai_spec.emulator.routing import OPERATION_FAULT_SCOPE_KEY, OperationFault, ServiceError
from batchai_spec.emulator.state import State, register_schema

ACTIONS = ("status", "drop", "delay", "fail_operation")
SERVICES = ("arm", "storage", "batch", "any")
ADMIN_PREFIX = "/_emulator/"

register_schema("CREATE TABLE IF NOT EXISTS emulator_faults (id INTEGER PRIMARY KEY, rule TEXT NOT NULL)")


@dataclass
class FaultRule:
    path: str
    action: str
    method: str = "*"
    service: str = "any"
    count: int | None = 1
    status: int = 503
    retry_after: int = 1
    delay_s: float = 1.0
    code: str = "InjectedFault"
    message: str = "Injected by an emulator fault rule."
    id: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
        if self.service not in SERVICES:
            raise ValueError(f"service must be one of {', '.join(SERVICES)}")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1 (or null for no limit)")
        if self.action == "status" and not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        self.method = self.method.upper()
        self._pattern = re.compile(self.path)

    def matches(self, service: str, method: str, path: str) -> bool:
        return (
            self.service in ("any", service)
            and self.method in ("*", method)
            and self._pattern is not None
            and self._pattern.search(path) is not None
        )

    def to_json(self) -> dict:
        document = asdict(self)
        document.pop("_pattern")
        return document


class FaultBook:
    """The active rules, shared by both services of one emulator."""

    def __init__(self, state: State):
        self._state = state
        self._lock = threading.Lock()
        rows = state.connection().execute("SELECT id, rule FROM emulator_faults ORDER BY id").fetchall()
        self._rules = [FaultRule(**{**json.loads(row["rule"]), "id": row["id"]}) for row in rows]

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock, self._state.transaction() as db:
            document = rule.to_json()
            document.pop("id")
            rule.id = db.execute("INSERT INTO emulator_faults (rule) VALUES (?)", (json.dumps(document),)).lastrowid
            self._rules.append(rule)
        return rule

    def list(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def clear(self) -> None:
        with self._lock, self._state.transaction() as db:
            db.execute("DELETE FROM emulator_faults")
            self._rules.clear()

    def take(self, service: str, method: str, path: str) -> FaultRule | None:
        """The first matching rule, counting this use (a rule whose count runs out is removed)."""
        if path.startswith(ADMIN_PREFIX):
            return None
        with self._lock:
            for rule in self._rules:
                if rule.matches(service, method, path):
                    if rule.count is not None:
                        rule.count -= 1
                        self._persist_use(rule)
                    return rule
        return None

    def _persist_use(self, rule: FaultRule) -> None:
        with self._state.transaction() as db:
            if rule.count == 0:
                self._rules.remove(rule)
                db.execute("DELETE FROM emulator_faults WHERE id = ?", (rule.id,))
            else:
                document = rule.to_json()
                document.pop("id")
                db.execute("UPDATE emulator_faults SET rule = ? WHERE id = ?", (json.dumps(document), rule.id))


class FaultInjector:
    """ASGI middleware in front of one service."""

    def __init__(self, app, book: FaultBook, service: str, connections: OpenConnections, render_error):
        self.app = app
        self.book = book
        self.service = service
        self.connections = connections
        self.render_error = render_error

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.book.take(self.service, scope["method"].upper(), scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
        elif rule.action == "delay":
            await anyio.sleep(rule.delay_s)
            await self.app(scope, receive, send)
        elif rule.action == "fail_operation":
            scope[OPERATION_FAULT_SCOPE_KEY] = OperationFault(rule.code, rule.message)
            await self.app(scope, receive, send)
        elif rule.action == "drop":
            self.connections.abort(scope.get("client"))
            await _wait_for_disconnect(receive)
        else:
            await _drain(receive)
            headers = {"Retry-After": str(rule.retry_after)} if rule.status == 429 else {}
            response = self.render_error(ServiceError(rule.status, rule.code, rule.message, headers))
            await response(scope, receive, send)


async def _drain(receive) -> None:
    more = True
    while more:
        message = await receive()
        more = message["type"] == "http.request" and message.get("more_body", False)


async def _wait_for_disconnect(receive) -> None:
    """Returning before uvicorn notices the abort would make it answer 500 on the dead socket."""
    while (await receive())["type"] != "http.disconnect":
        pass
