"""Azure Batch jobs and tasks over time, the tasks run as real local processes (one scheduler step, `advance`).

Scheduling: an `active` task of an `active` job starts on `idle` nodes of the job's pool (`poolInfo.poolId`), one
task per node, jobs by `priority` (high first) then creation, tasks in creation order; `dependsOn` waits for the
named tasks to succeed; `maxParallelTasks` of the job is honoured. A multi-instance task needs
`numberOfInstances` idle nodes at once. The nodes go `running` with `task_key = "{job}/{task}"`.

A task's life (status fields in the data plane's spelling, see task_rows.py):
- `preparing` while the job preparation task runs on one of its nodes for the first time (once per node per job;
  its outcome is kept per node in the job's `runtime.preparationAndRelease`); a node whose preparation failed (after
  its retries) runs no task of that job: the task goes back to `active` and waits for another node;
- `running`: the command line (split, no shell) in `wd/`, stdout/stderr appended live to the task directory.
  Multi-instance: the coordination command runs on every node and must exit (0) before the primary command starts
  on the first node, as Batch does; what it left running in the background keeps running until the task ends (and
  is not tracked: the task completes when the primary command does). The nodes' addresses are distinct loopback
  addresses (nodes.py), so that processes meet across "nodes" as on Batch's network; each node's own address is in
  BATCHAI_EMULATOR_NODE_ADDRESS, and MPI (mpirun of the node image, task_environment.py) reaches the other nodes
  through an `ssh` stand-in (`OMPI_MCA_plm_rsh_agent` / `PRTE_MCA_plm_ssh_agent`, launches.py NODE_SSH): Open MPI
  5 starts its daemon through it for every host that is not `localhost` and the ranks run there, but such a run
  hangs at its end now and then (a few in a hundred; PRRTE expects no daemon on its own machine), which is why
  batchai-spec's launcher writes the hosts that are this machine as one `localhost` line;
- `completed` with `executionInfo` (exit code, result, failureInfo). A non-zero exit code retries the task up to
  `constraints.maxTaskRetryCount` (the task's, else the job's); `maxWallClockTime` stops it (failureInfo
  `ServerError`/`TaskEnded`); a terminate request stops it (`UserError`/`TaskEnded`).
A stopped task's processes get SIGTERM, SIGKILL after `terminate_grace_s` (batchai/processes.py), and the task ends
only once none is left; processes a finished command left behind are stopped the same way. The node then goes
back to `idle` (or stays in whatever state the pool put it, e.g. `leavingpool`) and `task_key` is cleared.

A node that is no longer `running` under its task (`leavingpool`, `rebooting`, removed) applies the pool's
`nodeDeallocationOption` (a reboot's `runtime.rebootOption`): `requeue` (default; the task goes back to `active`,
`requeueCount` + 1), `terminate` (completed, `TaskEnded`), `taskcompletion` / `retaineddata` (the task runs on;
the node waits for it).

Jobs: `onAllTasksComplete: terminatejob` once all its tasks completed, `constraints.maxWallClockTime` from the
job's creation and `onTaskFailure: performexitoptionsjobaction` make a job `terminating` (terminateReason
`AllTasksComplete`, `MaxWallClockTimeExpiry`, `TaskFailed`, in `runtime.terminateReason` and
`status.executionInfo.terminateReason`). The data plane asks with the job's `status.state` (see the contract in
dataplane/__init__.py): `terminating` (running tasks stopped and completed with `TaskEnded`, active tasks stay
active, job release tasks run on every node that ran the preparation, then `completed`), `deleting` (the same,
then the task rows, `workitems/{job}` on every node and the job row are deleted), `disabling` (`disableTasks`
requeue | terminate | wait from `runtime.disableTasks`; then `disabled`), `enabling` (-> `active`). A task's
`runtime.terminateRequested` asks to terminate it.

Written (task): status `state`, `stateTransitionTime`, `previousState`, `previousStateTransitionTime`,
`executionInfo`, `nodeInfo`, `subtasks` (multi-instance: what subtasksinfo answers, mirrored in runtime);
runtime `node` (the primary's node), `pool`, `nodes`, `taskDir` (absolute, on `node`: what the file API serves),
`taskDirs` (node -> dir), `processes` (the launch records), `subtasks`, `launch`, `phase`, `stop`, `startedAt`,
`retrying`, `retainUntil`, `filesDeleted`. (job): status `state` (see above), `executionInfo.endTime` /
`terminateReason`, `preparationAndReleaseTaskStatus` (list); runtime `preparationAndRelease` (node ->
`{poolId, nodeId, jobPreparationTaskExecutionInfo, jobReleaseTaskExecutionInfo}`), `nodeTasks` (the running
preparation/release processes per node), `releasePending`, `terminateReason`, `disableTasks` (for its own
disable action).

Emulator shutdown stops every process and requeues the tasks that ran (as Batch requeues the tasks of a node that
restarts); after a crash, a new emulator adopts the processes still running from their records (launches.py).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from batchai_spec.emulator.batch import nodes, store
from batchai_spec.emulator.batch import task_rows as rows
from batchai_spec.emulator.batch.launches import Launch, NoteLog, Proc, all_launches, drive_stop, procs_of, stop_all_now
from batchai_spec.emulator.batch.service import Context, on_stop, on_tick
from batchai_spec.emulator.batch.task_environment import (
    MultiInstance,
    NodePaths,
    TaskPlace,
    UnsafeId,
    command_argv,
    prepare_task_dir,
    preparation_id,
    release_id,
    task_environment,
)
from batchai_spec.emulator.batch.task_rows import BUSY, JobRow, NodeRow, TaskRow
from batchai_spec.emulator.batchai.processes import Step
from batchai_spec.emulator.clock import iso8601, now as clock_now

logger = logging.getLogger("batchai_spec.emulator")

PRIORITY_DEFAULT = 0
REQUEUE_REASONS = ("requeue", "disable-requeue", "lost", "shutdown")
STOP_WHY = {
    "terminate": "the task was terminated",
    "jobterminate": "its job is being terminated",
    "delete": "its job is being deleted",
    "disable-requeue": "its job is being disabled (running tasks requeued)",
    "disable-terminate": "its job is being disabled (running tasks terminated)",
    "wallclock": "it ran past its constraints.maxWallClockTime",
    "requeue": "its node is leaving the pool (nodeDeallocationOption requeue): the task will run again",
    "nodeterminate": "its node is leaving the pool (nodeDeallocationOption terminate)",
    "ended": "its command ended but left processes running",
    "lost": "its processes are gone without an exit code: the task will run again",
}


# ----------------------------------------------------------------------------------------------- the step


@on_tick
def advance(ctx: Context, now: float) -> bool:
    changed = _supervise_tasks(ctx, now)
    changed |= _supervise_node_tasks(ctx, now)
    changed |= _advance_jobs(ctx, now)
    changed |= _schedule(ctx, now)
    changed |= _sweep(ctx, now)
    changed |= _expire(ctx, now)
    _collect(ctx, now)
    return changed


def _paths(node: NodeRow) -> NodePaths:
    return NodePaths(Path(node.runtime["root"]))


# ----------------------------------------------------------------------------------------------- scheduling


def _schedule(ctx: Context, now: float) -> bool:
    db = ctx.state.connection()
    waiting: dict[tuple[str, str], list[tuple[JobRow, TaskRow]]] = {}
    jobs = {(job.account.lower(), job.job_id.lower()): job for job in rows.jobs_in_states(db, ("active",))}
    if not jobs:
        return False
    for task in rows.tasks_in_states(db, ("active",)):
        job = jobs.get((task.account.lower(), task.job_id.lower()))
        if job is None or job.pool_id is None or task.runtime.get("terminateRequested"):
            continue
        waiting.setdefault((job.account.lower(), job.pool_id.lower()), []).append((job, task))
    changed = False
    for (account, pool), candidates in waiting.items():
        idle = [node for node in rows.nodes_of_pool(db, account, pool)
                if node.state == "idle" and node.task_key is None
                and str(node.runtime.get("schedulingState", "enabled")).lower() != "disabled"
                and node.runtime.get("root")]
        if not idle:
            continue
        candidates.sort(key=lambda pair: (-int(pair[0].body.get("priority") or PRIORITY_DEFAULT), pair[0].seq,
                                          pair[1].seq))
        running: dict[str, int] = {}
        for job, task in candidates:
            if not idle:
                break
            try:
                started = _consider(ctx, db, job, task, idle, running, now)
            except Exception:  # one bad task must not stop the others being scheduled
                logger.exception("scheduling the Batch task %s/%s failed", task.job_id, task.task_id)
                continue
            if started is not None:
                chosen_ids = set(started)
                idle = [node for node in idle if node.node_id not in chosen_ids]
                running[job.job_id] = running.get(job.job_id, 0) + 1
                changed = True
    return changed


def _consider(ctx: Context, db, job: JobRow, task: TaskRow, idle: list[NodeRow], running: dict[str, int],
              now: float) -> list[str] | None:
    """Start one candidate task on idle nodes if it may run now; the ids of the nodes it took, else None."""
    limit = int(job.body.get("maxParallelTasks") or -1)
    if limit >= 0:
        if job.job_id not in running:
            states = rows.task_states_of_job(db, job.account, job.job_id)
            running[job.job_id] = sum(states.get(state, 0) for state in BUSY)
        if running[job.job_id] >= limit:
            return None
    if not _dependencies_met(db, task):
        return None
    usable = [node for node in idle if _may_run(job, node)]
    wanted = task.instances or 1
    if len(usable) < wanted:
        return None
    chosen = [node.node_id for node in usable[:wanted]]
    return chosen if _start(ctx, task, chosen, now) else None


def _may_run(job: JobRow, node: NodeRow) -> bool:
    """A node where the job's preparation failed (and the job waits for its success) runs none of its tasks."""
    preparation = job.body.get("jobPreparationTask")
    if not preparation or preparation.get("waitForSuccess") is False:
        return True
    info = ((job.runtime.get("preparationAndRelease") or {}).get(node.node_id) or {}).get(
        "jobPreparationTaskExecutionInfo") or {}
    return not (info.get("state") == "completed" and info.get("result") == "failure")


