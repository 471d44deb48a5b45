"""cluster.NAME on Azure Batch: a pool of that name in the spec's Batch account, made through ARM. Its scale settings
and start task change in place (PATCH; a changed start task runs on nodes that join or reboot after it), the rest
forces a new pool (batch-pool-update-properties: vmSize and the deployment only with no nodes, the others never).
Ready once allocation is steady with the nodes asked for. Its metadata names the spec and holds the fingerprints of
its write-only values (mount keys, the user account's password, the setup task's secrets)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import urlparse

from batchai_spec.graph import Graph, Resource, SpecWalk, prune
from batchai_spec.job_inputs import share_path
from batchai_spec.kinds import Declaration, Policy, Readiness
from batchai_spec.observed import Observed
from batchai_spec.sensitive import without_write_only
from batchai_spec.services.azure.bodies import named_list, plain, secret_list
from batchai_spec.services.azure.errors import already_gone, service_call
from batchai_spec.services.batch import bodies
from batchai_spec.services.batch.bodies import unwire, wire, wire_name
from batchai_spec.services.batch.connection import BatchConnection
from batchai_spec.services.batch.ownership import as_metadata, metadata_of, owner_metadata, read_metadata
from batchai_spec.services.batch.secrets import delete_secrets, write_secrets
from batchai_spec.services.batch.watch import NODE_COUNTS
from batchai_spec.services.declarations import SpecCluster

# What a pool's body holds (the ARM properties the spec decides); the service's own fields are not compared.
DECLARED = (
    "vm_size",
    "deployment_configuration",
    "scale_settings",
    "inter_node_communication",
    "user_accounts",
    "start_task",
    "mount_configuration",
    "network_configuration",
)


class Pool(SpecCluster):
    fields = {
        **{field: Policy.REPLACE for field in DECLARED},
        "scale_settings": Policy.UPDATE,
        "start_task": Policy.UPDATE,
    }

    def needs(self, walk: SpecWalk, cluster):
        return bodies.launcher_addresses(cluster, walk.spec)

    def facts(self, walk: SpecWalk, cluster) -> dict[str, Any]:
        return {
            "secrets": bodies.secrets_file(cluster, walk.spec, f"pool-{cluster.name}") if _setup_secrets(cluster) else None,
            "minimum_nodes": cluster.scale.auto.minimum_node_count if cluster.scale.auto else 0,
        }

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        cluster, spec = declaration.node, walk.spec
        account = spec.storage.account.name if spec.storage else None
        reference, agent = bodies.image(cluster)
        machine = {"image_reference": reference, "node_agent_sku_id": agent}
        jobs = [job for experiment in spec.experiments for job in experiment.jobs if spec.cluster(job.cluster) is cluster]
        if any(job.container is not None for job in jobs):
            machine["container_configuration"] = {"type": "DockerCompatible", "container_registries": _registries(jobs)}
        user = cluster.user_account
        body = {
            "vm_size": cluster.vm_size.upper(),
            "deployment_configuration": {"virtual_machine_configuration": machine},
            "scale_settings": bodies.scale_settings(cluster),
            # Batch AI's nodes could always reach each other (MPI); Batch's only when asked, at creation: asked for
            # the jobs that run on several nodes (multi-instance tasks need it), so that a node count alone changes
            # in place.
            "inter_node_communication": "Enabled" if any(job.node_count > 1 for job in jobs) else "Disabled",
            "user_accounts": [{"name": user.admin_user_name, "password": plain(user.admin_user_password), "elevation_level": "Admin"}]
            if user.admin_user_password is not None
            else None,
            "start_task": _start_task(cluster, spec, walk.subscription_id, declaration.ids),
            "mount_configuration": bodies.mount_configuration(cluster.node_setup.mount_volumes if cluster.node_setup else None, account),
            "network_configuration": {"subnet_id": cluster.subnet_id} if cluster.subnet_id else None,
        }
        return prune(body)

    def policy(self, path: str) -> Policy:
        """A start task changes in place; adding or removing one makes a new pool (which is what Batch AI did with
        any setup change: a pool without the setup a job expects is never left running it)."""
        return Policy.REPLACE if path == "start_task" else super().policy(path)

    def list_under(self, connection: BatchConnection, account: Observed, graph: Graph) -> list[Observed]:
        ids = account.ids
        with service_call(account.address, "listing pools of"):
            pools = list(connection.clients.batch.pool.list_by_batch_account(ids["resource_group"], ids["workspace"]))
        salt = connection.accounts.stored_salt(ids)
        counts = _node_counts(connection, account) if pools else {}
        found = []
        for pool in pools:
            properties = pool.as_dict().get("properties", {})
            owned, stored = read_metadata(metadata_of(properties.get("metadata")), connection.spec_name, salt)
            pool_ids = {**ids, "cluster": pool.name}
            # Write-only values are compared through fingerprints, whether or not the service returns them.
            state = without_write_only(unwire({key: properties[key] for key in map(wire_name, DECLARED) if key in properties}))
            if "vm_size" in state:
                state["vm_size"] = state["vm_size"].upper()
            found.append(
                Observed(
                    self.address(pool_ids),
                    self.name,
                    pool_ids,
                    state,
                    owned=owned,
                    stored=stored,
                    status={
                        "allocation_state": (properties.get("allocationState") or "").lower() or None,
                        "current_node_count": (properties.get("currentDedicatedNodes") or 0)
                        + (properties.get("currentLowPriorityNodes") or 0),
                        "node_state_counts": counts.get(pool.name, {}),
                    },
                )
            )
        return found

    def create(self, connection: BatchConnection, resource: Resource, progress=None) -> None:
        ids = resource.ids
        properties = self._sent(connection, resource, with_secrets=True)
        properties["metadata"] = as_metadata(owner_metadata(connection.spec_name, connection.fingerprints(resource)))
        connection.clients.batch.pool.create(ids["resource_group"], ids["workspace"], ids["cluster"], {"properties": properties})

    def update(self, connection: BatchConnection, resource: Resource, progress=None) -> None:
        """PATCH what changed of what changes in place (a start task added or removed makes a new pool: `policy`).
        Batch runs a changed start task only on nodes that join or reboot: the pool's nodes are asked to reboot once
        their tasks complete, so that each runs the start task the spec now has (a node whose start task failed
        gets its second chance); the readiness wait follows them."""
        ids = resource.ids
        fingerprints = connection.fingerprints(resource)
        live = connection.observed[resource.address]
        declared = prune(without_write_only(resource.desired))
        # Its secrets too (what else is write-only forces a new pool); known only of a pool this spec made.
        secrets_changed = live.owned and live.stored.fingerprint != fingerprints
        start_task_changed = live.state.get("start_task") != declared.get("start_task") or secrets_changed
        sent = self._sent(connection, resource, with_secrets=start_task_changed)
        properties: dict[str, Any] = {"metadata": as_metadata(owner_metadata(connection.spec_name, fingerprints))}
        if live.state.get("scale_settings") != declared["scale_settings"]:
            properties["scaleSettings"] = sent["scaleSettings"]
        if start_task_changed and "startTask" in sent:
            properties["startTask"] = sent["startTask"]
        connection.clients.batch.pool.update(ids["resource_group"], ids["workspace"], ids["cluster"], {"properties": properties})
        if start_task_changed:
            data = connection.data(ids)
            for node in data.list_nodes(ids["cluster"]):
                # The request is all: waiting for its operation would wait for the node's running task to end.
                data.begin_reboot_node(ids["cluster"], node.id, {"nodeRebootOption": "taskcompletion"})

    def _sent(self, connection: BatchConnection, resource: Resource, *, with_secrets: bool) -> dict[str, Any]:
        """The pool's properties as ARM takes them, secrets revealed; the setup task's secrets go to the share
        instead (`with_secrets`: written, for a start task that is sent)."""
        body = connection.revealed(resource)
        secrets = {item["name"]: item["value"] for item in (body.get("start_task") or {}).pop("secrets", [])}
        if with_secrets:
            write_secrets(connection, resource.extra["secrets"], secrets)
        return wire(body)

    def readiness(self, connection: BatchConnection, resource: Resource) -> Readiness:
        """Allocation steady with the nodes the scale settings ask for (auto scale: its minimum)."""
        scale = resource.desired["scale_settings"]
        if "fixed_scale" in scale:
            wanted = scale["fixed_scale"]["target_dedicated_nodes"] + scale["fixed_scale"]["target_low_priority_nodes"]
        else:
            wanted = resource.extra["minimum_nodes"]
        return Readiness(lambda: connection.watch.cluster(resource.ids), wanted)

    def delete(self, connection: BatchConnection, live: Observed) -> None:
        ids = live.ids
        with already_gone():
            connection.clients.batch.pool.begin_delete(ids["resource_group"], ids["workspace"], ids["cluster"]).result()
        delete_secrets(connection, _secrets_file(live))


def _node_counts(connection: BatchConnection, account: Observed) -> dict[str, dict[str, int]]:
    """Each pool's nodes by state, in Batch AI's words (`status` shows them): one request for the account."""
    with service_call(account.address, "counting the nodes of"):
        listed = list(connection.data(account.ids).list_pool_node_counts())
    counts: dict[str, Counter] = {}
    for pool in listed:
        counted = counts.setdefault(pool.pool_id, Counter())
        for priority in (pool.dedicated, pool.low_priority):
            for state, count in (priority or {}).items():
                if state != "total" and count:
                    counted[f"{NODE_COUNTS.get(state.lower(), state.lower())}_node_count"] += count
    return {pool: dict(counted) for pool, counted in counts.items()}


def _start_task(cluster, spec, subscription_id: str, ids: dict[str, str]) -> dict[str, Any] | None:
    """The cluster's setup task as the pool's start task: the launcher runs it as Batch AI ran it (bash, as root,
    its output under the prefix in Batch AI's layout), with its secrets from a file on the share."""
    task = cluster.node_setup.setup_task if cluster.node_setup else None
    if task is None:
        return None
    mount = bodies.launcher_mount(cluster, spec)
    setup = {
        "version": 1,
        "command_line": task.command_line,
        "std_out_err_path_prefix": task.std_out_err_path_prefix,
        "output_segment": f"{subscription_id}/{ids['resource_group']}/workspaces/{ids['workspace']}/clusters/{cluster.name}",
        "secrets_file": bodies.secrets_path(mount, f"pool-{cluster.name}") if task.secrets else None,
    }
    return {
        "command_line": bodies.launcher_command(mount, "setup"),
        "environment_settings": [
            *named_list(task.environment_variables),
            {"name": bodies.SETUP_VARIABLE, "value": bodies.description(setup)},
        ],
        "secrets": secret_list(task.secrets),
        "user_identity": {"auto_user": {"scope": "Pool", "elevation_level": "Admin"}},
        "max_task_retry_count": 0,
        "wait_for_success": True,
    }


def _registries(jobs) -> list[dict[str, Any]]:
    """The private registries of the pool's jobs' images, each server once: Batch pulls a task's image with its pool's
    registries, and keeps their passwords to itself (a task's own registry password is returned by GET task)."""
    registries: dict[str | None, dict[str, Any]] = {}
    for job in jobs:
        registry = job.container.registry if job.container else None
        if registry is not None:
            registries.setdefault(
                registry.server_url,
                {"registry_server": registry.server_url, "username": registry.username, "password": plain(registry.password)},
            )
    return [registries[server] for server in sorted(registries, key=lambda server: server or "")]


def _setup_secrets(cluster) -> bool:
    return bool(cluster.node_setup and cluster.node_setup.setup_task and cluster.node_setup.setup_task.secrets)


def _secrets_file(live: Observed) -> dict[str, str] | None:
    """Where the setup task's secrets lie: the launcher's description in the live start task names the file as a node
    sees it, the pool's mounts say on which share."""
    state = live.state or {}
    settings = {item["name"]: item["value"] for item in state.get("start_task", {}).get("environment_settings", [])}
    path = json.loads(settings.get(bodies.SETUP_VARIABLE) or "{}").get("secrets_file")
    mounts = {
        mount["relative_mount_path"]: mount
        for mount in (entry.get("azure_file_share_configuration") for entry in state.get("mount_configuration", []))
        if mount
    }
    on_share = share_path(path, {"AZ_BATCHAI_MOUNT_ROOT": mounts}) if path else None
    if on_share is None:
        return None
    mount, inside = on_share
    share = urlparse(mount["azure_file_url"]).path.strip("/").split("/")[0]
    return {"account": mount["account_name"], "share": share, "path": inside}


POOL = Pool()
