"""Clusters and their nodes over time, driven by the scheduler's clock (never by sleeps in request handlers).

Allocation: when a cluster has fewer nodes than its target, it turns `resizing`; after the allocation delay the
missing nodes appear as `preparing`, and the cluster is `steady` again. A preparing node waits the preparation
delay, mounts the cluster's volumes and runs the setup task (a real process); then it is `idle`, or `unusable`
with the error on the cluster. Nodes above the target leave (`leaving`, then gone after the leaving delay):
unusable, preparing and idle ones first; running ones as `nodeDeallocationOption` says (requeue or terminate their
jobs, or wait for them). An auto-scale cluster's target follows the node needs of its queued and running jobs
between minimum and maximum; `initialNodeCount` applies at creation, and idle nodes leave after
`autoscale_idle_s`. A cluster being deleted has target 0 and disappears once its last node has left.

A setup task's processes belong to its node: what the setup task leaves running (a daemon it started) runs while
the node exists. A leaving node sends them SIGTERM, SIGKILL once it is due and the grace period has passed, and is
gone only when none of them is left (see processes.py for how they are found).
"""

from __future__ import annotations

import logging
import shutil
import signal
import sqlite3
import uuid
import zlib
from pathlib import Path
from typing import Any

from batchai_spec.emulator.batchai import mounts, runner, store
from batchai_spec.emulator.batchai.context import Context
from batchai_spec.emulator.batchai.environment import (
    SecretUnavailable,
    expand,
    node_environment,
    setup_task_environment,
)
from batchai_spec.emulator.batchai.processes import Step, TaskRecord, task_script
from batchai_spec.emulator.batchai.store import Node, Resource
from batchai_spec.emulator.batchai.times import iso_millis
from batchai_spec.emulator.batchai.toolkits import shell
from batchai_spec.emulator.batchai.vm_sizes import lookup
from batchai_spec.emulator.lro import finish_operation

logger = logging.getLogger("batchai_spec.emulator")

DELETING = "deleting"
SETUP_LEFTOVERS = "setupProcesses"  # node runtime: the record of a finished setup task that left processes running
# Which nodes go first when a cluster shrinks.
_REMOVAL_ORDER = {"unusable": 0, "preparing": 1, "idle": 2, "running": 3}


def advance(ctx: Context, now: float) -> bool:
    """One step for every cluster; True when anything changed (the scheduler then steps again at once)."""
    changed = False
    for cluster in store.of_kind(ctx.state.connection(), "cluster"):
        changed |= _allocate(ctx, cluster.key, now)
        changed |= _prepare_nodes(ctx, cluster.key, now)
    return changed


def target_node_count(db: sqlite3.Connection, cluster: Resource) -> int:
    scale = cluster.properties["scaleSettings"]
    if "manual" in scale:
        return scale["manual"]["targetNodeCount"]
    auto = scale["autoScale"]
    demand = sum(job.properties["nodeCount"] for job in runner.jobs_needing(db, cluster.key))
    if not cluster.runtime.get("initialAllocationDone"):
        demand = max(demand, auto.get("initialNodeCount", 0))
    return max(auto["minimumNodeCount"], min(auto["maximumNodeCount"], demand))


def _allocate(ctx: Context, cluster_key: str, now: float) -> bool:
    delays = ctx.config.delays
    gone: list[Node] = []
    finished_operations: list[str] = []
    with ctx.state.transaction() as db:
        cluster = store.get(db, cluster_key, "cluster")
        if cluster is None:
            return False
        before = (dict(cluster.status), dict(cluster.runtime))
        nodes = store.nodes(db, cluster_key)
        deleting = cluster.status["provisioningState"] == DELETING
        target = 0 if deleting else target_node_count(db, cluster)
        staying = [node for node in nodes if node.state != "leaving" and not node.runtime.get("leaveAfterJob")]
        node_changes = False
        if len(staying) < target:
            due = cluster.runtime.setdefault("allocationDue", now + delays.allocation_s)
            if due <= now:
                for _ in range(target - len(staying)):
                    _add_node(db, cluster, now + delays.node_preparation_s, now)
                cluster.runtime.pop("allocationDue")
                cluster.runtime["initialAllocationDone"] = True
                node_changes = True
        else:
            cluster.runtime.pop("allocationDue", None)
            cluster.runtime["initialAllocationDone"] = True
            node_changes |= _remove_excess(ctx, db, cluster, staying, len(staying) - target, deleting, now)
        for node in store.nodes(db, cluster_key):
            if node.state != "leaving":
                continue
            before_node = dict(node.runtime)
            if _setup_still_running(ctx, node, now):
                if node.runtime != before_node:
                    store.save_node(db, node)
                    node_changes = True
            elif (node.due_at or 0) <= now:
                store.delete_node(db, node)
                gone.append(node)
            elif node.runtime != before_node:
                store.save_node(db, node)
                node_changes = True
        remaining = store.nodes(db, cluster_key)
        resizing = "allocationDue" in cluster.runtime or any(
            node.state == "leaving" or node.runtime.get("leaveAfterJob") for node in remaining
        )
        allocation_state = "resizing" if resizing else "steady"
        if allocation_state != cluster.status["allocationState"]:
            cluster.status["allocationState"] = allocation_state
            cluster.status["allocationStateTransitionTime"] = iso_millis(now)
        if deleting and not remaining:
            store.delete(db, cluster_key)
            finished_operations = cluster.runtime.get("deleteOperations", [])
        elif (dict(cluster.status), dict(cluster.runtime)) != before:
            store.save(db, cluster)
        changed = node_changes or bool(gone) or (dict(cluster.status), dict(cluster.runtime)) != before
    for node in gone:
        shutil.rmtree(ctx.layout.node(node.node_id).root, ignore_errors=True)
    for operation_id in finished_operations:
        finish_operation(ctx.state, operation_id)
    return changed or bool(finished_operations)


