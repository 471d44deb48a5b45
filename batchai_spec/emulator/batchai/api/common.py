"""What every Batch AI handler does: check the call, find parents, answer with bodies, headers and LROs.

LROs follow reference §4.4: PUT workspace/experiment and PATCH answer 200 at once; PUT cluster/job/file server,
every DELETE and POST terminate answer 202 with `Azure-AsyncOperation` (operationresults) and `Location`
(operationstatuses) URLs on the emulator and `retry-after-ms` (never 201, never `Retry-After`).
"""

from __future__ import annotations

import sqlite3
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
from batchai_spec.emulator.routing import Call, ServiceError
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
