"""What every Batch AI handler does: check the call, find parents, answer with bodies, headers and LROs.

LROs follow reference §4.4: PUT workspace/experiment and PATCH answer 200 at once; PUT cluster/job/file server,
every DELETE and POST terminate answer 202 with `Azure-AsyncOperation` (operationresults) and `Location`
(operationstatuses) URLs on the emulator and `retry-after-ms` (never 201, never `Retry-After`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError
from starlette.responses import Response

from batchai_spec.emulator.arm.bodies import json_object
from batchai_spec.emulator.arm.resource_groups import require_group
from batchai_spec.emulator.arm.responses import arm_empty, arm_json, require_subscription
from batchai_spec.emulator.batchai import ids, store
from batchai_spec.emulator.batchai.deletion import mark_deleting
from batchai_spec.emulator.batchai.errors import conflict, from_validation, not_found
from batchai_spec.emulator.batchai.models import WireModel
from batchai_spec.emulator.batchai.paging import page
from batchai_spec.emulator.batchai.service import wake
from batchai_spec.emulator.batchai.store import Resource
from batchai_spec.emulator.clock import now, rfc1123
from batchai_spec.emulator.lro import Operation, OperationEndpoints, start_operation
from batchai_spec.emulator.routing import Call, Router, ServiceError
from batchai_spec.emulator.state import State

API_VERSION = "2018-05-01"
PROVIDER = "/subscriptions/{subscription}/providers/Microsoft.BatchAI"
GROUP = "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.BatchAI"
WORKSPACES = GROUP + "/workspaces"
WORKSPACE = WORKSPACES + "/{workspace}"
EXPERIMENT = WORKSPACE + "/experiments/{experiment}"
OPERATIONS = OperationEndpoints(PROVIDER + "/locations/{location}", api_version=API_VERSION)

Model = TypeVar("Model", bound=WireModel)


def check_call(state: State, call: Call) -> None:
    """Subscription and api-version (every Batch AI request carries 2018-05-01, next links included)."""
    require_subscription(state, call.params["subscription"])
    version = call.query.get("api-version")
    if version is None:
        raise ServiceError(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
    if version != API_VERSION:
        raise ServiceError(
            400, "InvalidApiVersionParameter",
            f"The api-version '{version}' is not supported by Microsoft.BatchAI in the emulator; use {API_VERSION}.",
        )


def check_group(state: State, call: Call) -> None:
    check_call(state, call)
    require_group(state, call.params["resource_group"])


def workspace_id(state: State, call: Call) -> str:
    check_group(state, call)
    ids.check_name("workspace", call.params["workspace"])
    return ids.workspace_id(call.params["subscription"], call.params["resource_group"], call.params["workspace"])


def existing(db: sqlite3.Connection, resource_id: str, kind: str, name: str) -> Resource:
    resource = store.get(db, resource_id, kind)
    if resource is None:
        raise not_found(kind, name)
    return resource


def live_parent(db: sqlite3.Connection, resource_id: str, kind: str, name: str) -> Resource:
    """The parent a new child goes into: it must exist and not be on its way out."""
    parent = existing(db, resource_id, kind, name)
    if parent.status.get("provisioningState") == "deleting":
        raise conflict(f"The {kind} {name} is being deleted; nothing can be created in it.")
    return parent


def parse(model: type[Model], call: Call) -> Model:
    try:
        return model.model_validate(json_object(call.json()))
    except ValidationError as error:
        raise from_validation(error) from None


def resource_response(view: dict[str, Any], resource: Resource) -> Response:
    """A single resource with the ETag and Last-Modified the service sent (they change on PUT/PATCH only)."""
    return arm_json(view, 200, {"ETag": resource.etag, "Last-Modified": rfc1123(resource.modified_at)})


def location_of(workspace: Resource) -> str:
    return workspace.body["location"].replace(" ", "").lower()


def operation_started(state: State, call: Call, names: tuple[str, ...], *, done: bool,
                      result: Any | None = None) -> Operation:
    properties = {"resourceId": ids.operation_resource_id(state.subscription_id, call.params["resource_group"], *names)}
    return start_operation(state, call, done=done, result=result, properties=properties)


def accepted(state: State, call: Call, operation: Operation, location: str) -> Response:
    return OPERATIONS.accepted(state, operation, subscription=call.params["subscription"], location=location)


def not_deleting(resource: Resource, label: str) -> None:
    if resource.status.get("provisioningState") == "deleting":
        raise conflict(f"The {label} {resource.name} is being deleted.")


def same_body(resource: Resource, body: dict[str, Any], label: str) -> None:
    """A PUT over an existing immutable resource: the same body is a no-op, any difference is a conflict."""
    not_deleting(resource, label)
    if resource.body != body:
        raise conflict(
            f"The {label} {resource.name} already exists with different properties, and a {label} cannot be"
            " changed; delete it first or use another name."
        )


def delete(state: State, call: Call, resource_id: str, kind: str, workspace_key: str,
           names: tuple[str, ...]) -> Response:
    """DELETE of any Batch AI resource: 202 + operation that ends when the scheduler has removed it (and what it
    contains); 204 when there is nothing to delete."""
    with state.transaction() as db:
        resource = store.get(db, resource_id, kind)
        workspace = store.get(db, workspace_key, "workspace")
        if resource is None or workspace is None:
            return arm_empty(204)
        operation = operation_started(state, call, names, done=False)
        if call.operation_fault is None:
            mark_deleting(db, resource, now(), operation.id)
    wake(state)
    return accepted(state, call, operation, location_of(workspace))


def listed(call: Call, views: list[dict[str, Any]]) -> Response:
    return arm_json(page(call, views))


@dataclass(frozen=True)
class WorkspaceChild:
    """The common requests of one kind of workspace child (clusters, experiments, file servers)."""

    kind: str  # store kind, e.g. "fileserver"
    segment: str  # its collection in the URL, e.g. "fileServers"
    param: str  # its name's route parameter, e.g. "file_server"
    label: str  # for messages, e.g. "file server"
    render: Callable[[State, Resource], dict[str, Any]]

    @property
    def template(self) -> str:
        return f"{WORKSPACE}/{self.segment}/{{{self.param}}}"

    def add_routes(self, router: Router) -> None:
        router.add("GET", f"{WORKSPACE}/{self.segment}", self.list)
        router.add("GET", self.template, self.get)
        router.add("DELETE", self.template, self.remove)

    def ids(self, state: State, call: Call) -> tuple[str, str]:
        """(workspace id, resource id) of the call's path."""
        parent = workspace_id(state, call)
        ids.check_name(self.label, call.params[self.param])
        return parent, ids.child_id(parent, self.kind, call.params[self.param])

    def find(self, state: State, call: Call) -> Resource:
        parent, resource_id = self.ids(state, call)
        connection = state.connection()
        existing(connection, parent, "workspace", call.params["workspace"])
        return existing(connection, resource_id, self.kind, call.params[self.param])

    def get(self, state: State, call: Call) -> Response:
        resource = self.find(state, call)
        return resource_response(self.render(state, resource), resource)

    def remove(self, state: State, call: Call) -> Response:
        parent, resource_id = self.ids(state, call)
        return delete(state, call, resource_id, self.kind, parent, (call.params["workspace"], call.params[self.param]))

    def create_async(self, state: State, call: Call, request: dict[str, Any],
                     build: Callable[[sqlite3.Connection, str, str], Resource]) -> Response:
        """PUT answered 202 with an operation that has already succeeded: `build(db, parent id, resource id)`
        makes the resource; the same body again is a no-op, a different one a 409."""
        parent, resource_id = self.ids(state, call)
        with state.transaction() as db:
            workspace = live_parent(db, parent, "workspace", call.params["workspace"])
            resource = store.get(db, resource_id, self.kind)
            if resource is not None:
                same_body(resource, request, self.label)
            elif call.operation_fault is None:
                resource = build(db, parent, resource_id)
            result = self.render(state, resource) if resource is not None else None
            names = (call.params["workspace"], call.params[self.param])
            operation = operation_started(state, call, names, done=True, result=result)
        wake(state)
        return accepted(state, call, operation, location_of(workspace))

    def list(self, state: State, call: Call) -> Response:
        parent = workspace_id(state, call)
        connection = state.connection()
        existing(connection, parent, "workspace", call.params["workspace"])
        children = store.children(connection, ids.key(parent), self.kind)
        return listed(call, [self.render(state, child) for child in children])