def _add_node(db: sqlite3.Connection, cluster: Resource, ready_at: float, now: float) -> None:
    number = cluster.runtime.get("nodesCreated", 0) + 1
    cluster.runtime["nodesCreated"] = number
    stamp = iso_millis(now)[:19].replace("-", "").replace(":", "").lower()
    node_id = f"tvm-{zlib.crc32(cluster.key.encode())}_{number}-{stamp}z"
    store.insert_node(db, Node(cluster.key, node_id, "preparing", since=now, due_at=ready_at, job_key=None))


def _remove_excess(ctx: Context, db: sqlite3.Connection, cluster: Resource, staying: list[Node], excess: int,
                   deleting: bool, now: float) -> bool:
    if excess <= 0:
        return False
    scale = cluster.properties["scaleSettings"]
    option = scale["manual"]["nodeDeallocationOption"] if "manual" in scale else None
    changed = False
    for node in sorted(staying, key=lambda candidate: (_REMOVAL_ORDER[candidate.state], -candidate.seq)):
        if excess == 0:
            break
        if node.state == "running":
            if option is None and not deleting:
                continue  # auto-scale never takes nodes from running jobs
            node.runtime["leaveAfterJob"] = True
            if deleting or option in ("requeue", "terminate"):
                reason = "cluster_deleted" if deleting else ("requeue" if option == "requeue" else "deallocated")
                runner.request_stop(db, node.job_key, reason)
        elif node.state == "idle" and option is None and not deleting:
            if now - node.since < ctx.config.delays.autoscale_idle_s:
                continue
            node.state, node.since, node.due_at = "leaving", now, now + ctx.config.delays.node_leaving_s
        else:
            node.state, node.since, node.due_at = "leaving", now, now + ctx.config.delays.node_leaving_s
        store.save_node(db, node)
        excess -= 1
        changed = True
    return changed


def _prepare_nodes(ctx: Context, cluster_key: str, now: float) -> bool:
    connection = ctx.state.connection()
    cluster = store.get(connection, cluster_key, "cluster")
    if cluster is None:
        return False
    changed = False
    for node in store.nodes(connection, cluster_key):
        if node.state != "preparing":
            continue
        if "setup" in node.runtime:
            outcome = ctx.processes.outcome(TaskRecord.from_json(node.runtime["setup"]))
            if outcome is None:
                continue
            if outcome.exit_code == 0:
                changed |= _settle(ctx, node, "idle", now, [])
            else:
                changed |= _settle(ctx, node, "unusable", now, [_setup_failure(cluster, node, outcome.exit_code)])
        elif (node.due_at or 0) <= now:
            changed |= _start_preparation(ctx, cluster, node, now)
    return changed


def _start_preparation(ctx: Context, cluster: Resource, node: Node, now: float) -> bool:
    node_layout = ctx.layout.node(node.node_id)
    node_setup = cluster.properties.get("nodeSetup") or {}
    try:
        mounted = mounts.resolve(ctx.state, node_setup.get("mountVolumes") or {}, ctx.layout.root)
        mounts.link(node_layout.mount_root, mounted)
    except mounts.MountError as error:
        return _settle(ctx, node, "unusable", now, [_node_error("MountFailed", str(error), node)])
    setup_task = node_setup.get("setupTask")
    if setup_task is None:
        return _settle(ctx, node, "idle", now, [])
    gpus = lookup(cluster.properties["vmSize"]).gpus
    try:
        base = node_environment(ctx.host_env, ctx.config.job_python)
        env = setup_task_environment(base, setup_task, node_layout.mount_root, gpus)
    except SecretUnavailable as error:
        return _settle(ctx, node, "unusable", now, [_node_error("SetupTaskFailed", str(error), node)])
    log_dir = setup_log_directory(cluster, env)
    node_layout.setup_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    step = Step("setup", [shell(), "-c", setup_task["commandLine"]],
                log_dir / f"stdout-{node.node_id}.txt", log_dir / f"stderr-{node.node_id}.txt")
    script = node_layout.setup_dir / "setup.sh"
    script.write_text(task_script([step], script.with_suffix(".exit")))
    record = ctx.processes.launch(script, env, node_layout.setup_dir, use_cgroup=ctx.config.use_cgroups)
    with ctx.state.transaction() as db:
        current = next((item for item in store.nodes(db, node.cluster_key) if item.node_id == node.node_id), None)
        if current is None:  # the node is gone already
            ctx.processes.signal_tree(record, signal.SIGKILL)
            ctx.processes.wait_gone([record], ctx.config.kill_wait_s)
            ctx.processes.release(record)
            return True
        current.runtime["setup"] = record.to_json()  # a node that left meanwhile stops it (_setup_still_running)
        store.save_node(db, current)
    return True


