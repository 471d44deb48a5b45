"""File servers: create (LRO) and list, all SDK 7 can do; get and delete of the REST spec too.

There is no NFS VM: a file server is a directory under the emulator's state that clusters mount
(see mounts.py), reported with the mount settings the service gave (`/mnt/data`, loopback addresses).
"""

from __future__ import annotations

from starlette.responses import Response

from batchai_spec.emulator.batchai import ids, store
from batchai_spec.emulator.batchai.api.common import (
    WORKSPACE, accepted, delete, existing, listed, live_parent, location_of, operation_started, parse,
    resource_response, same_body, workspace_id,
)
from batchai_spec.emulator.batchai.models import FileServerCreate
from batchai_spec.emulator.batchai.store import Resource
from batchai_spec.emulator.batchai.times import iso_millis
from batchai_spec.emulator.batchai.views import file_server_view
from batchai_spec.emulator.clock import now
from batchai_spec.emulator.routing import Call, Router
from batchai_spec.emulator.state import State

FILE_SERVER = WORKSPACE + "/fileServers/{file_server}"
MOUNT_SETTINGS = {"mountPoint": "/mnt/data", "fileServerPublicIP": "127.0.0.1", "fileServerInternalIP": "127.0.0.1"}


def add_routes(router: Router) -> None:
    router.add("GET", WORKSPACE + "/fileServers", list_in_workspace)
    router.add("PUT", FILE_SERVER, create)
    router.add("GET", FILE_SERVER, get)
    router.add("DELETE", FILE_SERVER, remove)


def file_server_id(state: State, call: Call) -> tuple[str, str]:
    parent = workspace_id(state, call)
    ids.check_name("file server", call.params["file_server"])
    return parent, ids.child_id(parent, "fileserver", call.params["file_server"])


def create(state: State, call: Call) -> Response:
    parent, resource_id = file_server_id(state, call)
    request = parse(FileServerCreate, call).dump()
    moment = now()
    with state.transaction() as db:
        workspace = live_parent(db, parent, "workspace", call.params["workspace"])
        file_server = store.get(db, resource_id, "fileserver")
        if file_server is not None:
            same_body(file_server, request, "file server")
        elif call.operation_fault is None:
            file_server = store.insert(db, Resource(
                key=ids.key(resource_id), kind="fileserver", parent_key=ids.key(parent), id=resource_id,
                name=call.params["file_server"], body=request,
                status={"mountSettings": MOUNT_SETTINGS, "provisioningState": "succeeded",
                        "provisioningStateTransitionTime": iso_millis(moment), "creationTime": iso_millis(moment)},
                runtime={}, etag=store.new_etag(), modified_at=moment,
            ))
        result = file_server_view(file_server) if file_server is not None else None
        operation = operation_started(
            state, call, (call.params["workspace"], call.params["file_server"]), done=True, result=result
        )
    return accepted(state, call, operation, location_of(workspace))


def get(state: State, call: Call) -> Response:
    parent, resource_id = file_server_id(state, call)
    connection = state.connection()
    existing(connection, parent, "workspace", call.params["workspace"])
    file_server = existing(connection, resource_id, "fileserver", call.params["file_server"])
    return resource_response(file_server_view(file_server), file_server)


def remove(state: State, call: Call) -> Response:
    parent, resource_id = file_server_id(state, call)
    names = (call.params["workspace"], call.params["file_server"])
    return delete(state, call, resource_id, "fileserver", parent, names)


def list_in_workspace(state: State, call: Call) -> Response:
    parent = workspace_id(state, call)
    connection = state.connection()
    existing(connection, parent, "workspace", call.params["workspace"])
    children = store.children(connection, ids.key(parent), "fileserver")
    return listed(call, [file_server_view(item) for item in children])
