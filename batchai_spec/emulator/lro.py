"""ARM long-running operations: records in SQLite, the 202 that starts them, and the two kinds of status URL.

- The `Azure-AsyncOperation` URL (status document) answers 200 with `{"id","name","status","startTime",...}` in every
  state; a failed operation carries `error{code,message}` (the SDK raises HttpResponseError with that error).
- The `Location` URL answers 202 while the operation runs, then 200 with the result JSON (or an empty body), or a
  400 with the ARM error body when it failed (the Location strategy ignores bodies of 2xx answers).

Every answer carries `retry-after-ms` (never `Retry-After`, which mgmt-resource 26 parses as an int) so that the
SDK's polls are 100 ms apart whatever `polling_interval` the client chose.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from batchai_spec.emulator.arm.responses import arm_empty, arm_json, require_subscription
from batchai_spec.emulator.clock import iso8601, now
from batchai_spec.emulator.routing import Call, OperationFault, Router, ServiceError
from batchai_spec.emulator.state import State, register_schema

POLL_DELAY_MS = 100
TERMINAL_STATES = ("Succeeded", "Failed", "Canceled")

register_schema(
    """
    CREATE TABLE IF NOT EXISTS arm_operations (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        error_code TEXT,
        error_message TEXT,
        result TEXT,
        properties TEXT,
        pending_polls INTEGER NOT NULL DEFAULT 0
    )
    """
)


@dataclass(frozen=True)
class Operation:
    id: str
    status: str
    started_at: float
    ended_at: float | None
    error: OperationFault | None
    result: Any | None
    properties: Any | None
    pending_polls: int

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATES


def start_operation(
    state: State,
    call: Call,
    *,
    done: bool = True,
    result: Any | None = None,
    properties: Any | None = None,
    pending_polls: int = 0,
) -> Operation:
    """Record an operation started by `call`.

    `done=True`: the work already happened; the operation reports Succeeded (after `pending_polls` polls that
    still say InProgress). `done=False`: it stays InProgress until `finish_operation`. A `fail_operation` fault
    rule on `call` makes it Failed regardless: handlers check `call.operation_fault` first and skip the work.
    `result` is what the Location URL returns at the end (the resource JSON for a PUT).
    """
    fault = call.operation_fault
    status = "Failed" if fault else ("Succeeded" if done else "InProgress")
    started = now()
    operation_id = str(uuid.uuid4())
    with state.transaction() as db:
        db.execute(
            "INSERT INTO arm_operations (id, status, started_at, ended_at, error_code, error_message, result,"
            " properties, pending_polls) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                operation_id, status, started, started if status != "InProgress" else None,
                fault.code if fault else None, fault.message if fault else None,
                _dump(result), _dump(properties), pending_polls,
            ),
        )
    return get_operation(state, operation_id)


def finish_operation(
    state: State, operation_id: str, *, error: OperationFault | None = None, result: Any | None = None
) -> None:
    """End a running operation: Succeeded, or Failed with `error`. Finished operations stay as they are."""
    with state.transaction() as db:
        db.execute(
            "UPDATE arm_operations SET status = ?, ended_at = ?, error_code = ?, error_message = ?,"
            " result = COALESCE(?, result) WHERE id = ? AND status = 'InProgress'",
            (
                "Failed" if error else "Succeeded", now(), error.code if error else None,
                error.message if error else None, _dump(result), operation_id,
            ),
        )


def get_operation(state: State, operation_id: str) -> Operation | None:
    row = state.connection().execute("SELECT * FROM arm_operations WHERE id = ?", (operation_id,)).fetchone()
    if row is None:
        return None
    return Operation(
        id=row["id"],
        status=row["status"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        error=OperationFault(row["error_code"], row["error_message"]) if row["error_code"] else None,
        result=json.loads(row["result"]) if row["result"] else None,
        properties=json.loads(row["properties"]) if row["properties"] else None,
        pending_polls=row["pending_polls"],
    )


@dataclass(frozen=True)
class OperationEndpoints:
    """The status URLs of one family of operations, e.g. Batch AI's
    `OperationEndpoints("/subscriptions/{subscription}/providers/Microsoft.BatchAI/locations/{location}")`.

    `status_segment` names the Azure-AsyncOperation (status document) URL, `location_segment` the Location URL;
    set either to None to leave that header out. The prefix is a route template whose values `accepted` fills in.
    """

    prefix: str
    status_segment: str | None = "operationresults"
    location_segment: str | None = "operationstatuses"
    api_version: str = "2018-05-01"

    def add_routes(self, router: Router) -> None:
        if self.status_segment:
            router.add("GET", f"{self.prefix}/{self.status_segment}/{{operation_id}}", self._status_document)
        if self.location_segment:
            router.add("GET", f"{self.prefix}/{self.location_segment}/{{operation_id}}", self._location)

    def accepted(self, state: State, operation: Operation, *, operation_name: str | None = None,
                 api_version: str | None = None, **prefix_values: str) -> Response:
        """The 202 that starts polling (empty body, status URLs absolute on the emulator's origin).

        `operation_name`: the URL's last segment when it is not the bare operation id; it must end with `-{id}`
        (Batch names account deletions `{account}-{uuid}`). `api_version`: the URLs' api-version when it is not
        the family's (Microsoft.Batch echoes the caller's)."""
        headers = {"retry-after-ms": str(POLL_DELAY_MS)}
        base = state.arm_url + self.prefix.format(**prefix_values)
        name = operation_name or operation.id
        if self.status_segment:
            headers["Azure-AsyncOperation"] = self._url(base, self.status_segment, name, api_version)
        if self.location_segment:
            headers["Location"] = self._url(base, self.location_segment, name, api_version)
        return arm_empty(202, headers)

    def _url(self, base: str, segment: str, operation_id: str, api_version: str | None = None) -> str:
        return f"{base}/{segment}/{operation_id}?api-version={api_version or self.api_version}"

    def _status_document(self, state: State, call: Call) -> Response:
        operation = _poll(state, call)
        document: dict[str, Any] = {
            "id": call.origin + call.raw_path,
            "name": operation.id,
            "status": operation.status,
            "startTime": iso8601(operation.started_at),
        }
        if not operation.finished:
            return arm_json(document, 200, {"retry-after-ms": str(POLL_DELAY_MS)})
        document["endTime"] = iso8601(operation.ended_at or operation.started_at)
        if operation.error:
            document["error"] = {"code": operation.error.code, "message": operation.error.message}
        if operation.properties is not None:
            document["properties"] = operation.properties
        return arm_json(document)

    def _location(self, state: State, call: Call) -> Response:
        operation = _poll(state, call)
        if not operation.finished:
            return arm_empty(202, {"Location": call.url, "retry-after-ms": str(POLL_DELAY_MS)})
        if operation.error:
            return arm_json({"error": {"code": operation.error.code, "message": operation.error.message}}, 400)
        if operation.result is None:
            return arm_empty(200)
        return arm_json(operation.result)


def _poll(state: State, call: Call) -> Operation:
    """The operation as this poll sees it: finished ones report InProgress for their remaining `pending_polls`."""
    if "subscription" in call.params:
        require_subscription(state, call.params["subscription"])
    operation_id = _operation_id(call.params["operation_id"])
    with state.transaction() as db:
        updated = db.execute(
            "UPDATE arm_operations SET pending_polls = pending_polls - 1 WHERE id = ? AND pending_polls > 0"
            " AND status != 'InProgress'",
            (operation_id,),
        ).rowcount
    operation = get_operation(state, operation_id)
    if operation is None:
        raise ServiceError(404, "OperationNotFound", f"The operation '{operation_id}' was not found.")
    if updated:
        return Operation(
            id=operation.id, status="InProgress", started_at=operation.started_at, ended_at=None, error=None,
            result=None, properties=None, pending_polls=operation.pending_polls,
        )
    return operation


def _operation_id(name: str) -> str:
    """The operation id in a status URL's last segment: the segment itself, or its trailing uuid when a prefix
    names what the operation acts on (`{account}-{uuid}`, see `OperationEndpoints.accepted`)."""
    if len(name) > _UUID_LENGTH and name[-_UUID_LENGTH - 1] == "-":
        return name[-_UUID_LENGTH:]
    return name


_UUID_LENGTH = 36


def _dump(value: Any | None) -> str | None:
    return None if value is None else json.dumps(value)
