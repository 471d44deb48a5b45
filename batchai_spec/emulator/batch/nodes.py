"""Pools and their compute nodes over time, moved by the Batch scheduler's clock (`@on_tick`), never by sleeps.

Allocation: a pool whose nodes differ from its target (fixed scale, the last auto-scale evaluation, 0 while it is
being deleted) is `Resizing`; after `delays.allocation_s` the missing nodes appear as `starting`, and once every
node is in (or has left) the pool is `Steady`. A starting node boots for `delays.node_preparation_s`, then its
file systems are mounted (`fsmounts/<relativeMountPath>` -> the share's directory; a missing share, account or a
wrong key makes it `unusable` with a `MountConfigurationError`), then its start task runs as a real process
(`waitingforstarttask` while one with `waitForSuccess` runs; `idle` after, or `starttaskfailed` when it exits
non-zero after its retries). Shrinking: nodes without a task leave first (`unusable`, `starttaskfailed`, `starting`,
`waitingforstarttask`, then `idle`; newest first), nodes with a task as `nodeDeallocationOption` says: `requeue`
and `terminate` make them `leavingpool` at once (the task runner sees that and stops the task), `taskcompletion` and
`retaineddata` let the task finish first (no new task is scheduled on them). A `leavingpool` node is gone
`delays.node_leaving_s` later, once its start task's processes are gone and no task holds it (`task_key` NULL).
`stopResize`: allocations not yet made are cancelled; the pool is `Stopping` while nodes already leaving leave,
then `Steady` where it is (with a `ResizeStopped` error) until its scale settings change.

A node's directory is `ctx.nodes_root/<account>/<pool>/<node_id>/` with `startup/` (the start task's directory:
`stdout.txt`, `stderr.txt`, `wd/`), `shared/`, `fsmounts/`, `workitems/` (the task runner's:
`workitems/{job}/job-1/{task}/wd`) and `bin/` (the image's `python3` and `python`, first on every task's PATH;
see task_environment.py).

`batch_nodes.runtime` keys (read by the data plane): `ip` ("127.10.0.N", see `_free_ip`), `root` (the node
directory), `isDedicated`, `vmSize`, `allocationTime`, `lastBootTime` (ISO 8601), `schedulingState`
("enabled"/"disabled": a node leaving after its task takes no new one), `startTask` (the pool's start task when the
node started, ARM spelling), `startTaskInfo` (data-plane spelling: state running|completed, startTime, endTime, exitCode, result
success|failure, retryCount, lastRetryTime, failureInfo), `errors` (data-plane `[{code, message, errorDetails}]`);
the emulator's own: `startTaskProcess`, `startTaskLeftovers`, `leaveAfterTask`, `signalledAt`, `killedAt`.
"""

from __future__ import annotations

import copy
import logging
import os
import secrets
import shlex
import shutil
import signal
import sqlite3
from pathlib import Path
from typing import Any

from batchai_spec.emulator.batch import accounts, store
from batchai_spec.emulator.batch.service import Context, on_stop, on_tick
from batchai_spec.emulator.batch.store import Account, Node, Pool
from batchai_spec.emulator.batch.task_environment import NodePaths, image_path
from batchai_spec.emulator.batchai.mounts import MountError, check_account_key, parse_azure_file_url
from batchai_spec.emulator.batchai.processes import Step, TaskRecord, task_script
from batchai_spec.emulator.batchai.vm_sizes import lookup
from batchai_spec.emulator.clock import iso8601
from batchai_spec.emulator.files.store import share_directory
from batchai_spec.emulator.lro import finish_operation
from batchai_spec.emulator.machine import machine_environment

logger = logging.getLogger("batchai_spec.emulator")

STARTING, WAITING, IDLE, RUNNING = "starting", "waitingforstarttask", "idle", "running"
START_TASK_FAILED, UNUSABLE, LEAVING = "starttaskfailed", "unusable", "leavingpool"
# Which nodes go first when a pool shrinks.
_REMOVAL_ORDER = {UNUSABLE: 0, START_TASK_FAILED: 1, STARTING: 2, WAITING: 3, IDLE: 4, RUNNING: 5}
# A leaving node whose task the task runner never released goes anyway this long after it was due (plus the
# grace periods), so a lost task cannot keep a pool resizing for ever.
_TASK_RELEASE_LIMIT_S = 10.0
MOUNT_ERROR_MESSAGE = "There was an error attempting to configure the specified mounts."
START_TASK_FAILURE = {
    "category": "UserError",
    "code": "FailureExitCode",
    "message": "The task exited with an exit code representing a failure",
    "details": [{"name": "Message", "value": "The task process exited with an unexpected exit code"},
                {"name": "AdditionalErrorCode", "value": "FailureExitCode"}],
}