def _dependencies_met(db, task: TaskRow) -> bool:
    depends = task.body.get("dependsOn") or {}
    wanted = {str(name).lower() for name in depends.get("taskIds") or []}
    ranges = [(int(item["start"]), int(item["end"])) for item in depends.get("taskIdRanges") or []]
    if not wanted and not ranges:
        return True
    done = {}
    for other in rows.tasks_of_job(db, task.account, task.job_id):
        done[other.task_id.lower()] = (other.state == "completed"
                                       and (other.status.get("executionInfo") or {}).get("result") == "success")
    for name in wanted:
        if not done.get(name):
            return False
    # Count the succeeded tasks whose id is a number in the range rather than walk the range (it may be huge).
    numbers = [int(name) for name, ok in done.items() if ok and name.isdigit() and str(int(name)) == name]
    for start, end in ranges:
        if sum(1 for number in numbers if start <= number <= end) != end - start + 1:
            return False
    return True


def _start(ctx: Context, task: TaskRow, node_ids: list[str], now: float) -> bool:
    """Claim the nodes; run the job preparation where it has not run yet, else the task itself."""
    with ctx.state.transaction() as db:
        current = rows.get_task(db, task.account, task.job_id, task.task_id)
        job = rows.get_job(db, task.account, task.job_id)
        if current is None or job is None or current.state != "active" or job.state != "active":
            return False
        nodes = [rows.get_node(db, task.account, job.pool_id or "", node_id) for node_id in node_ids]
        if any(node is None or node.state != "idle" or node.task_key is not None for node in nodes):
            return False
        for node in nodes:
            node.state, node.since, node.task_key = "running", now, current.key
            rows.save_node(db, node)
        for transient in ("stop", "processes", "launch", "phase", "terminateRequested"):
            current.runtime.pop(transient, None)
        current.status.pop("subtasks", None)
        current.runtime["nodes"] = [node.node_id for node in nodes]
        current.runtime["node"] = nodes[0].node_id
        current.runtime["pool"] = job.pool_id
        waits = _prepare_nodes(ctx, db, job, nodes, now)
        if waits:
            rows.set_state(current.status, "preparing", now)
            current.runtime["phase"] = "preparing"
            current.status["nodeInfo"] = _node_info(db, job, nodes[0], current)
            rows.save_task(db, current)
            rows.save_job(db, job)
            return True
        rows.save_job(db, job)
        _launch(ctx, db, current, job, nodes, now)
        rows.save_task(db, current)
    return True


def _prepare_nodes(ctx: Context, db, job: JobRow, nodes: list[NodeRow], now: float) -> bool:
    """Start the job preparation on the nodes that have not run it; True when the task must wait for it."""
    preparation = job.body.get("jobPreparationTask")
    if not preparation:
        return False
    waits = False
    for node in nodes:
        info = _preparation_info(job, node.node_id)
        running = ((job.runtime.get("nodeTasks") or {}).get(node.node_id) or {}).get("preparation")
        if not info and not running:
            _start_node_task(ctx, job, node, "preparation", now, retry_count=0)
            info = _preparation_info(job, node.node_id)
        succeeded = info.get("state") == "completed" and info.get("result") == "success"
        if not succeeded and preparation.get("waitForSuccess", True) is not False:
            waits = True
    return waits


def _preparation_info(job: JobRow, node_id: str) -> dict[str, Any]:
    return ((job.runtime.get("preparationAndRelease") or {}).get(node_id) or {}).get(
        "jobPreparationTaskExecutionInfo") or {}


def _node_info(db, job: JobRow, node: NodeRow, task: TaskRow) -> dict[str, Any]:
    paths = _paths(node)
    relative = paths.relative(paths.task_dir(task.job_id, task.task_id))
    info = {"affinityId": f"TVM:{node.node_id}", "poolId": node.pool, "nodeId": node.node_id,
            "taskRootDirectory": relative}
    base = rows.account_url(db, task.account)
    if base:
        info["nodeUrl"] = f"{base}/pools/{node.pool}/nodes/{node.node_id}"
        info["taskRootDirectoryUrl"] = f"{info['nodeUrl']}/files/{relative}"
    return info