def _setup_still_running(ctx: Context, node: Node, now: float) -> bool:
    """A leaving node's setup task, or what it left running: SIGTERM at once, SIGKILL once the node is due and the
    grace period has passed; True while any of its processes is left (the node waits for them). Changes
    `node.runtime` only; the caller saves the node."""
    document = node.runtime.get("setup") or node.runtime.get(SETUP_LEFTOVERS)
    if document is None:
        return False
    record = TaskRecord.from_json(document)
    members = ctx.processes.members(record)
    signalled, killed = node.runtime.get("setupSignalledAt"), node.runtime.get("setupKilledAt")
    if not members or (killed is not None and now - killed >= ctx.config.kill_wait_s):
        if members:
            logger.warning("node %s: setup task processes still present after SIGKILL: %s", node.node_id,
                           sorted(members))
        ctx.processes.outcome(record)  # reaps it if this emulator launched it
        ctx.processes.release(record)
        for name in ("setup", SETUP_LEFTOVERS, "setupSignalledAt", "setupKilledAt"):
            node.runtime.pop(name, None)
        return False
    if signalled is None:
        sent = ctx.processes.signal_tree(record, signal.SIGTERM)
        logger.info("node %s is leaving: setup task %s", node.node_id, sent.describe())
        node.runtime["setupSignalledAt"] = now
    elif killed is None and (node.due_at or 0) <= now and now - signalled >= ctx.config.terminate_grace_s:
        sent = ctx.processes.signal_tree(record, signal.SIGKILL)
        logger.info("node %s is leaving: setup task still running after SIGTERM; %s", node.node_id, sent.describe())
        node.runtime["setupKilledAt"] = now
    return True


def setup_tasks(ctx: Context) -> list[TaskRecord]:
    """Every node's setup task that may still have processes (running, or left running): emulator shutdown stops
    them."""
    records = []
    connection = ctx.state.connection()
    for cluster in store.of_kind(connection, "cluster"):
        for node in store.nodes(connection, cluster.key):
            document = node.runtime.get("setup") or node.runtime.get(SETUP_LEFTOVERS)
            if document is not None:
                records.append(TaskRecord.from_json(document))
    return records


def setup_log_directory(cluster: Resource, env: dict[str, str]) -> Path:
    """`{setupTask.stdOutErrPathPrefix}/{stdOutErrPathSuffix}` as the node sees it."""
    return Path(expand(cluster.properties["nodeSetup"]["setupTask"]["stdOutErrPathPrefix"], env)) / (
        cluster.runtime["setupOutputSuffix"]
    )


def _settle(ctx: Context, node: Node, state: str, now: float, errors: list[dict[str, Any]]) -> bool:
    with ctx.state.transaction() as db:
        current = next((item for item in store.nodes(db, node.cluster_key) if item.node_id == node.node_id), None)
        if current is None or current.state != "preparing":
            return False
        current.state, current.since, current.due_at = state, now, None
        setup = current.runtime.pop("setup", None)
        if setup is not None:
            record = TaskRecord.from_json(setup)
            if ctx.processes.members(record):
                current.runtime[SETUP_LEFTOVERS] = setup  # they run while the node exists
            else:
                ctx.processes.release(record)
        if errors:
            current.runtime["errors"] = errors
        store.save_node(db, current)
    return True


def _node_error(code: str, message: str, node: Node, **details: Any) -> dict[str, Any]:
    pairs = [{"name": "nodeId", "value": node.node_id}] + [
        {"name": name, "value": str(value)} for name, value in details.items()
    ]
    return {"code": code, "message": message, "details": pairs}


def _setup_failure(cluster: Resource, node: Node, exit_code: int | None) -> dict[str, Any]:
    if exit_code is None:
        message = "The setup task was killed before it finished"
    else:
        message = (
            f"The setup task failed with exit code {exit_code}; its output is in stdout-{node.node_id}.txt and"
            f" stderr-{node.node_id}.txt under {cluster.properties['nodeSetup']['setupTask']['stdOutErrPathPrefix']}"
            f"/{cluster.runtime['setupOutputSuffix']}"
        )
    return _node_error("SetupTaskFailed", message, node, exitCode=exit_code)


def new_setup_output_suffix(subscription: str, resource_group: str, workspace: str, cluster: str) -> str:
    """`nodeSetup.setupTask.stdOutErrPathSuffix`, fixed at creation like the service did."""
    return f"{subscription}/{resource_group}/workspaces/{workspace}/clusters/{cluster}/{uuid.uuid4()}"