# ----------------------------------------------------------------------------------------------- targets


def targets(pool: Pool, *, held: bool = True) -> tuple[int, int]:
    """(dedicated, low-priority) nodes the pool is heading for: 0 while it is being deleted; the fixed scale's
    targets; the last auto-scale evaluation's (0 before the first); after a stopResize, the counts it stopped at
    (`held`), until the scale settings or the auto-scale result change."""
    if pool.deleting:
        return 0, 0
    scale = pool.properties.get("scaleSettings") or {}
    if "autoScale" in scale:
        auto = pool.runtime.get("autoScale") or {}
        wanted = (int(auto.get("dedicated", 0)), int(auto.get("lowPriority", 0)))
    else:
        fixed = scale.get("fixedScale") or {}
        wanted = (int(fixed.get("targetDedicatedNodes", 0)), int(fixed.get("targetLowPriorityNodes", 0)))
    hold = pool.runtime.get("stopped")
    if held and hold is not None and hold["scaleSettings"] == scale and tuple(hold["target"]) == wanted:
        return hold["dedicated"], hold["lowPriority"]
    return wanted


def deallocation_option(pool: Pool) -> str:
    """What happens to a running task when its node must go: requeue|terminate|taskcompletion|retaineddata."""
    if pool.deleting:
        return "terminate"
    scale = pool.properties.get("scaleSettings") or {}
    if "autoScale" in scale:
        option = (pool.runtime.get("autoScale") or {}).get("nodeDeallocationOption")
    else:
        option = (scale.get("fixedScale") or {}).get("nodeDeallocationOption")
    return (option or "requeue").lower()


def is_schedulable(node: Node) -> bool:
    """Whether the task runner may start a task on the node."""
    return node.state == IDLE and node.runtime.get("schedulingState", "enabled") == "enabled" and node.task_key is None


def settle_allocation(db: sqlite3.Connection, pool: Pool, moment: float) -> None:
    """Bring the pool's status up to date with its nodes and targets (current counts, allocation state, resize
    operation); changes `pool` only, the caller saves it."""
    nodes = store.list_nodes(db, pool.account, pool.name)
    present = [node for node in nodes if node.state != LEAVING]
    pool.status["currentDedicatedNodes"] = sum(1 for node in present if node.runtime.get("isDedicated", True))
    pool.status["currentLowPriorityNodes"] = len(present) - pool.status["currentDedicatedNodes"]
    _record_resize(pool, moment)
    staying = [node for node in present if not node.runtime.get("leaveAfterTask")]
    counts = (sum(1 for node in staying if node.runtime.get("isDedicated", True)),
              sum(1 for node in staying if not node.runtime.get("isDedicated", True)))
    leaving = any(node.state == LEAVING or node.runtime.get("leaveAfterTask") for node in nodes)
    if pool.runtime.get("stopping"):
        if any(node.state == LEAVING for node in nodes):
            allocation = "Stopping"
        else:
            pool.runtime.pop("stopping")
            allocation = "Steady"
    elif "allocationDue" in pool.runtime or leaving or counts != targets(pool):
        allocation = "Resizing"
    else:
        allocation = "Steady"
    if allocation != pool.status.get("allocationState"):
        pool.status["allocationState"] = allocation
        pool.status["allocationStateTransitionTime"] = iso8601(moment)


def stop_resize(db: sqlite3.Connection, pool: Pool, moment: float) -> None:
    """See pools.stop_resize (this changes the nodes that were to leave after their task, and `pool`)."""
    if pool.status.get("allocationState") != "Resizing":
        return
    nodes = store.list_nodes(db, pool.account, pool.name)
    for node in nodes:
        if node.runtime.pop("leaveAfterTask", None):
            node.runtime["schedulingState"] = "enabled"
            store.save_node(db, node)
    staying = [node for node in nodes if node.state != LEAVING]
    dedicated = sum(1 for node in staying if node.runtime.get("isDedicated", True))
    low_priority = len(staying) - dedicated
    wanted = targets(pool, held=False)
    pool.runtime["stopped"] = {
        "scaleSettings": copy.deepcopy(pool.properties.get("scaleSettings") or {}), "target": list(wanted),
        "dedicated": dedicated, "lowPriority": low_priority,
    }
    pool.runtime.pop("allocationDue", None)
    pool.runtime["stopping"] = True
    errors = []
    for kind, have, want in (("dedicated", dedicated, wanted[0]), ("low priority", low_priority, wanted[1])):
        if have != want:
            verb = "allocated" if have < want else "removed"
            errors.append({"code": "ResizeStopped",
                           "message": f"Desired number of {kind} nodes could not be {verb} due to a stop resize"
                                      " operation"})
    resize = pool.status.setdefault("resizeOperationStatus", {"startTime": iso8601(moment)})
    resize["errors"] = errors
    pool.status["allocationState"] = "Stopping"
    pool.status["allocationStateTransitionTime"] = iso8601(moment)