def _place(db, job: JobRow, node: NodeRow, task_id: str, task_dir: Path) -> TaskPlace:
    return TaskPlace(
        account=job.account, account_url=rows.account_url(db, job.account), pool_id=node.pool,
        node_id=node.node_id, node=_paths(node), is_dedicated=node.runtime.get("isDedicated", True) is not False,
        job_id=job.job_id, task_id=task_id, task_dir=task_dir,
    )


def _preparation_dir(job: JobRow, node: NodeRow) -> Path | None:
    if not job.body.get("jobPreparationTask"):
        return None
    return _paths(node).task_dir(job.job_id, preparation_id(job.body))


def _container_note(log: NoteLog, settings: dict[str, Any] | None, what: str) -> None:
    image = (settings or {}).get("imageName")
    if image:
        log.write(f"{what} asks for the container image {image}: the emulator has no container engine, so the"
                  " command runs directly on this machine, in the task's working directory")


def _launch(ctx: Context, db, task: TaskRow, job: JobRow, nodes: list[NodeRow], now: float) -> None:
    """Start the task (the coordination command on every node of a multi-instance task, else the command) and
    mark it running. Runs inside the caller's transaction; the caller saves the task."""
    multi = task.instances is not None
    launch = Launch.create(ctx.state.root, {"kind": "task", "account": task.account, "job": task.job_id,
                                            "task": task.task_id})
    task_dirs: dict[str, str] = {}
    task.runtime.update(launch=launch.id, startedAt=now, processes=[])
    info = task.status.setdefault("executionInfo", {})
    for stale in ("endTime", "exitCode", "result", "failureInfo", "containerInfo"):
        info.pop(stale, None)
    info.setdefault("retryCount", 0)
    info.setdefault("requeueCount", 0)
    info["startTime"] = iso8601(now)
    if task.runtime.pop("retrying", False):
        info["lastRetryTime"] = info["startTime"]
    task.status["nodeInfo"] = _node_info(db, job, nodes[0], task)
    rows.set_state(task.status, "running", now)
    coordination = (task.body.get("multiInstanceSettings") or {}).get("coordinationCommandLine") if multi else None
    try:
        for index, node in enumerate(nodes):
            task_dir = _paths(node).task_dir(task.job_id, task.task_id)
            prepare_task_dir(task_dir)
            task_dirs[node.node_id] = str(task_dir)
        envs = _task_environments(ctx, db, task, job, nodes, launch)
        for index, node in enumerate(nodes):
            task_dir = Path(task_dirs[node.node_id])
            if index == 0:
                _container_note(NoteLog(task_dir / "emulator.log"), task.body.get("containerSettings"), "The task")
            if coordination:
                proc = launch.start(ctx, f"coordination-{index}", [_step("command", coordination, task_dir)],
                                    envs[index], task_dir / "wd", node=node.node_id, role="coordination")
                task.runtime["processes"].append(proc.to_json())
    except (OSError, UnsafeId) as error:
        _launch_failed(ctx, task, launch, error)
        return
    task.runtime["taskDirs"] = task_dirs
    task.runtime["taskDir"] = task_dirs[nodes[0].node_id]
    if multi:
        task.status["subtasks"] = [_subtask(db, job, node, task, index, now) for index, node in enumerate(nodes)
                                   if index > 0]
    if coordination:
        task.runtime["phase"] = "coordinating"
        return
    _launch_primary(ctx, task, launch, envs[0], nodes[0].node_id)


def _launch_primary(ctx: Context, task: TaskRow, launch: Launch, env: dict[str, str], node_id: str) -> None:
    task_dir = Path(task.runtime["taskDir"])
    try:
        proc = launch.start(ctx, "command", [_step("command", task.body.get("commandLine") or "", task_dir)],
                            env, task_dir / "wd", node=node_id, role="command")
    except OSError as error:
        _launch_failed(ctx, task, launch, error)
        return
    task.runtime.setdefault("processes", []).append(proc.to_json())
    task.runtime["phase"] = "running"


def _launch_failed(ctx: Context, task: TaskRow, launch: Launch, error: Exception) -> None:
    """The processes could not start (a full disk, an unusable id): the task ends as a failure at once."""
    logger.warning("the Batch task %s/%s could not start: %s", task.job_id, task.task_id, error)
    task.runtime["phase"] = "running"
    task.runtime["stop"] = {"reason": "startfailed", "message": f"The task's processes could not start: {error}"}


def _step(phase: str, command_line: str, task_dir: Path) -> Step:
    return Step(phase, command_argv(command_line), task_dir / "stdout.txt", task_dir / "stderr.txt")


def _task_environments(ctx: Context, db, task: TaskRow, job: JobRow, nodes: list[NodeRow],
                       launch: Launch) -> list[dict[str, str]]:
    multi = task.instances is not None
    ips = tuple(str(node.runtime.get("ip") or "127.0.0.1") for node in nodes)
    extra: dict[str, str] = {}
    if multi:
        ssh = str(launch.node_ssh())
        # MPI launchers reach the other "nodes" (this machine) through the stand-in for ssh.
        extra = {"OMPI_MCA_plm_rsh_agent": ssh, "PRTE_MCA_plm_ssh_agent": ssh}
    envs = []
    for index, node in enumerate(nodes):
        task_dir = _paths(node).task_dir(task.job_id, task.task_id)
        envs.append(task_environment(
            ctx.host_env, _place(db, job, node, task.task_id, task_dir),
            common=job.body.get("commonEnvironmentSettings"), own=task.body.get("environmentSettings"),
            user_identity=task.body.get("userIdentity"), preparation_dir=_preparation_dir(job, node),
            multi=MultiInstance(ips, index, task_dir) if multi else None, extra=extra,
            python=ctx.config.job_python,
        ))
    return envs


def _subtask(db, job: JobRow, node: NodeRow, task: TaskRow, index: int, now: float) -> dict[str, Any]:
    moment = iso8601(now)
    return {"id": index, "nodeInfo": _node_info(db, job, node, task), "startTime": moment, "state": "running",
            "stateTransitionTime": moment}


# ----------------------------------------------------------------------------------------------- supervision


def _supervise_tasks(ctx: Context, now: float) -> bool:
    db = ctx.state.connection()
    changed = False
    for task in rows.tasks_in_states(db, BUSY):
        try:
            changed |= _supervise(ctx, task, now)
        except Exception:
            logger.exception("supervising the Batch task %s/%s failed", task.job_id, task.task_id)
    for task in rows.tasks_to_terminate(db):
        _terminate_active(ctx, task, now)
        changed = True
    return changed


def _terminate_active(ctx: Context, task: TaskRow, now: float) -> None:
    """Terminating a task that never started: it completes at once, as one ended by the user."""
    with ctx.state.transaction() as db:
        current = rows.get_task(db, task.account, task.job_id, task.task_id)
        if current is None or current.state != "active":
            return
        current.runtime.pop("terminateRequested", None)
        current.runtime.pop("retrying", None)
        info = current.status.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})
        info.update(endTime=iso8601(now), result="failure", failureInfo=dict(rows.ENDED_BY_USER))
        rows.set_state(current.status, "completed", now)
        _retain(current, now)
        rows.save_task(db, current)


