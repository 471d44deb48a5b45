"""Experiments: body-less PUT (200 at once), get, delete (with their jobs), list."""

from __future__ import annotations

from starlette.responses import Response

from batchai_spec.emulator.batchai import store
from batchai_spec.emulator.batchai.api.common import WorkspaceChild, live_parent, not_deleting, resource_response
from batchai_spec.emulator.batchai.views import experiment_view
from batchai_spec.emulator.clock import now
from batchai_spec.emulator.routing import Call, Router
from batchai_spec.emulator.state import State

EXPERIMENTS = WorkspaceChild(
    "experiment", "experiments", "experiment", "experiment", lambda state, experiment: experiment_view(experiment)
)


def add_routes(router: Router) -> None:
    EXPERIMENTS.add_routes(router)
    router.add("PUT", EXPERIMENTS.template, create)


def create(state: State, call: Call) -> Response:
    parent, resource_id = EXPERIMENTS.ids(state, call)
    with state.transaction() as db:
        live_parent(db, parent, "workspace", call.params["workspace"])
        experiment = store.get(db, resource_id, "experiment")
        if experiment is not None:
            not_deleting(experiment, "experiment")
        else:
            experiment = store.create(db, "experiment", resource_id, parent, {}, now())
    return resource_response(experiment_view(experiment), experiment)
