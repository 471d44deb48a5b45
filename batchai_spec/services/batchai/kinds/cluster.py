"""cluster.NAME: a Batch AI cluster. Only its scale settings change in place (PATCH, manual <-> auto included); it
is ready once allocation is steady with the nodes its scale asks for. Recorded in its workspace's tags, with the
fingerprints of its write-only values (admin password, mount keys, setup task secrets)."""

from __future__ import annotations

from typing import Any

from azure.mgmt.batchai import models as batchai_models

from batchai_spec.graph import Graph, Resource, SpecWalk, prune
from batchai_spec.kinds import Declaration, Policy, Readiness
from batchai_spec.observed import Observed
from batchai_spec.services.azure.errors import already_gone
from batchai_spec.services.batchai import normalize
from batchai_spec.services.azure.bodies import named_list, plain, secret_list
from batchai_spec.services.batchai.bodies import (
    DEFAULT_IMAGE,
    file_server_dependencies,
    mount_volumes,
    mounted_file_servers,
    user_account_settings,
)
from batchai_spec.services.batchai.connection import BatchAIConnection
from batchai_spec.services.declarations import SpecCluster


class Cluster(SpecCluster):
    fields = {
        "vm_size": Policy.REPLACE,
        "vm_priority": Policy.REPLACE,
        "scale_settings": Policy.UPDATE,
        "virtual_machine_configuration": Policy.REPLACE,
        "user_account_settings": Policy.REPLACE,
        "node_setup": Policy.REPLACE,
        "subnet": Policy.REPLACE,
    }
    def needs(self, walk: SpecWalk, cluster):
        return file_server_dependencies(cluster.node_setup.mount_volumes if cluster.node_setup else None)

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        cluster = declaration.node
        account = walk.spec.storage.account.name if walk.spec.storage else None
        scale = cluster.scale
        scale_settings = {"manual": plain(scale.manual)} if scale.manual is not None else {"auto_scale": plain(scale.auto)}
        body = {
            "vm_size": cluster.vm_size.upper(),
            "vm_priority": cluster.vm_priority,
            "scale_settings": scale_settings,
            "virtual_machine_configuration": {"image_reference": plain(cluster.image) if cluster.image else dict(DEFAULT_IMAGE)},
            "user_account_settings": user_account_settings(cluster.user_account),
            "node_setup": _node_setup(cluster.node_setup, account, walk.subscription_id, declaration.ids),
            "subnet": {"id": cluster.subnet_id} if cluster.subnet_id else None,
        }
        return prune(body)

    def live_dependencies(self, live: Observed) -> set[str]:
        return mounted_file_servers((live.state.get("node_setup") or {}).get("mount_volumes"), live.ids)

    def list_under(self, connection: BatchAIConnection, workspace: Observed, graph: Graph) -> list[Observed]:
        found = []
        for cluster, ids, owned, stored in connection.workspace_children(
            workspace, self.name, connection.clients.batchai.clusters, "clusters"
        ):
            counts = cluster.node_state_counts
            found.append(
                Observed(
                    self.address(ids),
                    self.name,
                    ids,
                    normalize.cluster_body(cluster),
                    owned=owned,
                    stored=stored,
                    status={
                        "allocation_state": cluster.allocation_state,
                        "current_node_count": cluster.current_node_count,
                        "node_state_counts": counts.as_dict() if counts else {},
                    },
                )
            )
        return found

    def create(self, connection: BatchAIConnection, resource: Resource, progress=None) -> None:
        ids = resource.ids
        # Ownership is recorded first: a run interrupted after the create still knows the cluster is its own.
        connection.ownership.record(self.name, ids, connection.ownership.fingerprints(resource))
        parameters = batchai_models.ClusterCreateParameters.from_dict(connection.revealed(resource))
        connection.clients.batchai.clusters.begin_create(ids["resource_group"], ids["workspace"], ids["cluster"], parameters).result()

    def update(self, connection: BatchAIConnection, resource: Resource, progress=None) -> None:
        ids = resource.ids
        scale = batchai_models.ScaleSettings.from_dict(resource.desired["scale_settings"])
        connection.clients.batchai.clusters.update(
            ids["resource_group"], ids["workspace"], ids["cluster"], batchai_models.ClusterUpdateParameters(scale_settings=scale)
        )

    def readiness(self, connection: BatchAIConnection, resource: Resource) -> Readiness:
        """Allocation steady with the nodes the scale settings ask for (auto scale: its minimum)."""
        scale = resource.desired["scale_settings"]
        wanted = scale["manual"]["target_node_count"] if "manual" in scale else scale["auto_scale"].get("minimum_node_count", 0)
        return Readiness(lambda: connection.watch.cluster(resource.ids), wanted)

    def delete(self, connection: BatchAIConnection, live: Observed) -> None:
        ids = live.ids
        with already_gone():
            connection.clients.batchai.clusters.begin_delete(ids["resource_group"], ids["workspace"], ids["cluster"]).result()
        connection.ownership.forget(self.name, ids)


def _node_setup(node_setup, account: str | None, subscription_id: str, ids: dict[str, str]) -> dict[str, Any] | None:
    if node_setup is None:
        return None
    setup_task = None
    if node_setup.setup_task is not None:
        task = node_setup.setup_task
        setup_task = {
            "command_line": task.command_line,
            "environment_variables": named_list(task.environment_variables),
            "secrets": secret_list(task.secrets),
            "std_out_err_path_prefix": task.std_out_err_path_prefix,
        }
    counters = None
    if node_setup.performance_counters is not None:
        counters_spec = node_setup.performance_counters
        counters = {
            "app_insights_reference": {
                "component": {"id": counters_spec.app_insights_component_id},
                "instrumentation_key": plain(counters_spec.instrumentation_key),
            }
        }
    return {
        "setup_task": setup_task,
        "mount_volumes": mount_volumes(node_setup.mount_volumes, account, subscription_id, ids),
        "performance_counters_settings": counters,
    }


CLUSTER = Cluster()