def _supervise(ctx: Context, task: TaskRow, now: float) -> bool:
    db = ctx.state.connection()
    job = rows.get_job(db, task.account, task.job_id)
    stop = task.runtime.get("stop")
    changed = False
    if stop is None:
        reason = _stop_reason(db, task, job, now)
        if reason is not None:
            stop = {"reason": reason}
        elif task.runtime.get("phase") == "preparing":
            return _after_preparation(ctx, task, now)
        elif task.runtime.get("phase") == "coordinating":
            stop = _after_coordination(ctx, task, now)
            if stop is None:
                return False
            if stop.get("reason") == "coordinated":
                return True
        else:
            stop = _command_ended(ctx, task)
            if stop is None:
                return False
        _update_runtime(ctx, task, stop=stop)
        changed = True
    procs = _procs(ctx, task)
    progress = dict(stop)
    done, moved = drive_stop(ctx, procs, progress, now, _log(task), STOP_WHY.get(stop["reason"], stop["reason"]))
    if done:
        _finish(ctx, task, progress, procs, now)
        return True
    if moved:
        _update_runtime(ctx, task, stop=progress)
    return changed or moved


def _log(task: TaskRow) -> NoteLog:
    task_dir = task.runtime.get("taskDir")
    return NoteLog(Path(task_dir) / "emulator.log" if task_dir else None)


def _procs(ctx: Context, task: TaskRow) -> list[Proc]:
    procs = procs_of(task.runtime.get("processes"))
    launch = Launch.find(ctx.state.root, task.runtime.get("launch"))
    if launch is not None:
        on_disk = launch.procs()  # started after the last database write (a crash in between)
        if len(on_disk) > len(procs):
            procs = on_disk
    return procs


def _update_runtime(ctx: Context, task: TaskRow, **values: Any) -> None:
    with ctx.state.transaction() as db:
        current = rows.get_task(db, task.account, task.job_id, task.task_id)
        if current is not None:
            current.runtime.update(values)
            rows.save_task(db, current)
            task.runtime.update(values)


def _stop_reason(db, task: TaskRow, job: JobRow | None, now: float) -> str | None:
    if task.runtime.get("terminateRequested"):
        return "terminate"
    if job is None:
        return "delete"
    if job.state == "terminating":
        return "jobterminate"
    if job.state == "deleting":
        return "delete"
    if job.state == "disabling":
        option = _disable_option(job)
        if option in ("requeue", "terminate"):
            return f"disable-{option}"
    for node_id in task.nodes:
        node = rows.get_node(db, task.account, task.runtime.get("pool") or job.pool_id or "", node_id)
        if node is None:
            return "requeue"
        if node.state != "running" or node.task_key != task.key:
            option = _deallocation_option(db, node)
            if option in ("taskcompletion", "retaineddata"):
                continue
            return "nodeterminate" if option == "terminate" else "requeue"
    limit = rows.seconds((task.body.get("constraints") or {}).get("maxWallClockTime"))
    started = task.runtime.get("startedAt")
    if limit is not None and started is not None and task.runtime.get("phase") != "preparing" \
            and now - started >= limit:
        return "wallclock"
    return None


def _disable_option(job: JobRow) -> str:
    option = job.status.get("disableTasks") or job.runtime.get("disableTasks") or "requeue"
    return str(option).lower()


def _deallocation_option(db, node: NodeRow) -> str:
    """What happens to the task of a node that stopped being `running` under it: a rebooting node's
    `runtime.rebootOption`, else the pool's nodeDeallocationOption (nodes.py: terminate while the pool is being
    deleted), else requeue."""
    if node.state == "rebooting" and node.runtime.get("rebootOption"):
        return str(node.runtime["rebootOption"]).lower()
    pool = store.get_pool(db, node.account, node.pool)
    return nodes.deallocation_option(pool) if pool is not None else "requeue"


def _command_ended(ctx: Context, task: TaskRow) -> dict[str, Any] | None:
    procs = _procs(ctx, task)
    primary = [proc for proc in procs if proc.role == "command"]
    if not primary:
        return {"reason": "lost"}
    outcome = ctx.processes.outcome(primary[0].record)
    if outcome is None:
        return None
    if outcome.phase is None:
        return {"reason": "lost"}
    return {"reason": "ended", "exitCode": outcome.exit_code}


def _after_coordination(ctx: Context, task: TaskRow, now: float) -> dict[str, Any] | None:
    """All coordination commands exited 0: the primary command starts on the first node. One failed: the task
    ends with its exit code."""
    procs = [proc for proc in _procs(ctx, task) if proc.role == "coordination"]
    outcomes = [ctx.processes.outcome(proc.record) for proc in procs]
    if any(outcome is None for outcome in outcomes):
        return None
    for outcome in outcomes:
        if outcome.phase is None:
            return {"reason": "lost"}
        if outcome.exit_code != 0:
            return {"reason": "ended", "exitCode": outcome.exit_code, "coordinationFailed": True}
    with ctx.state.transaction() as db:
        found = _reread_in_phase(db, task, "coordinating")
        if found is None:
            return None
        current, job, nodes = found
        launch = Launch.find(ctx.state.root, current.runtime.get("launch"))
        if any(node is None for node in nodes) or launch is None:
            return {"reason": "lost"}
        envs = _task_environments(ctx, db, current, job, nodes, launch)
        _launch_primary(ctx, current, launch, envs[0], nodes[0].node_id)
        rows.save_task(db, current)
    return {"reason": "coordinated"}


def _after_preparation(ctx: Context, task: TaskRow, now: float) -> bool:
    with ctx.state.transaction() as db:
        found = _reread_in_phase(db, task, "preparing")
        if found is None:
            return False
        current, job, nodes = found
        if any(node is None for node in nodes):
            return False  # the next step's stop reason handles it
        if any(not _may_run(job, node) for node in nodes):
            # The preparation failed on one of them: give the nodes back, wait for others.
            _free_nodes(db, current, now)
            rows.set_state(current.status, "active", now)
            current.status.pop("nodeInfo", None)
            for transient in ("phase", "nodes", "node"):
                current.runtime.pop(transient, None)
            rows.save_task(db, current)
            return True
        if _prepare_nodes(ctx, db, job, nodes, now):
            rows.save_job(db, job)
            return False
        rows.save_job(db, job)
        _launch(ctx, db, current, job, nodes, now)
        rows.save_task(db, current)
    return True


def _reread_in_phase(db, task: TaskRow, phase: str) -> tuple[TaskRow, JobRow, list[NodeRow | None]] | None:
    """The task and its job as they are now, with the nodes the task holds (None for a node whose row is gone);
    None when the task or the job is gone or the task left `phase` meanwhile (another step moved it on)."""
    current = rows.get_task(db, task.account, task.job_id, task.task_id)
    job = rows.get_job(db, task.account, task.job_id)
    if current is None or job is None or current.runtime.get("phase") != phase:
        return None
    nodes = [rows.get_node(db, current.account, current.runtime.get("pool") or "", node_id)
             for node_id in current.nodes]
    return current, job, nodes


