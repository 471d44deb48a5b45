"""Clusters: create (LRO), get, update scale settings (200), delete (LRO, waits for the nodes), list,
listRemoteLoginInformation (POST first page, GET for next pages)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from batchai_spec.emulator.batchai import ids, store, vm_sizes
from batchai_spec.emulator.batchai.api.common import (
    WORKSPACE, accepted, delete, existing, listed, live_parent, location_of, operation_started, parse,
    resource_response, same_body, workspace_id,
)
from batchai_spec.emulator.batchai.errors import conflict, invalid
from batchai_spec.emulator.batchai.lifecycle import new_setup_output_suffix
from batchai_spec.emulator.batchai.models import ClusterCreate, ClusterUpdate
from batchai_spec.emulator.batchai.mounts import MountError, parse_azure_file_url
from batchai_spec.emulator.batchai.service import wake
from batchai_spec.emulator.batchai.store import Resource
from batchai_spec.emulator.batchai.times import iso_millis
from batchai_spec.emulator.batchai.views import cluster_view
from batchai_spec.emulator.clock import now
from batchai_spec.emulator.routing import Call, Router
from batchai_spec.emulator.state import State

CLUSTER = WORKSPACE + "/clusters/{cluster}"
FIRST_LOGIN_PORT = 50000


def add_routes(router: Router) -> None:
    router.add("GET", WORKSPACE + "/clusters", list_in_workspace)
    router.add("PUT", CLUSTER, create)
    router.add("GET", CLUSTER, get)
    router.add("PATCH", CLUSTER, update)
    router.add("DELETE", CLUSTER, remove)
    router.add(("POST", "GET"), CLUSTER + "/listRemoteLoginInformation", remote_login_information)


def cluster_id(state: State, call: Call) -> tuple[str, str]:
    parent = workspace_id(state, call)
    ids.check_name("cluster", call.params["cluster"])
    return parent, ids.child_id(parent, "cluster", call.params["cluster"])


def check_mount_urls(volumes: dict[str, Any] | None, path: str) -> None:
    for index, share in enumerate((volumes or {}).get("azureFileShares") or []):
        try:
            parse_azure_file_url(share["azureFileUrl"])
        except MountError as error:
            raise invalid(f"{path}.azureFileShares[{index}].azureFileUrl", str(error)) from None


def render(state: State, cluster: Resource) -> dict[str, Any]:
    return cluster_view(cluster, store.nodes(state.connection(), cluster.key))


def create(state: State, call: Call) -> Response:
    parent, resource_id = cluster_id(state, call)
    request = parse(ClusterCreate, call).dump()
    properties = request["properties"]
    refusal = vm_sizes.refusal_reason(properties["vmSize"])
    if refusal:
        raise invalid("properties.vmSize", refusal)
    check_mount_urls((properties.get("nodeSetup") or {}).get("mountVolumes"), "properties.nodeSetup.mountVolumes")
    moment = now()
    with state.transaction() as db:
        workspace = live_parent(db, parent, "workspace", call.params["workspace"])
        cluster = store.get(db, resource_id, "cluster")
        if cluster is not None:
            same_body(cluster, request, "cluster")
        elif call.operation_fault is None:
            runtime: dict[str, Any] = {}
            if (properties.get("nodeSetup") or {}).get("setupTask"):
                runtime["setupOutputSuffix"] = new_setup_output_suffix(
                    call.params["subscription"], call.params["resource_group"], call.params["workspace"],
                    call.params["cluster"],
                )
            cluster = store.insert(db, Resource(
                key=ids.key(resource_id), kind="cluster", parent_key=ids.key(parent), id=resource_id,
                name=call.params["cluster"], body=request,
                status={
                    "provisioningState": "succeeded", "provisioningStateTransitionTime": iso_millis(moment),
                    "creationTime": iso_millis(moment), "allocationState": "steady",
                    "allocationStateTransitionTime": iso_millis(moment),
                },
                runtime=runtime, etag=store.new_etag(), modified_at=moment,
            ))
        result = render(state, cluster) if cluster is not None else None
        operation = operation_started(
            state, call, (call.params["workspace"], call.params["cluster"]), done=True, result=result
        )
    wake(state)
    return accepted(state, call, operation, location_of(workspace))


def get(state: State, call: Call) -> Response:
    parent, resource_id = cluster_id(state, call)
    connection = state.connection()
    existing(connection, parent, "workspace", call.params["workspace"])
    cluster = existing(connection, resource_id, "cluster", call.params["cluster"])
    return resource_response(render(state, cluster), cluster)


def update(state: State, call: Call) -> Response:
    """New scale settings take effect at the scheduler's next step; the answer still shows the old allocation."""
    parent, resource_id = cluster_id(state, call)
    request = parse(ClusterUpdate, call).dump()
    with state.transaction() as db:
        existing(db, parent, "workspace", call.params["workspace"])
        cluster = existing(db, resource_id, "cluster", call.params["cluster"])
        if cluster.status["provisioningState"] == "deleting":
            raise conflict(f"The cluster {cluster.name} is being deleted.")
        scale = request["properties"]["scaleSettings"]
        if scale != cluster.properties["scaleSettings"]:
            cluster.properties["scaleSettings"] = scale
            # initialNodeCount counts at creation only, not when a cluster switches to auto-scale.
            cluster.runtime["initialAllocationDone"] = True
            store.touch(cluster, now())
            store.save(db, cluster)
    wake(state)
    return resource_response(render(state, cluster), cluster)


def remove(state: State, call: Call) -> Response:
    parent, resource_id = cluster_id(state, call)
    return delete(state, call, resource_id, "cluster", parent, (call.params["workspace"], call.params["cluster"]))


def list_in_workspace(state: State, call: Call) -> Response:
    parent = workspace_id(state, call)
    connection = state.connection()
    existing(connection, parent, "workspace", call.params["workspace"])
    return listed(call, [render(state, item) for item in store.children(connection, ids.key(parent), "cluster")])


def remote_login_information(state: State, call: Call) -> Response:
    parent, resource_id = cluster_id(state, call)
    connection = state.connection()
    existing(connection, parent, "workspace", call.params["workspace"])
    cluster = existing(connection, resource_id, "cluster", call.params["cluster"])
    return listed(call, login_entries(store.nodes(connection, cluster.key)))


def login_entries(nodes: list[store.Node]) -> list[dict[str, Any]]:
    """Nodes share the cluster's public IP; each gets its own SSH port (nothing listens there in the emulator)."""
    return [
        {"nodeId": node.node_id, "ipAddress": "127.0.0.1", "port": FIRST_LOGIN_PORT + node.seq - 1}
        for node in nodes
    ]