def node_environment(account: Account, pool: Pool, node: Node) -> dict[str, str]:
    """The `AZ_BATCH_*` variables every task on the node gets (reference §5); task-specific ones are the caller's."""
    root = Path(node.runtime["root"])
    return {
        "AZ_BATCH_ACCOUNT_NAME": account.name,
        "AZ_BATCH_ACCOUNT_URL": accounts.account_url(account),
        "AZ_BATCH_POOL_ID": pool.name,
        "AZ_BATCH_NODE_ID": node.node_id,
        "AZ_BATCH_NODE_IS_DEDICATED": "true" if node.runtime.get("isDedicated", True) else "false",
        "AZ_BATCH_NODE_ROOT_DIR": str(root),
        "AZ_BATCH_NODE_STARTUP_DIR": str(root / "startup"),
        "AZ_BATCH_NODE_STARTUP_WORKING_DIR": str(root / "startup" / "wd"),
        "AZ_BATCH_NODE_SHARED_DIR": str(root / "shared"),
        "AZ_BATCH_NODE_MOUNTS_DIR": str(root / "fsmounts"),
    }


def user_identity_name(task: dict[str, Any]) -> str:
    """`AZ_BATCH_TASK_USER_IDENTITY`: `PoolNonAdmin`, `TaskAdmin`, ... or a named user's name."""
    identity = task.get("userIdentity") or {}
    if identity.get("userName"):
        return identity["userName"]
    auto_user = identity.get("autoUser") or {}
    scope = str(auto_user.get("scope", "Pool")).lower()
    elevation = str(auto_user.get("elevationLevel", "NonAdmin")).lower()
    return ("Pool" if scope == "pool" else "Task") + ("Admin" if elevation == "admin" else "NonAdmin")


# ----------------------------------------------------------------------------------------------- the clock


@on_tick
def advance(ctx: Context, now: float) -> bool:
    """One step for every pool, then accounts whose deletion is complete; True when anything changed."""
    changed = False
    for pool in store.list_pools(ctx.state.connection()):
        changed |= _allocate(ctx, pool.account, pool.name, now)
        changed |= _advance_nodes(ctx, pool.account, pool.name, now)
    changed |= _finish_account_deletions(ctx)
    return changed


@on_stop
def stop_start_tasks(ctx: Context) -> None:
    """Emulator shutdown: SIGTERM to every start task's processes (and what finished ones left running), SIGKILL
    after the grace period; a start task cut short this way runs again when the emulator next starts."""
    connection = ctx.state.connection()
    records: list[TaskRecord] = []
    for pool in store.list_pools(connection):
        for node in store.list_nodes(connection, pool.account, pool.name):
            records.extend(_start_task_records(node))
    if not records:
        return
    for record in records:
        ctx.processes.signal_tree(record, signal.SIGTERM)
    left = ctx.processes.wait_gone(records, ctx.config.terminate_grace_s)
    for record in left:
        ctx.processes.signal_tree(record, signal.SIGKILL)
    if left:
        left = ctx.processes.wait_gone(left, ctx.config.kill_wait_s)
    for record in records:
        if record not in left:
            ctx.processes.outcome(record)
            ctx.processes.release(record)
    with ctx.state.transaction() as db:
        for pool in store.list_pools(db):
            for node in store.list_nodes(db, pool.account, pool.name):
                if "startTaskProcess" in node.runtime or "startTaskLeftovers" in node.runtime:
                    node.runtime.pop("startTaskProcess", None)
                    node.runtime.pop("startTaskLeftovers", None)
                    store.save_node(db, node)