def _free_nodes(db, task: TaskRow, now: float) -> None:
    pool = task.runtime.get("pool") or ""
    for node_id in task.nodes:
        node = rows.get_node(db, task.account, pool, node_id)
        if node is None or node.task_key != task.key:
            continue
        node.task_key = None
        if node.state == "running":
            node.state, node.since = "idle", now
        rows.save_node(db, node)


def _finish(ctx: Context, task: TaskRow, stop: dict[str, Any], procs: list[Proc], now: float) -> None:
    launch = Launch.find(ctx.state.root, task.runtime.get("launch"))
    with ctx.state.transaction() as db:
        current = rows.get_task(db, task.account, task.job_id, task.task_id)
        if current is None or current.state not in BUSY:
            if launch is not None:
                launch.remove()
            return
        job = rows.get_job(db, current.account, current.job_id)
        _free_nodes(db, current, now)
        reason = stop["reason"]
        action = "none"
        info = current.status.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})
        exit_code = _exit_code(ctx, stop, procs)
        for transient in ("stop", "phase", "launch", "terminateRequested"):
            current.runtime.pop(transient, None)
        current.runtime["processes"] = [proc.to_json() for proc in procs]
        _finish_subtasks(ctx, current, procs, now)
        if reason in REQUEUE_REASONS:
            info["requeueCount"] = int(info.get("requeueCount") or 0) + 1
            info["lastRequeueTime"] = iso8601(now)
            for stale in ("endTime", "exitCode", "result", "failureInfo"):
                info.pop(stale, None)
            current.status.pop("nodeInfo", None)
            rows.set_state(current.status, "active", now)
            _note_end(task, f"The task goes back to the queue ({STOP_WHY.get(reason, reason)})")
        elif reason == "ended" and exit_code != 0 and _retries_left(current, job):
            info["retryCount"] = int(info.get("retryCount") or 0) + 1
            info.update(endTime=iso8601(now), exitCode=exit_code)
            for stale in ("result", "failureInfo"):
                info.pop(stale, None)
            current.runtime["retrying"] = True
            rows.set_state(current.status, "active", now)
        else:
            info["endTime"] = iso8601(now)
            if exit_code is not None:
                info["exitCode"] = exit_code
            if reason == "ended" and exit_code == 0:
                info["result"] = "success"
                info.pop("failureInfo", None)
            else:
                info["result"] = "failure"
                info["failureInfo"] = dict(_failure_of(reason, stop))
            rows.set_state(current.status, "completed", now)
            _retain(current, now)
            if reason == "ended":
                action = _job_action(current, job, exit_code, info["result"] == "success")
        rows.save_task(db, current)
    if launch is not None:
        launch.remove()
    _apply_job_action(ctx, task, action, now)


def _note_end(task: TaskRow, message: str) -> None:
    _log(task).write(message)


def _failure_of(reason: str, stop: dict[str, Any]) -> dict[str, Any]:
    if reason == "ended":
        return rows.EXIT_CODE_FAILURE
    if reason == "wallclock":
        return rows.WALL_CLOCK
    if reason == "startfailed":
        return rows.failure("ServerError", "TaskFailedToStart", stop.get("message", "The task could not start"))
    return rows.ENDED_BY_USER


def _exit_code(ctx: Context, stop: dict[str, Any], procs: list[Proc]) -> int | None:
    """The command's own exit code where it recorded one; for a task stopped by a signal, what a shell reports
    for it (128 + the signal: 143 after SIGTERM, 137 after SIGKILL)."""
    if stop["reason"] == "ended":
        return stop.get("exitCode")
    if stop["reason"] == "startfailed":
        return None
    primary = [proc for proc in procs if proc.role == "command"] or [proc for proc in procs
                                                                     if proc.role == "coordination"][:1]
    if primary:
        outcome = ctx.processes.outcome(primary[0].record)
        if outcome is not None and outcome.phase is not None:
            return outcome.exit_code
    if stop.get("killedAt") is not None:
        return 137
    if stop.get("signalledAt") is not None:
        return 143
    return None


def _finish_subtasks(ctx: Context, task: TaskRow, procs: list[Proc], now: float) -> None:
    subtasks = task.status.get("subtasks")
    if not subtasks:
        return
    coordination = {proc.node: proc for proc in procs if proc.role == "coordination"}
    for subtask in subtasks:
        if subtask.get("state") == "completed":
            continue
        subtask["previousState"] = subtask.get("state", "running")
        subtask["previousStateTransitionTime"] = subtask.get("stateTransitionTime")
        subtask.update(state="completed", stateTransitionTime=iso8601(now), endTime=iso8601(now))
        proc = coordination.get((subtask.get("nodeInfo") or {}).get("nodeId"))
        outcome = ctx.processes.outcome(proc.record) if proc is not None else None
        if outcome is not None and outcome.phase is not None:
            subtask["exitCode"] = outcome.exit_code
            subtask["result"] = "success" if outcome.exit_code == 0 else "failure"
            if outcome.exit_code != 0:
                subtask["failureInfo"] = dict(rows.EXIT_CODE_FAILURE)
        elif proc is not None:
            subtask["result"] = "failure"
            subtask["failureInfo"] = dict(rows.ENDED_BY_USER)
        else:
            subtask["result"] = "success"


def _retries_left(task: TaskRow, job: JobRow | None) -> bool:
    own = (task.body.get("constraints") or {}).get("maxTaskRetryCount")
    if own is None and job is not None:
        own = (job.body.get("constraints") or {}).get("maxTaskRetryCount")
    limit = int(own or 0)
    done = int((task.status.get("executionInfo") or {}).get("retryCount") or 0)
    return limit == -1 or done < limit


def _retain(task: TaskRow, now: float) -> None:
    retention = rows.seconds((task.body.get("constraints") or {}).get("retentionTime") or "P7D")
    if retention is not None:
        task.runtime["retainUntil"] = now + retention


# ----------------------------------------------------------------------------------------------- preparation and release


