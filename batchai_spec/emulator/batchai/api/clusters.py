"""Clusters: create (LRO), get, update scale settings (200), delete (LRO, waits for the nodes), list,
listRemoteLoginInformation (POST first page, GET for next pages)."""

from __future__ import annotations

import sqlite3
from typing import Any

from starlette.responses import Response

from batchai_spec.emulator.batchai import store, vm_sizes
from batchai_spec.emulator.batchai.api.common import (
    WorkspaceChild, existing, listed, not_deleting, parse, resource_response,
)
from batchai_spec.emulator.batchai.errors import invalid
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

FIRST_LOGIN_PORT = 50000


def render(state: State, cluster: Resource) -> dict[str, Any]:
    return cluster_view(cluster, store.nodes(state.connection(), cluster.key))


CLUSTERS = WorkspaceChild("cluster", "clusters", "cluster", "cluster", render)


def add_routes(router: Router) -> None:
    CLUSTERS.add_routes(router)
    router.add("PUT", CLUSTERS.template, create)
    router.add("PATCH", CLUSTERS.template, update)
    router.add(("POST", "GET"), CLUSTERS.template + "/listRemoteLoginInformation", remote_login_information)


def check_mount_urls(volumes: dict[str, Any] | None, path: str) -> None:
    for index, share in enumerate((volumes or {}).get("azureFileShares") or []):
        try:
            parse_azure_file_url(share["azureFileUrl"])
        except MountError as error:
            raise invalid(f"{path}.azureFileShares[{index}].azureFileUrl", str(error)) from None


def create(state: State, call: Call) -> Response:
    request = parse(ClusterCreate, call).dump()
    properties = request["properties"]
    refusal = vm_sizes.refusal_reason(properties["vmSize"])
    if refusal:
        raise invalid("properties.vmSize", refusal)
    node_setup = properties.get("nodeSetup") or {}
    check_mount_urls(node_setup.get("mountVolumes"), "properties.nodeSetup.mountVolumes")

    def build(db: sqlite3.Connection, parent: str, resource_id: str) -> Resource:
        moment = now()
        runtime = {}
        if node_setup.get("setupTask"):
            runtime["setupOutputSuffix"] = new_setup_output_suffix(
                call.params["subscription"], call.params["resource_group"], call.params["workspace"],
                call.params["cluster"],
            )
        return store.create(db, "cluster", resource_id, parent, request, moment, runtime=runtime, status={
            "allocationState": "steady", "allocationStateTransitionTime": iso_millis(moment),
        })

    return CLUSTERS.create_async(state, call, request, build)


def update(state: State, call: Call) -> Response:
    """New scale settings take effect at the scheduler's next step; the answer still shows the old allocation."""
    parent, resource_id = CLUSTERS.ids(state, call)
    request = parse(ClusterUpdate, call).dump()
    with state.transaction() as db:
        existing(db, parent, "workspace", call.params["workspace"])
        cluster = existing(db, resource_id, "cluster", call.params["cluster"])
        not_deleting(cluster, "cluster")
        scale = request["properties"]["scaleSettings"]
        if scale != cluster.properties["scaleSettings"]:
            cluster.properties["scaleSettings"] = scale
            # initialNodeCount counts at creation only, not when a cluster switches to auto-scale.
            cluster.runtime["initialAllocationDone"] = True
            store.touch(cluster, now())
            store.save(db, cluster)
    wake(state)
    return resource_response(render(state, cluster), cluster)


def remote_login_information(state: State, call: Call) -> Response:
    cluster = CLUSTERS.find(state, call)
    return listed(call, login_entries(store.nodes(state.connection(), cluster.key)))


def login_entries(nodes: list[store.Node]) -> list[dict[str, Any]]:
    """Nodes share the cluster's public IP; each gets its own SSH port (nothing listens there in the emulator)."""
    return [
        {"nodeId": node.node_id, "ipAddress": "127.0.0.1", "port": FIRST_LOGIN_PORT + node.seq - 1}
        for node in nodes
    ]
