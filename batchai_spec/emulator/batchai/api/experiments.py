"""Experiments: body-less PUT (200 at once), get, delete (with their jobs), list."""

from __future__ import annotations

from starlette.responses import Response

from batchai_spec.emulator.batchai import ids, store
from batchai_spec.emulator.batchai.api.common import (
    EXPERIMENT, WORKSPACE, delete, existing, listed, live_parent, not_deleting, resource_response, workspace_id,
)
from batchai_spec.emulator.batchai.store import Resource
from batchai_spec.emulator.batchai.times import iso_millis
from batchai_spec.emulator.batchai.views import experiment_view
from batchai_spec.emulator.clock import now
from batchai_spec.emulator.routing import Call, Router
from batchai_spec.emulator.state import State


def add_routes(router: Router) -> None:
    router.add("GET", WORKSPACE + "/experiments", list_in_workspace)
    router.add("PUT", EXPERIMENT, create)
    router.add("GET", EXPERIMENT, get)
    router.add("DELETE", EXPERIMENT, remove)


def experiment_id(state: State, call: Call) -> tuple[str, str]:
    """(workspace id, experiment id) of the call's path."""
    parent = workspace_id(state, call)
    ids.check_name("experiment", call.params["experiment"])
    return parent, ids.child_id(parent, "experiment", call.params["experiment"])


def create(state: State, call: Call) -> Response:
    parent, resource_id = experiment_id(state, call)
    moment = now()
    with state.transaction() as db:
        live_parent(db, parent, "workspace", call.params["workspace"])
        experiment = store.get(db, resource_id, "experiment")
        if experiment is not None:
            not_deleting(experiment, "experiment")
        else:
            experiment = store.insert(db, Resource(
                key=ids.key(resource_id), kind="experiment", parent_key=ids.key(parent), id=resource_id,
                name=call.params["experiment"], body={},
                status={"provisioningState": "succeeded", "provisioningStateTransitionTime": iso_millis(moment),
                        "creationTime": iso_millis(moment)},
                runtime={}, etag=store.new_etag(), modified_at=moment,
            ))
    return resource_response(experiment_view(experiment), experiment)


def get(state: State, call: Call) -> Response:
    parent, resource_id = experiment_id(state, call)
    connection = state.connection()
    existing(connection, parent, "workspace", call.params["workspace"])
    experiment = existing(connection, resource_id, "experiment", call.params["experiment"])
    return resource_response(experiment_view(experiment), experiment)


def remove(state: State, call: Call) -> Response:
    parent, resource_id = experiment_id(state, call)
    names = (call.params["workspace"], call.params["experiment"])
    return delete(state, call, resource_id, "experiment", parent, names)


def list_in_workspace(state: State, call: Call) -> Response:
    parent = workspace_id(state, call)
    connection = state.connection()
    existing(connection, parent, "workspace", call.params["workspace"])
    children = store.children(connection, ids.key(parent), "experiment")
    return listed(call, [experiment_view(item) for item in children])
