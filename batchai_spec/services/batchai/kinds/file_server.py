"""file_server.NAME: a Batch AI file server, an NFS server VM that clusters and jobs mount. Nothing of it changes in
place (2018-05-01 has no update), so any change replaces it, and the clusters mounting it with it. Recorded in its
workspace's tags, with the fingerprint of its admin password.

SDK 7 can only create and list file servers: it has no get and no delete, so the REST API's DELETE is sent through
the generic ARM client by the server's id."""

from __future__ import annotations

from typing import Any

from azure.mgmt.batchai import models as batchai_models

from batchai_spec.graph import Graph, Resource, SpecWalk, prune
from batchai_spec.kinds import Cannot, Declaration, Kind, Policy
from batchai_spec.observed import Observed
from batchai_spec.services.azure.errors import already_gone
from batchai_spec.services.batchai import normalize
from batchai_spec.services.azure.bodies import plain
from batchai_spec.services.batchai.bodies import ALL_IPS, user_account_settings, workspace_child_id
from batchai_spec.services.batchai.connection import BatchAIConnection
from batchai_spec.services.declarations import workspace_ids

API_VERSION = "2018-05-01"


class FileServer(Kind):
    name = "file_server"
    address_keys = ("file_server",)
    parent = "workspace"
    fields = {
        "vm_size": Policy.REPLACE,
        "ssh_configuration": Policy.REPLACE,
        "data_disks": Policy.REPLACE,
        "subnet": Policy.REPLACE,
    }
    read_under = "workspace"
    stores_fingerprints = True

    def declared(self, walk: SpecWalk):
        spec = walk.spec
        for index, server in enumerate(spec.file_servers):
            yield Declaration(
                {**workspace_ids(spec), "file_server": server.name},
                ("file_servers", index),
                server,
                depends_on=(f"workspace.{spec.workspace.name}",),
            )

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        server = declaration.node
        body = {
            "vm_size": server.vm_size.upper(),
            "ssh_configuration": {
                "public_ips_to_allow": list(server.public_ips_to_allow) or list(ALL_IPS),
                "user_account_settings": user_account_settings(server.user_account),
            },
            "data_disks": plain(server.data_disks),
            "subnet": {"id": server.subnet_id} if server.subnet_id else None,
        }
        return prune(body)

    def status(self, live: Observed) -> tuple[str, str]:
        mount = live.status.get("mount_settings") or {}
        address = mount.get("file_server_internal_ip") or mount.get("file_server_public_ip")
        details = f"nfs {address}:{mount.get('mount_point', '')}" if address else ""
        return live.status.get("provisioning_state") or "?", details

    def list_under(self, connection: BatchAIConnection, workspace: Observed, graph: Graph) -> list[Observed]:
        return [
            Observed(
                self.address(ids),
                self.name,
                ids,
                normalize.file_server_body(server),
                owned=owned,
                stored=stored,
                status={
                    "provisioning_state": server.provisioning_state,
                    "mount_settings": server.mount_settings.as_dict() if server.mount_settings else {},
                },
            )
            for server, ids, owned, stored in connection.workspace_children(
                workspace, self.name, connection.clients.batchai.file_servers, "file servers"
            )
        ]

    def create(self, connection: BatchAIConnection, resource: Resource, progress=None) -> None:
        ids = resource.ids
        # Ownership is recorded first: a run interrupted after the create still knows the server is its own.
        connection.ownership.record(self.name, ids, connection.ownership.fingerprints(resource))
        parameters = batchai_models.FileServerCreateParameters.from_dict(connection.revealed(resource))
        connection.clients.batchai.file_servers.begin_create(
            ids["resource_group"], ids["workspace"], ids["file_server"], parameters
        ).result()

    update = Cannot("a file server cannot be changed: a change means a new server")

    def delete(self, connection: BatchAIConnection, live: Observed) -> None:
        ids = live.ids
        server_id = workspace_child_id(
            connection.clients.endpoint.subscription_id, ids["resource_group"], ids["workspace"], "fileServers", ids["file_server"]
        )
        with already_gone():
            connection.clients.resource.resources.begin_delete_by_id(server_id, api_version=API_VERSION).result()
        connection.ownership.forget(self.name, ids)


FILE_SERVER = FileServer()