def _start_node_task(ctx: Context, job: JobRow, node: NodeRow, kind: str, now: float, *, retry_count: int) -> None:
    """Start the job preparation or release task on a node; `job` is updated (the caller saves it)."""
    spec = job.body.get("jobPreparationTask" if kind == "preparation" else "jobReleaseTask") or {}
    info_key = "jobPreparationTaskExecutionInfo" if kind == "preparation" else "jobReleaseTaskExecutionInfo"
    paths = _paths(node)
    entry = job.runtime.setdefault("preparationAndRelease", {}).setdefault(
        node.node_id, {"poolId": node.pool, "nodeId": node.node_id})
    info: dict[str, Any] = {"state": "running", "startTime": iso8601(now)}
    if kind == "preparation":
        info["retryCount"] = retry_count
        if retry_count:
            info["lastRetryTime"] = info["startTime"]
    entry[info_key] = info
    try:
        task_id = preparation_id(job.body) if kind == "preparation" else release_id(job.body)
        task_dir = paths.task_dir(job.job_id, task_id)
        info["taskRootDirectory"] = paths.relative(task_dir)
        base = rows.account_url(ctx.state.connection(), job.account)
        if base:
            info["taskRootDirectoryUrl"] = (f"{base}/pools/{node.pool}/nodes/{node.node_id}/files/"
                                            f"{info['taskRootDirectory']}")
        prepare_task_dir(task_dir)
        log = NoteLog(task_dir / "emulator.log")
        _container_note(log, spec.get("containerSettings"), f"The job {kind} task")
        env = task_environment(
            ctx.host_env, _place(ctx.state.connection(), job, node, task_id, task_dir),
            common=job.body.get("commonEnvironmentSettings"), own=spec.get("environmentSettings"),
            user_identity=spec.get("userIdentity"), preparation_dir=_preparation_dir(job, node),
            python=ctx.config.job_python,
        )
        launch = Launch.create(ctx.state.root, {"kind": kind, "account": job.account, "job": job.job_id,
                                                "node": node.node_id})
        proc = launch.start(ctx, kind, [_step("command", spec.get("commandLine") or "", task_dir)], env,
                            task_dir / "wd", node=node.node_id, role=kind)
    except (OSError, UnsafeId) as error:
        logger.warning("the job %s task of %s could not start on %s: %s", kind, job.job_id, node.node_id, error)
        info.update(state="completed", endTime=iso8601(now), result="failure",
                    failureInfo=rows.failure("ServerError", "TaskFailedToStart",
                                             f"The task's processes could not start: {error}"))
        return
    job.runtime.setdefault("nodeTasks", {}).setdefault(node.node_id, {})[kind] = {
        "launch": launch.id, "processes": [proc.to_json()], "startedAt": now, "pool": node.pool,
        "taskDir": str(task_dir), "retryCount": retry_count,
    }


def _supervise_node_tasks(ctx: Context, now: float) -> bool:
    db = ctx.state.connection()
    changed = False
    for job in rows.jobs_with_node_tasks(db):
        for node_id, runs in list((job.runtime.get("nodeTasks") or {}).items()):
            for kind in list(runs):
                try:
                    changed |= _supervise_node_task(ctx, job, node_id, kind, now)
                except Exception:
                    logger.exception("supervising the job %s task of %s failed", kind, job.job_id)
    return changed


def _supervise_node_task(ctx: Context, job: JobRow, node_id: str, kind: str, now: float) -> bool:
    run = job.runtime["nodeTasks"][node_id][kind]
    procs = procs_of(run.get("processes"))
    log = NoteLog(Path(run["taskDir"]) / "emulator.log")
    stop = run.get("stop")
    changed = False
    if stop is None:
        db = ctx.state.connection()
        node = rows.get_node(db, job.account, run.get("pool") or "", node_id)
        spec = job.body.get("jobPreparationTask" if kind == "preparation" else "jobReleaseTask") or {}
        limit = rows.seconds((spec.get("constraints") or {}).get("maxWallClockTime") if kind == "preparation"
                             else spec.get("maxWallClockTime") or "PT15M")
        if node is None or node.state in ("leavingpool", "unusable", "starttaskfailed"):
            stop = {"reason": "node"}
        elif kind == "preparation" and job.state in ("terminating", "deleting", "completed"):
            stop = {"reason": "job"}
        elif limit is not None and now - run["startedAt"] >= limit:
            stop = {"reason": "wallclock"}
        else:
            outcome = ctx.processes.outcome(procs[0].record) if procs else None
            if procs and outcome is None:
                return False
            stop = {"reason": "ended", "exitCode": outcome.exit_code if outcome and outcome.phase else None}
        changed = True
    why = {"node": "its node left the pool", "job": "its job is ending",
           "wallclock": "it ran past its maxWallClockTime", "ended": "its command ended but left processes running"}
    done, moved = drive_stop(ctx, procs, stop, now, log, why[stop["reason"]])
    if not done:
        if changed or moved:
            _save_node_run(ctx, job, node_id, kind, stop=stop)
        return changed or moved
    _finish_node_task(ctx, job, node_id, kind, stop, procs, now)
    return True


def _save_node_run(ctx: Context, job: JobRow, node_id: str, kind: str, **values: Any) -> None:
    with ctx.state.transaction() as db:
        current = rows.get_job(db, job.account, job.job_id)
        run = ((current.runtime.get("nodeTasks") or {}).get(node_id) or {}).get(kind) if current else None
        if run is None:
            return
        run.update(values)
        rows.save_job(db, current)


def _finish_node_task(ctx: Context, job: JobRow, node_id: str, kind: str, stop: dict[str, Any], procs: list[Proc],
                      now: float) -> None:
    info_key = "jobPreparationTaskExecutionInfo" if kind == "preparation" else "jobReleaseTaskExecutionInfo"
    with ctx.state.transaction() as db:
        current = rows.get_job(db, job.account, job.job_id)
        if current is None:
            return
        runs = (current.runtime.get("nodeTasks") or {}).get(node_id) or {}
        run = runs.pop(kind, None)
        if not runs:
            current.runtime.get("nodeTasks", {}).pop(node_id, None)
        if run is None:
            rows.save_job(db, current)
            return
        launch = Launch.find(ctx.state.root, run.get("launch"))
        if launch is not None:
            launch.remove()
        entry = (current.runtime.get("preparationAndRelease") or {}).get(node_id)
        reason = stop["reason"]
        if entry is None or reason == "node":
            if entry is not None:
                current.runtime["preparationAndRelease"].pop(node_id, None)  # the node is gone
            rows.save_job(db, current)
            return
        info = entry.setdefault(info_key, {})
        exit_code = _exit_code(ctx, stop, procs)
        spec = current.body.get("jobPreparationTask") or {}
        retries = int((spec.get("constraints") or {}).get("maxTaskRetryCount") or 0)
        done_retries = int(run.get("retryCount") or 0)
        node = rows.get_node(db, current.account, run.get("pool") or "", node_id)
        if (kind == "preparation" and reason == "ended" and exit_code != 0 and node is not None
                and (retries == -1 or done_retries < retries) and current.state == "active"):
            _start_node_task(ctx, current, node, kind, now, retry_count=done_retries + 1)
            rows.save_job(db, current)
            return
        info.update(state="completed", endTime=iso8601(now))
        if exit_code is not None:
            info["exitCode"] = exit_code
        if reason == "ended" and exit_code == 0:
            info["result"] = "success"
        else:
            info["result"] = "failure"
            info["failureInfo"] = dict(rows.EXIT_CODE_FAILURE if reason == "ended" else
                                       rows.WALL_CLOCK if reason == "wallclock" else rows.ENDED_BY_USER)
        rows.save_job(db, current)


# ----------------------------------------------------------------------------------------------- jobs


def _advance_jobs(ctx: Context, now: float) -> bool:
    db = ctx.state.connection()
    changed = False
    for job in rows.jobs_in_states(db, ("active", "terminating", "deleting", "disabling", "enabling")):
        try:
            changed |= _advance_job(ctx, job, now)
        except Exception:
            logger.exception("advancing the Batch job %s failed", job.job_id)
    return changed


