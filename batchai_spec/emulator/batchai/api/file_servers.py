"""File servers: create (LRO) and list, all SDK 7 can do; get and delete of the REST spec too.

There is no NFS VM: a file server is a directory under the emulator's state that clusters mount
(see mounts.py), reported with the mount settings the service gave (`/mnt/data`, loopback addresses).
"""

from __future__ import annotations

from starlette.responses import Response

from batchai_spec.emulator.batchai import store
from batchai_spec.emulator.batchai.api.common import WorkspaceChild, parse
from batchai_spec.emulator.batchai.models import FileServerCreate
from batchai_spec.emulator.batchai.views import file_server_view
from batchai_spec.emulator.clock import now
from batchai_spec.emulator.routing import Call, Router
from batchai_spec.emulator.state import State

MOUNT_SETTINGS = {"mountPoint": "/mnt/data", "fileServerPublicIP": "127.0.0.1", "fileServerInternalIP": "127.0.0.1"}
FILE_SERVERS = WorkspaceChild(
    "fileserver", "fileServers", "file_server", "file server", lambda state, server: file_server_view(server)
)


def add_routes(router: Router) -> None:
    FILE_SERVERS.add_routes(router)
    router.add("PUT", FILE_SERVERS.template, create)


def create(state: State, call: Call) -> Response:
    request = parse(FileServerCreate, call).dump()
    return FILE_SERVERS.create_async(state, call, request, lambda db, parent, resource_id: store.create(
        db, "fileserver", resource_id, parent, request, now(), status={"mountSettings": MOUNT_SETTINGS}
    ))
