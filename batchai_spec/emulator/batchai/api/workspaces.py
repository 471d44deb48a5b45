"""Workspaces: the tracked resource (location, tags) that holds clusters, file servers and experiments."""

from __future__ import annotations

from starlette.responses import Response

from batchai_spec.emulator.arm.bodies import same_location
from batchai_spec.emulator.batchai import ids, store
from batchai_spec.emulator.batchai.api.common import (
    PROVIDER, WORKSPACE, WORKSPACES, check_call, check_group, delete, existing, listed, parse, resource_response,
    workspace_id,
)
from batchai_spec.emulator.batchai.errors import conflict
from batchai_spec.emulator.batchai.models import WorkspaceCreate, WorkspaceUpdate
from batchai_spec.emulator.batchai.views import workspace_view
from batchai_spec.emulator.clock import now
from batchai_spec.emulator.routing import Call, Router
from batchai_spec.emulator.state import State


def add_routes(router: Router) -> None:
    router.add("GET", PROVIDER + "/workspaces", list_all)
    router.add("GET", WORKSPACES, list_in_group)
    router.add("PUT", WORKSPACE, create)
    router.add("GET", WORKSPACE, get)
    router.add("PATCH", WORKSPACE, update)
    router.add("DELETE", WORKSPACE, remove)


def create(state: State, call: Call) -> Response:
    """200 with the workspace at once (REC); a PUT on an existing one may change its tags, not its location."""
    resource_id = workspace_id(state, call)
    request = parse(WorkspaceCreate, call).dump()
    moment = now()
    with state.transaction() as db:
        workspace = store.get(db, resource_id, "workspace")
        if workspace is None:
            group = ids.resource_group_id(call.params["subscription"], call.params["resource_group"])
            workspace = store.create(db, "workspace", resource_id, group, request, moment)
        else:
            if workspace.status["provisioningState"] == "deleting":
                raise conflict(f"The workspace {workspace.name} is being deleted.")
            if not same_location(workspace.body["location"], request["location"]):
                raise conflict(
                    f"The workspace {workspace.name} exists in location {workspace.body['location']}; a workspace"
                    " cannot move."
                )
            if workspace.body.get("tags") != request.get("tags"):
                workspace.body["tags"] = request.get("tags")
                store.touch(workspace, moment)
                store.save(db, workspace)
    return resource_response(workspace_view(workspace), workspace)


def get(state: State, call: Call) -> Response:
    resource_id = workspace_id(state, call)
    workspace = existing(state.connection(), resource_id, "workspace", call.params["workspace"])
    return resource_response(workspace_view(workspace), workspace)


def update(state: State, call: Call) -> Response:
    """PATCH replaces the tags (ARM convention) and answers 200 (SDK7 accepts nothing else)."""
    resource_id = workspace_id(state, call)
    request = parse(WorkspaceUpdate, call)
    with state.transaction() as db:
        workspace = existing(db, resource_id, "workspace", call.params["workspace"])
        if request.tags is not None:
            workspace.body["tags"] = request.tags
            store.touch(workspace, now())
            store.save(db, workspace)
    return resource_response(workspace_view(workspace), workspace)


def remove(state: State, call: Call) -> Response:
    resource_id = workspace_id(state, call)
    return delete(state, call, resource_id, "workspace", resource_id, (call.params["workspace"],))


def list_in_group(state: State, call: Call) -> Response:
    check_group(state, call)
    parent = ids.key(ids.resource_group_id(call.params["subscription"], call.params["resource_group"]))
    return listed(call, [workspace_view(item) for item in store.children(state.connection(), parent, "workspace")])


def list_all(state: State, call: Call) -> Response:
    check_call(state, call)
    return listed(call, [workspace_view(item) for item in store.of_kind(state.connection(), "workspace")])