def _advance_job(ctx: Context, job: JobRow, now: float) -> bool:
    """An active job that must end asks for its own termination; a terminating or deleting job whose tasks have
    stopped runs its release tasks, then ends (`completed`, or its rows and directories removed); a disabling
    job with no task running is `disabled`, an enabling one `active`. The data plane's settle step may make the
    same final moves: each re-reads the row in a transaction, so whichever comes first makes it."""
    db = ctx.state.connection()
    states = rows.task_states_of_job(db, job.account, job.job_id)
    busy = any(states.get(state, 0) for state in BUSY)
    if job.state == "active":
        limit = rows.seconds((job.body.get("constraints") or {}).get("maxWallClockTime"))
        if limit is not None and now - job.created_at >= limit:
            return request_termination(ctx, job, "MaxWallClockTimeExpiry", now)
        # Batch: "if the job has no tasks, all tasks are considered complete".
        if str(job.body.get("onAllTasksComplete") or "noaction").lower() == "terminatejob" \
                and sum(states.values()) == states.get("completed", 0):
            return request_termination(ctx, job, "AllTasksComplete", now)
        return False
    if job.state == "enabling":
        return _settle(ctx, job, now)
    if busy:
        return False
    if job.state == "disabling":
        return _settle(ctx, job, now)
    if any("preparation" in runs for runs in (job.runtime.get("nodeTasks") or {}).values()):
        return False
    if _start_releases(ctx, job, now):
        return True
    return _settle(ctx, job, now)


def _settle(ctx: Context, job: JobRow, now: float) -> bool:
    """The end of a job request once nothing of the job runs: terminating -> completed (terminateReason from
    `runtime.terminateReason`, default UserTerminate), deleting -> gone, disabling -> disabled, enabling ->
    active."""
    directories: list[Path] = []
    with ctx.state.transaction() as db:
        current = rows.get_job(db, job.account, job.job_id)
        if current is None or current.state != job.state:
            return False
        if current.state in ("terminating", "deleting", "disabling"):
            states = rows.task_states_of_job(db, current.account, current.job_id)
            if any(states.get(state, 0) for state in BUSY):
                return False
        if current.state in ("terminating", "deleting") and rows.release_pending(db, current):
            if not current.runtime.get("releasePending"):
                rows.save_job(db, current)
                return True
            return False
        if current.state == "deleting":
            directories = _job_directories(db, current)
            db.execute("DELETE FROM batch_tasks WHERE account = ? AND job_id = ?", (current.account, current.job_id))
            db.execute("DELETE FROM batch_jobs WHERE account = ? AND job_id = ?", (current.account, current.job_id))
        else:
            following = {"terminating": "completed", "disabling": "disabled", "enabling": "active"}[current.state]
            if current.state == "terminating":
                info = current.status.setdefault("executionInfo", {})
                info["endTime"] = iso8601(now)
                info["terminateReason"] = (info.get("terminateReason") or current.runtime.get("terminateReason")
                                           or "UserTerminate")
            rows.set_state(current.status, following, now)
            rows.save_job(db, current)
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)
    return True


def _job_directories(db, job: JobRow) -> list[Path]:
    """`workitems/{job}` on every node of the pools the job's tasks ran in."""
    pools = {job.pool_id or ""} | {task.runtime.get("pool") or "" for task in
                                   rows.tasks_of_job(db, job.account, job.job_id)}
    found = []
    for pool in sorted(pools - {""}):
        for node in rows.nodes_of_pool(db, job.account, pool):
            if node.runtime.get("root"):
                try:
                    found.append(_paths(node).job_items(job.job_id))
                except UnsafeId:
                    continue
    return found


def request_termination(ctx: Context, job: JobRow, reason: str, now: float) -> bool:
    """`terminating` with `runtime.terminateReason`, as a terminate request leaves it (release tasks run, then
    the data plane's settle step completes the job with that reason)."""
    with ctx.state.transaction() as db:
        current = rows.get_job(db, job.account, job.job_id)
        if current is None or current.state != "active":
            return False
        current.runtime["terminateReason"] = reason
        current.status.setdefault("executionInfo", {})["terminateReason"] = reason
        rows.set_state(current.status, "terminating", now)
        rows.save_job(db, current)
    return True


def _request_disable(ctx: Context, job: JobRow, now: float) -> None:
    with ctx.state.transaction() as db:
        current = rows.get_job(db, job.account, job.job_id)
        if current is None or current.state != "active":
            return
        current.runtime["disableTasks"] = "requeue"
        rows.set_state(current.status, "disabling", now)
        rows.save_job(db, current)


def _job_action(task: TaskRow, job: JobRow | None, exit_code: int | None, succeeded: bool) -> str:
    """What a completed task does to its job when the job's onTaskFailure is performexitoptionsjobaction: the
    exitOptions.jobAction of the matching exit condition; by default none for success, terminate otherwise."""
    if job is None or str(job.body.get("onTaskFailure") or "noaction").lower() != "performexitoptionsjobaction":
        return "none"
    conditions = task.body.get("exitConditions") or {}
    options = None
    if exit_code is not None:
        for item in conditions.get("exitCodes") or []:
            if item.get("code") == exit_code:
                options = item.get("exitOptions")
                break
        else:
            for item in conditions.get("exitCodeRanges") or []:
                if int(item.get("start", 0)) <= exit_code <= int(item.get("end", -1)):
                    options = item.get("exitOptions")
                    break
    if options is None and not succeeded:
        options = conditions.get("default")
    if options is None:
        return "none" if succeeded else "terminate"
    return str(options.get("jobAction") or ("none" if succeeded else "terminate")).lower()


def _apply_job_action(ctx: Context, task: TaskRow, action: str, now: float) -> None:
    job = rows.get_job(ctx.state.connection(), task.account, task.job_id)
    if job is None or action == "none":
        return
    if action == "terminate":
        request_termination(ctx, job, "TaskFailed", now)
    elif action == "disable":
        _request_disable(ctx, job, now)


def _start_releases(ctx: Context, job: JobRow, now: float) -> bool:
    if not job.body.get("jobReleaseTask"):
        return False
    started = False
    with ctx.state.transaction() as db:
        current = rows.get_job(db, job.account, job.job_id)
        if current is None:
            return False
        for node_id, entry in (current.runtime.get("preparationAndRelease") or {}).items():
            if "jobPreparationTaskExecutionInfo" not in entry or "jobReleaseTaskExecutionInfo" in entry:
                continue
            node = rows.get_node(db, current.account, entry.get("poolId") or current.pool_id or "", node_id)
            if node is None or not node.runtime.get("root"):
                continue
            _start_node_task(ctx, current, node, "release", now, retry_count=0)
            started = True
        if started:
            rows.save_job(db, current)
    return started


# ----------------------------------------------------------------------------------------------- orphans, retention


