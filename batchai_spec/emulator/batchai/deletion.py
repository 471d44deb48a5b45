"""Deleting Batch AI resources and what they contain, as the scheduler's steps (a DELETE only marks).

A resource being deleted shows `provisioningState: deleting` until it is gone; its DELETE operations finish then.
Workspaces take their clusters, file servers and experiments with them, experiments their jobs; a running job is
stopped first; clusters go once their nodes have left (see lifecycle.py). Deleting a resource group deletes its
workspaces the same way.
"""

from __future__ import annotations

import shutil
import sqlite3

from batchai_spec.emulator.arm.cascade import on_resource_group_deleted
from batchai_spec.emulator.batchai import ids, mounts, runner, store
from batchai_spec.emulator.batchai.context import Context
from batchai_spec.emulator.batchai.store import Resource
from batchai_spec.emulator.batchai.times import iso_millis
from batchai_spec.emulator.clock import now as clock_now
from batchai_spec.emulator.lro import finish_operation
from batchai_spec.emulator.state import State

DELETING = "deleting"
CHILD_KINDS = {"workspace": ("cluster", "fileserver", "experiment"), "experiment": ("job",)}


def mark_deleting(db: sqlite3.Connection, resource: Resource, now: float, operation_id: str | None = None) -> None:
    if resource.status.get("provisioningState") != DELETING:
        resource.status["provisioningState"] = DELETING
        resource.status["provisioningStateTransitionTime"] = iso_millis(now)
    if operation_id is not None:
        resource.runtime.setdefault("deleteOperations", []).append(operation_id)
    store.save(db, resource)


def advance(ctx: Context, now: float) -> bool:
    changed = False
    for resource in store.being_deleted(ctx.state.connection()):
        if resource.kind == "cluster":
            continue  # its nodes must leave first: lifecycle.py
        changed |= _step(ctx, resource.key, now)
    return changed


def _step(ctx: Context, key: str, now: float) -> bool:
    removed: Resource | None = None
    with ctx.state.transaction() as db:
        resource = store.get(db, key)
        if resource is None:
            return False
        if resource.kind == "job" and resource.status["executionState"] in runner.ACTIVE:
            if "stop" in resource.runtime:
                return False
            runner.request_stop(db, key, "delete")
            return True
        contents = [child for kind in CHILD_KINDS.get(resource.kind, ()) for child in store.children(db, key, kind)]
        newly_marked = [child for child in contents if child.status.get("provisioningState") != DELETING]
        for child in newly_marked:
            mark_deleting(db, child, now)
        if contents:
            return bool(newly_marked)
        store.delete(db, key)
        removed = resource
    if removed.kind == "job":
        shutil.rmtree(ctx.layout.shared_job_temp(removed.runtime["uuid"]), ignore_errors=True)
    if removed.kind == "fileserver":
        shutil.rmtree(mounts.file_server_data(ctx.layout.root, removed.id), ignore_errors=True)
    for operation_id in removed.runtime.get("deleteOperations", []) + removed.runtime.get("terminateOperations", []):
        finish_operation(ctx.state, operation_id)
    return True


@on_resource_group_deleted
def _delete_group_workspaces(state: State, resource_group: str) -> None:
    """Runs inside the resource group's deleting transaction; the scheduler finishes the work."""
    prefix = ids.workspace_id(state.subscription_id, resource_group, "")
    with state.transaction() as db:
        for workspace in store.with_key_prefix(db, prefix, "workspace"):
            mark_deleting(db, workspace, clock_now())
