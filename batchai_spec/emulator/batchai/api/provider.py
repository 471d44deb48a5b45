"""Provider-wide reads: the operation list and the usages (quota) of a region."""

from __future__ import annotations

from starlette.responses import Response

from batchai_spec.emulator.arm.bodies import same_location
from batchai_spec.emulator.batchai import catalog, store, vm_sizes
from batchai_spec.emulator.batchai.api.common import PROVIDER, check_call, listed
from batchai_spec.emulator.batchai.errors import invalid
from batchai_spec.emulator.routing import Call, Router, ServiceError
from batchai_spec.emulator.state import State


def add_routes(router: Router) -> None:
    router.add("GET", "/providers/Microsoft.BatchAI/operations", operations)
    router.add("GET", PROVIDER + "/locations/{location}/usages", usages)


def operations(state: State, call: Call) -> Response:
    if call.query.get("api-version") is None:
        raise ServiceError(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
    return listed(call, catalog.operations())


def usages(state: State, call: Call) -> Response:
    check_call(state, call)
    location = call.params["location"]
    if not location.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise invalid("location", "expected a region name such as eastus")
    connection = state.connection()
    regional = {
        workspace.key for workspace in store.of_kind(connection, "workspace")
        if same_location(workspace.body["location"], location)
    }
    clusters = [cluster for cluster in store.of_kind(connection, "cluster") if cluster.parent_key in regional]
    cores: dict[tuple[str, str], int] = {}
    for cluster in clusters:
        size = vm_sizes.lookup(cluster.properties["vmSize"])
        slot = (cluster.properties["vmPriority"], size.family)
        cores[slot] = cores.get(slot, 0) + size.cores * len(store.nodes(connection, cluster.key))
    return listed(call, catalog.usages(len(clusters), cores))