def _allocate(ctx: Context, account_name: str, pool_name: str, now: float) -> bool:
    gone: list[Node] = []
    finished: list[str] = []
    removed_pool: Pool | None = None
    with ctx.state.transaction() as db:
        pool = store.get_pool(db, account_name, pool_name)
        if pool is None:
            return False
        before = (copy.deepcopy(pool.status), copy.deepcopy(pool.runtime))
        hold = pool.runtime.get("stopped")
        if hold is not None and (hold["scaleSettings"] != (pool.properties.get("scaleSettings") or {})
                                 or tuple(hold["target"]) != targets(pool, held=False)):
            pool.runtime.pop("stopped")  # the scale changed since the stop: a new resize
        nodes = store.list_nodes(db, account_name, pool_name)
        node_changes = False
        if not pool.runtime.get("stopping"):
            node_changes |= _resize(ctx, db, pool, nodes, now)
        for node in store.list_nodes(db, account_name, pool_name):
            if node.runtime.get("leaveAfterTask") and node.task_key is None:
                node.runtime.pop("leaveAfterTask")
                _start_leaving(ctx, node, now)
                store.save_node(db, node)
                node_changes = True
        for node in store.list_nodes(db, account_name, pool_name):
            if node.state != LEAVING:
                continue
            before_node = copy.deepcopy(node.runtime)
            if _processes_left(ctx, node, now):
                pass
            elif (node.due_at or 0) <= now and (
                    node.task_key is None or now >= (node.due_at or 0) + _release_limit(ctx)):
                if node.task_key is not None:
                    logger.warning("node %s left pool %s with task %s still assigned", node.node_id, pool_name,
                                   node.task_key)
                store.delete_node_row(db, node)
                gone.append(node)
                node_changes = True
                continue
            if node.runtime != before_node:
                store.save_node(db, node)
                node_changes = True
        settle_allocation(db, pool, now)
        if pool.deleting and not store.list_nodes(db, account_name, pool_name):
            store.delete_pool_row(db, account_name, pool_name)
            finished = pool.runtime.get("deleteOperations", [])
            removed_pool = pool
        elif (pool.status, pool.runtime) != before:
            store.save_pool(db, pool)
        changed = node_changes or (pool.status, pool.runtime) != before or removed_pool is not None
    for node in gone:
        _remove_directories(ctx, node)
    if removed_pool is not None:
        shutil.rmtree(ctx.nodes_root / removed_pool.account / removed_pool.name, ignore_errors=True)
        shutil.rmtree(_scripts_root(ctx) / removed_pool.account / removed_pool.name, ignore_errors=True)
    for operation_id in finished:
        finish_operation(ctx.state, operation_id)
    return changed


def _resize(ctx: Context, db: sqlite3.Connection, pool: Pool, nodes: list[Node], now: float) -> bool:
    changed = False
    option = deallocation_option(pool)
    if option not in ("taskcompletion", "retaineddata"):
        # Nodes waiting for their task to end (an earlier option, say) leave now: the task runner stops the task.
        for node in nodes:
            if node.runtime.pop("leaveAfterTask", None):
                _start_leaving(ctx, node, now)
                store.save_node(db, node)
                changed = True
    shortfall: dict[bool, int] = {}
    for dedicated, target in zip((True, False), targets(pool)):
        mine = [node for node in nodes if node.runtime.get("isDedicated", True) == dedicated and node.state != LEAVING]
        staying = [node for node in mine if not node.runtime.get("leaveAfterTask")]
        if len(staying) < target:
            # Nodes that were to leave after their task stay after all, before any new one is allocated.
            for node in [node for node in mine if node.runtime.get("leaveAfterTask")][:target - len(staying)]:
                node.runtime.pop("leaveAfterTask")
                node.runtime["schedulingState"] = "enabled"
                store.save_node(db, node)
                staying.append(node)
                changed = True
        if len(staying) < target:
            shortfall[dedicated] = target - len(staying)
        elif len(staying) > target:
            changed |= _remove_excess(ctx, db, staying, len(staying) - target, option, now)
    if shortfall:
        due = pool.runtime.setdefault("allocationDue", now + ctx.config.delays.allocation_s)
        if due <= now:
            errors = []
            for dedicated, count in shortfall.items():
                allowed = _within_core_quota(db, pool, dedicated, count)
                for _ in range(allowed):
                    _add_node(ctx, db, pool, dedicated, now)
                if allowed < count:
                    errors.append(_quota_error(dedicated))
            if errors:
                # The resize ends where the quota stopped it, as a stopped resize does (held until the scale
                # settings change), with the reason in its errors.
                allocated = [node for node in store.list_nodes(db, pool.account, pool.name) if node.state != LEAVING]
                dedicated_now = sum(1 for node in allocated if node.runtime.get("isDedicated", True))
                pool.runtime["stopped"] = {
                    "scaleSettings": copy.deepcopy(pool.properties.get("scaleSettings") or {}),
                    "target": list(targets(pool, held=False)),
                    "dedicated": dedicated_now, "lowPriority": len(allocated) - dedicated_now,
                }
                resize = pool.status.setdefault("resizeOperationStatus", {"startTime": iso8601(now)})
                resize["errors"] = errors
            pool.runtime.pop("allocationDue")
            changed = True
    else:
        pool.runtime.pop("allocationDue", None)
    return changed