def _sweep(ctx: Context, now: float) -> bool:
    """Stop the processes of launches nothing refers to any more (a task or job row deleted under them), and
    give back the nodes of tasks that are gone."""
    db = ctx.state.connection()
    changed = False
    orphaned_tasks = set()
    for launch in all_launches(ctx.state.root):
        owner = launch.owner()
        if _launch_alive(db, owner, launch.id):
            continue
        progress = launch.stop_progress()
        done, moved = drive_stop(ctx, launch.procs(), progress, now, NoteLog(None),
                                 "their task or job no longer exists")
        if done:
            launch.remove()
            changed = True
            continue
        if moved:
            launch.save_stop_progress(progress)
            changed = True
        if owner.get("kind") == "task":
            orphaned_tasks.add((str(owner.get("account")).lower(), f"{owner.get('job')}/{owner.get('task')}".lower()))
    for node in rows.busy_nodes(db):
        job_id, _, task_id = (node.task_key or "").partition("/")
        task = rows.get_task(db, node.account, job_id, task_id)
        if task is not None and task.state in BUSY and node.node_id in task.nodes:
            continue
        if (node.account.lower(), (node.task_key or "").lower()) in orphaned_tasks:
            continue  # its processes are still being stopped
        with ctx.state.transaction() as tx:
            current = rows.get_node(tx, node.account, node.pool, node.node_id)
            if current is None or current.task_key != node.task_key:
                continue
            current.task_key = None
            if current.state == "running":
                current.state, current.since = "idle", now
            rows.save_node(tx, current)
        changed = True
    return changed


def _launch_alive(db, owner: dict[str, Any], launch_id: str) -> bool:
    kind = owner.get("kind")
    if kind == "task":
        task = rows.get_task(db, owner.get("account", ""), owner.get("job", ""), owner.get("task", ""))
        return task is not None and task.state in BUSY and task.runtime.get("launch") == launch_id
    if kind in ("preparation", "release"):
        job = rows.get_job(db, owner.get("account", ""), owner.get("job", ""))
        run = (((job.runtime.get("nodeTasks") or {}).get(owner.get("node", "")) or {}).get(kind)
               if job is not None else None)
        return run is not None and run.get("launch") == launch_id
    return False


_COLLECTED_AT: dict[int, float] = {}
COLLECT_EVERY_S = 1.0


def _collect(ctx: Context, now: float) -> None:
    """Directories under `workitems/` of jobs and tasks whose rows are gone (deleted by the data plane: it removes
    a task's `taskDir`; this also takes the other nodes of a multi-instance task, and the job preparation and
    release directories). At most once a second; changes no row."""
    if now - _COLLECTED_AT.get(id(ctx), 0.0) < COLLECT_EVERY_S:
        return
    _COLLECTED_AT[id(ctx)] = now
    db = ctx.state.connection()
    for row in db.execute("SELECT account, runtime FROM batch_nodes").fetchall():
        root = json.loads(row["runtime"]).get("root")
        workitems = Path(root) / "workitems" if root else None
        if workitems is None or not workitems.is_dir():
            continue
        for job_dir in workitems.iterdir():
            job = rows.get_job(db, row["account"], job_dir.name)
            if job is None:
                shutil.rmtree(job_dir, ignore_errors=True)
                continue
            keep = {preparation_id(job.body).lower(), release_id(job.body).lower()}
            tasks_dir = job_dir / "job-1"
            for entry in tasks_dir.iterdir() if tasks_dir.is_dir() else []:
                if entry.name.lower() not in keep and rows.get_task(db, job.account, job.job_id, entry.name) is None:
                    shutil.rmtree(entry, ignore_errors=True)


def _expire(ctx: Context, now: float) -> bool:
    """A completed task's directories go once its `constraints.retentionTime` (default 7 days) passed."""
    db = ctx.state.connection()
    expired = db.execute(
        "SELECT account, job_id, task_id FROM batch_tasks WHERE json_extract(status, '$.state') = 'completed'"
        " AND json_extract(runtime, '$.retainUntil') <= ? AND json_extract(runtime, '$.filesDeleted') IS NULL",
        (now,)).fetchall()
    for row in expired:
        with ctx.state.transaction() as tx:
            task = rows.get_task(tx, row["account"], row["job_id"], row["task_id"])
            if task is None or task.state != "completed":
                continue
            directories = list((task.runtime.get("taskDirs") or {}).values())
            task.runtime["filesDeleted"] = True
            rows.save_task(tx, task)
        # After the commit: the disk work must not hold the write transaction (and every request waiting on it).
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)
    return bool(expired)


# ----------------------------------------------------------------------------------------------- shutdown


@on_stop
def stop_everything(ctx: Context) -> None:
    """The emulator stops: every task's, preparation's and release's processes end (SIGTERM, grace, SIGKILL);
    the tasks that ran go back to `active` (requeued, as when a node restarts), preparations and releases that
    ran will run again."""
    launches = all_launches(ctx.state.root)
    groups = []
    for launch in launches:
        owner = launch.owner()
        log = NoteLog(None)
        if owner.get("kind") == "task":
            task = rows.get_task(ctx.state.connection(), owner.get("account", ""), owner.get("job", ""),
                                 owner.get("task", ""))
            if task is not None:
                log = _log(task)
        groups.append((launch.procs(), log))
    stop_all_now(ctx, groups, "the emulator is stopping")
    now = clock_now()
    with ctx.state.transaction() as db:
        for task in rows.tasks_in_states(db, BUSY):
            _free_nodes(db, task, now)
            info = task.status.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})
            info["requeueCount"] = int(info.get("requeueCount") or 0) + 1
            info["lastRequeueTime"] = iso8601(now)
            task.status.pop("nodeInfo", None)
            for transient in ("stop", "phase", "launch"):
                task.runtime.pop(transient, None)
            rows.set_state(task.status, "active", now)
            rows.save_task(db, task)
        for job in rows.jobs_with_node_tasks(db):
            runs = job.runtime.pop("nodeTasks", None)
            if not runs:
                continue
            for node_id, node_runs in runs.items():
                entry = (job.runtime.get("preparationAndRelease") or {}).get(node_id) or {}
                if "preparation" in node_runs:
                    entry.pop("jobPreparationTaskExecutionInfo", None)
                if "release" in node_runs:
                    entry.pop("jobReleaseTaskExecutionInfo", None)
                if not entry.get("jobPreparationTaskExecutionInfo") and not entry.get("jobReleaseTaskExecutionInfo"):
                    (job.runtime.get("preparationAndRelease") or {}).pop(node_id, None)
            rows.save_job(db, job)
    for launch in launches:
        launch.remove()


def has_work(db) -> bool:
    """Whether Batch work is under way or waiting (for the server's idle timeout): a task preparing or running, an
    active task of an active job, a job whose terminate, delete, disable or enable is not finished."""
    return db.execute(
        "SELECT 1 FROM batch_tasks t JOIN batch_jobs j ON t.account = j.account AND t.job_id = j.job_id"
        " WHERE json_extract(t.status, '$.state') IN ('preparing', 'running')"
        " OR (json_extract(t.status, '$.state') = 'active' AND json_extract(j.status, '$.state') = 'active')"
        " UNION ALL SELECT 1 FROM batch_jobs WHERE json_extract(status, '$.state') IN"
        " ('terminating', 'deleting', 'disabling', 'enabling') LIMIT 1"
    ).fetchone() is not None