def _remove_excess(ctx: Context, db: sqlite3.Connection, staying: list[Node], excess: int, option: str,
                   now: float) -> bool:
    changed = False
    ordered = sorted(staying, key=lambda node: (node.task_key is not None, _REMOVAL_ORDER.get(node.state, 9),
                                                -node.seq))
    for node in ordered[:excess]:
        if node.task_key is not None and option in ("taskcompletion", "retaineddata"):
            node.runtime["leaveAfterTask"] = True
            node.runtime["schedulingState"] = "disabled"
        else:
            _start_leaving(ctx, node, now)  # with a task (requeue, terminate): the task runner stops it
        store.save_node(db, node)
        changed = True
    return changed


def _cores(vm_size: str) -> int:
    return lookup(vm_size).cores


def _within_core_quota(db: sqlite3.Connection, pool: Pool, dedicated: bool, wanted: int) -> int:
    """How many of `wanted` new nodes the account's core quota (dedicated or low-priority) still allows, as Azure
    allocates what fits and reports the rest; also what keeps a pool of 100,000 nodes from being made at all."""
    account = store.account_by_name(db, pool.account)
    properties = account.body.get("properties", {}) if account else {}
    quota = int(properties.get("dedicatedCoreQuota" if dedicated else "lowPriorityCoreQuota", accounts.CORE_QUOTA))
    used = sum(
        _cores(node.runtime.get("vmSize", ""))
        for other in store.list_pools(db, pool.account)
        for node in store.list_nodes(db, pool.account, other.name)
        if node.runtime.get("isDedicated", True) == dedicated and node.state != LEAVING
    )
    return max(0, min(wanted, (quota - used) // _cores(str(pool.properties.get("vmSize", "")))))


def _quota_error(dedicated: bool) -> dict[str, str]:
    kind = "dedicated" if dedicated else "low priority"
    return {
        "code": "AccountCoreQuotaReached",
        "message": f"The specified account has reached its {kind} core quota: the pool was allocated the nodes that fit",
    }


def _start_leaving(ctx: Context, node: Node, now: float) -> None:
    node.state, node.since, node.due_at = LEAVING, now, now + ctx.config.delays.node_leaving_s
    node.runtime["schedulingState"] = "disabled"


def _add_node(ctx: Context, db: sqlite3.Connection, pool: Pool, dedicated: bool, now: float) -> None:
    node_id = f"tvmps_{secrets.token_hex(32)}_{'d' if dedicated else 'p'}"
    root = ctx.nodes_root / pool.account / pool.name / node_id
    for directory in ("startup", "shared", "fsmounts", "workitems"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    runtime = {
        "ip": _free_ip(db, pool),
        "root": str(root),
        "isDedicated": dedicated,
        "vmSize": str(pool.properties.get("vmSize", "")).lower(),
        "allocationTime": iso8601(now),
        "schedulingState": "enabled",
    }
    store.insert_node(db, Node(pool.account, pool.name, node_id, STARTING, since=now,
                               due_at=now + ctx.config.delays.node_preparation_s, task_key=None, runtime=runtime))


def _free_ip(db: sqlite3.Connection, pool: Pool) -> str:
    """127.10.0.4 upwards, as Azure numbers a pool's nodes in its subnet (10.0.0.4, ...): loopback addresses, all of
    them this machine on Linux, so that what a task's process listens on at its node's address (torch.distributed's
    rendezvous on AZ_BATCH_MASTER_NODE, an MPI daemon) is reachable there from the task's other nodes."""
    used = {node.runtime.get("ip") for node in store.list_nodes(db, pool.account, pool.name)}
    number = 4
    while f"127.10.{number // 256}.{number % 256}" in used:
        number += 1
    return f"127.10.{number // 256}.{number % 256}"


def _release_limit(ctx: Context) -> float:
    return ctx.config.terminate_grace_s + ctx.config.kill_wait_s + _TASK_RELEASE_LIMIT_S


def _record_resize(pool: Pool, moment: float) -> None:
    """`resizeOperationStatus`: the resize under way, or the last one (a new one when the target changes)."""
    wanted = list(targets(pool, held=False))
    if pool.deleting or pool.runtime.get("resizeTarget", [0, 0]) == wanted:
        return
    pool.runtime["resizeTarget"] = wanted
    scale = pool.properties.get("scaleSettings") or {}
    fixed = scale.get("fixedScale") or {}
    status: dict[str, Any] = {
        "targetDedicatedNodes": wanted[0],
        "resizeTimeout": fixed.get("resizeTimeout", "PT15M"),
        "startTime": iso8601(moment),
    }
    if wanted[1]:
        status["targetLowPriorityNodes"] = wanted[1]
    option = fixed.get("nodeDeallocationOption") or (pool.runtime.get("autoScale") or {}).get("nodeDeallocationOption")
    if option:
        status["nodeDeallocationOption"] = _arm_option(option)
    pool.status["resizeOperationStatus"] = status
    pool.runtime.pop("stopped", None)


def _arm_option(option: str) -> str:
    return {"requeue": "Requeue", "terminate": "Terminate", "taskcompletion": "TaskCompletion",
            "retaineddata": "RetainedData"}.get(option.lower(), option)


# ----------------------------------------------------------------------------------------------- nodes


def _advance_nodes(ctx: Context, account_name: str, pool_name: str, now: float) -> bool:
    connection = ctx.state.connection()
    pool = store.get_pool(connection, account_name, pool_name)
    account = store.account_by_name(connection, account_name)
    if pool is None or account is None:
        return False
    changed = False
    for node in store.list_nodes(connection, account_name, pool_name):
        if node.state == LEAVING:
            continue
        if node.state == STARTING and (node.due_at or 0) <= now:
            changed |= _prepare(ctx, account, pool, node, now)
        elif "startTaskProcess" in node.runtime:
            changed |= _check_start_task(ctx, account, pool, node, now)
        elif (node.runtime.get("startTaskInfo") or {}).get("state") == "running":
            # Cut short by an emulator shutdown: it runs again (as after a reboot).
            changed |= _launch_start_task(ctx, account, pool, node, now)
    return changed


def _prepare(ctx: Context, account: Account, pool: Pool, node: Node, now: float) -> bool:
    root = Path(node.runtime["root"])
    for directory in ("startup", "shared", "fsmounts", "workitems"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    errors = _mount(ctx, pool, root / "fsmounts")
    start_task = copy.deepcopy(pool.properties.get("startTask"))

    def booted(current: Node) -> None:
        current.runtime["lastBootTime"] = iso8601(now)
        current.due_at = None
        if start_task is not None:
            current.runtime["startTask"] = start_task
        if errors:
            current.runtime["errors"] = errors
            current.state, current.since = UNUSABLE, now
        elif start_task is None:
            current.state, current.since = IDLE, now

    if not _update_node(ctx, node, (STARTING,), booted):
        return False
    if errors or start_task is None:
        return True
    _launch_start_task(ctx, account, pool, store.get_node(ctx.state.connection(), node.account, node.pool,
                                                         node.node_id), now)
    return True


def _mount(ctx: Context, pool: Pool, mounts_dir: Path) -> list[dict[str, Any]]:
    """Link each Azure File share into the node's mounts directory; the node's errors for the first that fails."""
    for mount in pool.properties.get("mountConfiguration") or []:
        share = mount.get("azureFileShareConfiguration")
        if share is None:
            continue
        path = share["relativeMountPath"]
        try:
            account, share_name = parse_azure_file_url(share["azureFileUrl"])
            what = f"Azure File share {share['azureFileUrl']}"
            if share["accountName"].lower() != account:
                raise MountError(f"{what}: accountName {share['accountName']} does not match the URL's account")
            check_account_key(ctx.state, account, {"accountKey": share.get("accountKey")}, what)
            try:
                target = share_directory(ctx.state, account, share_name).resolve()
            except LookupError:
                raise MountError(f"{what}: the share {share_name} does not exist in the storage account"
                                 f" {account}") from None
            entry = mounts_dir / path
            entry.parent.mkdir(parents=True, exist_ok=True)
            if entry.is_symlink():
                entry.unlink()
            os.symlink(target, entry, target_is_directory=True)
        except (MountError, OSError) as error:
            return [{
                "code": "MountConfigurationError",
                "message": MOUNT_ERROR_MESSAGE,
                "errorDetails": [{"name": "MountConfigurationPath", "value": path},
                                 {"name": "MountConfigurationErrorMessage", "value": str(error)}],
            }]
    return []


def _launch_start_task(ctx: Context, account: Account, pool: Pool, node: Node | None, now: float) -> bool:
    """Run the node's start task (again, on a retry); the node waits for it when it says waitForSuccess."""
    if node is None or node.state == LEAVING:
        return False
    task = node.runtime.get("startTask") or {}
    root = Path(node.runtime["root"])
    startup = root / "startup"
    working = startup / "wd"
    working.mkdir(parents=True, exist_ok=True)
    info = dict(node.runtime.get("startTaskInfo") or {})
    first = not info
    stdout, stderr = startup / "stdout.txt", startup / "stderr.txt"
    if first:
        stdout.write_text("")
        stderr.write_text("")
    # Batch's own variables win over the start task's environmentSettings: Azure reserves the AZ_BATCH_* names, so
    # a setting of one of them does not change what the task sees.
    env = {
        **ctx.host_env,
        **machine_environment(),  # the image's MPI settings (task_environment.py)
        **{item["name"]: str(item.get("value", "")) for item in task.get("environmentSettings") or []},
        **node_environment(account, pool, node),
        "AZ_BATCH_TASK_DIR": str(startup),
        "AZ_BATCH_TASK_WORKING_DIR": str(working),
        "AZ_BATCH_TASK_USER_IDENTITY": user_identity_name(task),
    }
    env["PATH"] = image_path(NodePaths(root), ctx.config.job_python, env.get("PATH"))
    argv = _argv(task.get("commandLine", ""), env, working)
    info.update({"state": "running", "startTime": iso8601(now)})
    info.setdefault("retryCount", 0)
    for name in ("endTime", "exitCode", "result", "failureInfo"):
        info.pop(name, None)
    if argv is None:
        failure = {"category": "UserError", "code": "CommandProgramNotFound",
                   "message": "The specified command program is not found",
                   "details": [{"name": "Message", "value": f"cannot run {task.get('commandLine', '')!r}"}]}
        info.update({"state": "completed", "endTime": iso8601(now), "result": "failure", "failureInfo": failure})
        return _update_node(ctx, node, (STARTING, WAITING, IDLE, RUNNING),
                            lambda current: _start_task_ended(current, task, info, now, success=False))
    scripts = _scripts_root(ctx) / node.account / node.pool / node.node_id
    scripts.mkdir(parents=True, exist_ok=True)
    script = scripts / "starttask.sh"
    script.write_text(task_script([Step("command", argv, stdout, stderr)], script.with_suffix(".exit")))
    record = ctx.processes.launch(script, env, working, use_cgroup=ctx.config.use_cgroups)

    def running(current: Node) -> None:
        current.runtime["startTaskProcess"] = record.to_json()
        current.runtime["startTaskInfo"] = info
        if current.state == STARTING:
            current.state, current.since = (WAITING if task.get("waitForSuccess", True) else IDLE), now

    if not _update_node(ctx, node, (STARTING, WAITING, IDLE, RUNNING), running):
        ctx.processes.signal_tree(record, signal.SIGKILL)  # the node left meanwhile
        ctx.processes.wait_gone([record], ctx.config.kill_wait_s)
        ctx.processes.outcome(record)
        ctx.processes.release(record)
    return True


def _argv(command_line: str, env: dict[str, str], working: Path) -> list[str] | None:
    """The command line split as Batch runs it (no shell); None when it cannot be run."""
    try:
        argv = shlex.split(command_line)
    except ValueError:
        return None
    if not argv:
        return None
    program = argv[0]
    if "/" in program:
        path = Path(program) if os.path.isabs(program) else working / program
        return argv if path.is_file() and os.access(path, os.X_OK) else None
    return argv if shutil.which(program, path=env.get("PATH", os.defpath)) else None


def _check_start_task(ctx: Context, account: Account, pool: Pool, node: Node, now: float) -> bool:
    record = TaskRecord.from_json(node.runtime["startTaskProcess"])
    outcome = ctx.processes.outcome(record)
    if outcome is None:
        return False
    left_running = bool(ctx.processes.members(record))
    task = node.runtime.get("startTask") or {}
    info = dict(node.runtime.get("startTaskInfo") or {})
    success = outcome.exit_code == 0
    retries, limit = info.get("retryCount", 0), task.get("maxTaskRetryCount", 0)
    retry = not success and (limit == -1 or retries < limit)
    info.update({"state": "completed", "endTime": iso8601(now), "result": "success" if success else "failure"})
    if outcome.exit_code is not None:
        info["exitCode"] = outcome.exit_code
    if not success:
        info["failureInfo"] = copy.deepcopy(START_TASK_FAILURE)
    if retry:
        info["retryCount"] = retries + 1
        info["lastRetryTime"] = iso8601(now)

    def ended(current: Node) -> None:
        current.runtime.pop("startTaskProcess", None)
        if left_running:
            current.runtime.setdefault("startTaskLeftovers", []).append(record.to_json())
        if retry:
            current.runtime["startTaskInfo"] = info
        else:
            _start_task_ended(current, task, info, now, success=success)

    if not left_running:
        ctx.processes.release(record)
    if not _update_node(ctx, node, (WAITING, IDLE, RUNNING, START_TASK_FAILED, UNUSABLE), ended):
        return False
    if retry:
        _launch_start_task(ctx, account, pool, store.get_node(ctx.state.connection(), node.account, node.pool,
                                                             node.node_id), now)
    return True


def _start_task_ended(node: Node, task: dict[str, Any], info: dict[str, Any], now: float, *, success: bool) -> None:
    node.runtime["startTaskInfo"] = info
    if node.state in (STARTING, WAITING):
        if success or not task.get("waitForSuccess", True):
            node.state = IDLE
        else:
            node.state = START_TASK_FAILED
        node.since = now


def _update_node(ctx: Context, node: Node, states: tuple[str, ...], change) -> bool:
    """Apply `change(current)` to the node as it is now, if it still exists in one of `states`; saves it."""
    with ctx.state.transaction() as db:
        current = store.get_node(db, node.account, node.pool, node.node_id)
        if current is None or current.state not in states:
            return False
        change(current)
        store.save_node(db, current)
    return True


def _start_task_records(node: Node) -> list[TaskRecord]:
    documents = ([node.runtime["startTaskProcess"]] if "startTaskProcess" in node.runtime else []) + list(
        node.runtime.get("startTaskLeftovers") or [])
    return [TaskRecord.from_json(document) for document in documents]


def _processes_left(ctx: Context, node: Node, now: float) -> bool:
    """A leaving node's start task, or what it left running: SIGTERM at once, SIGKILL once the node is due and
    the grace period has passed; True while any of its processes is left. Changes `node.runtime` only."""
    records = _start_task_records(node)
    if not records:
        return False
    members = {record: ctx.processes.members(record) for record in records}
    signalled, killed = node.runtime.get("signalledAt"), node.runtime.get("killedAt")
    if not any(members.values()) or (killed is not None and now - killed >= ctx.config.kill_wait_s):
        for record, left in members.items():
            if left:
                logger.warning("node %s: start task processes still present after SIGKILL: %s", node.node_id,
                               sorted(left))
            ctx.processes.outcome(record)
            ctx.processes.release(record)
        for name in ("startTaskProcess", "startTaskLeftovers", "signalledAt", "killedAt"):
            node.runtime.pop(name, None)
        return False
    if signalled is None:
        for record in records:
            ctx.processes.signal_tree(record, signal.SIGTERM)
        node.runtime["signalledAt"] = now
    elif killed is None and (node.due_at or 0) <= now and now - signalled >= ctx.config.terminate_grace_s:
        for record in records:
            ctx.processes.signal_tree(record, signal.SIGKILL)
        node.runtime["killedAt"] = now
    return True


def _remove_directories(ctx: Context, node: Node) -> None:
    """A node that left takes its directory (not the shares its mounts link to) and its scripts with it."""
    shutil.rmtree(node.runtime["root"], ignore_errors=True)
    shutil.rmtree(_scripts_root(ctx) / node.account / node.pool / node.node_id, ignore_errors=True)


def _scripts_root(ctx: Context) -> Path:
    """The emulator's own files for node processes (scripts, exit files), outside the nodes' directories."""
    return ctx.state.root / "batch-scripts"


# ----------------------------------------------------------------------------------------------- accounts


def _finish_account_deletions(ctx: Context) -> bool:
    changed = False
    for account in store.all_accounts(ctx.state.connection()):
        if not accounts.is_deleting(account):
            continue
        with ctx.state.transaction() as db:
            if store.list_pools(db, account.name) or store.account_by_name(db, account.name) is None:
                continue
            operations = accounts.remove_account(ctx.state, db, account.name)
        shutil.rmtree(ctx.nodes_root / account.name, ignore_errors=True)
        shutil.rmtree(_scripts_root(ctx) / account.name, ignore_errors=True)
        for operation_id in operations:
            finish_operation(ctx.state, operation_id)
        changed = True
    return changed
