"""Jobs as real local processes: queue, start, supervise, stop and finish them.

Queued jobs wait, per cluster in priority order (high, normal, low; then creation order), until the cluster has
`nodeCount` idle nodes (gang scheduling; a job that does not fit holds back the ones behind it). A started job
gets one task per node (see toolkits.py) running its job preparation and command; stdout/stderr and
`execution.log` are appended live under `{stdOutErrPathPrefix}/{jobOutputDirectoryPathSegment}/stdouterr/`. The
exit codes decide `succeeded` or `failed`.

A task whose command (or job preparation) fails while other tasks still run fails the job at once: distributed
tasks wait for each other, and the others could block forever in a collective. The emulator records that task
(`failedTask` in the job's runtime), says in execution.log that it failed first, and stops the others (stop reason
`task_failed`). The job's exit code and error are the first failing task's, never those of the tasks it stopped;
for a job of several tasks the error's message names the task and node, and its `details` say `taskIndex`,
`nodeId` and `stderr` (the stdouterr file with that task's stderr), e.g.
`{"code": "JobFailed", "message": "Job failed with non-zero exit code (task 1 of 2, node tvm-…)", "details":
[{"name": "taskIndex", "value": "1"}, {"name": "nodeId", "value": "tvm-…"}, {"name": "stderr", "value":
"stderr-1.txt"}]}`. A single-task job's error has neither. Tasks that failed between two looks of the scheduler
are ordered by when their exit file was written (as finely as the file system's clock; a tie goes to the lower
task index).

No process of a job outlives it. Stop requests (terminate, delete, wall-clock limit, scale-down, cluster deletion)
send SIGTERM to each task's process group and to the processes that left it (see processes.py), then SIGKILL to
whatever is still running after the grace period; a job whose commands ended but left processes running (children,
daemons) gets the same. The job ends (and frees its nodes, and answers its terminate or delete) once none of its
processes is left, or `kill_wait_s` after SIGKILL. `execution.log` says what was sent to which processes and how
it ended. Emulator shutdown (`stop_everything`) does the same for every running job and setup task, waiting with
a deadline, and fails the jobs with `EmulatorStopped`.

Errors in `executionInfo.errors` (emulator-defined codes except `JobFailed`): `JobFailed` (non-zero exit code),
`JobPreparationFailed` (both with the first failing task's exit code and, for several tasks, details),
`JobTerminated` (terminate), `MaxWallClockTimeExceeded`, `JobProcessLost` (the process vanished, e.g. the machine
restarted), `NodeDeallocated` (scale-down with nodeDeallocationOption=terminate), `ClusterDeleted`,
`ClusterNotFound`, `MountFailed` (job-level mounts), `MpiRuntimeNotFound` (no mpirun on the nodes' PATH),
`SecretNotAvailable`, `JobStartFailed` (anything else that kept the processes from starting), `EmulatorStopped`.
Stop reasons (execution.log, STOP_REASONS): terminate, wall clock, scale-down (deallocated or requeue), cluster
deletion, job deletion, emulator shutdown, a failed task (`task_failed`), and processes left by ended commands.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchai_spec.emulator import machine
from batchai_spec.emulator.batchai import mounts, store
from batchai_spec.emulator.batchai.context import Context
from batchai_spec.emulator.batchai.environment import SecretUnavailable, job_environment, node_environment
from batchai_spec.emulator.batchai.models import TOOLKITS
from batchai_spec.emulator.batchai.processes import Outcome, Signalled, Step, TaskRecord, count, pid_list, task_script
from batchai_spec.emulator.batchai.store import Resource
from batchai_spec.emulator.batchai.times import iso_millis, parse_duration
from batchai_spec.emulator.batchai.toolkits import LaunchError, shell, task_commands
from batchai_spec.emulator.batchai.vm_sizes import lookup
from batchai_spec.emulator.clock import now as clock_now
from batchai_spec.emulator.lro import finish_operation

logger = logging.getLogger("batchai_spec.emulator")

ACTIVE = ("running", "terminating")
FINAL = ("succeeded", "failed")
PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}

STOP_ERRORS = {
    "terminate": ("JobTerminated", "The job was terminated by the user"),
    "wallclock": ("MaxWallClockTimeExceeded", "The job ran longer than its constraints.maxWallClockTime and was stopped"),
    "deallocated": ("NodeDeallocated", "The job's nodes were removed by a cluster resize (nodeDeallocationOption terminate)"),
    "cluster_deleted": ("ClusterDeleted", "The job's cluster was deleted while the job ran"),
    "delete": ("JobTerminated", "The job was deleted while it ran"),
    "shutdown": ("EmulatorStopped", "The emulator stopped while the job ran, and stopped the job's processes with it"),
}
# Why a job's processes are being stopped, for execution.log.
STOP_REASONS = {
    "terminate": "the job was terminated",
    "wallclock": "it ran past its constraints.maxWallClockTime",
    "deallocated": "its node was removed by a cluster resize (nodeDeallocationOption terminate)",
    "requeue": "its node was removed by a cluster resize; it will be queued again",
    "cluster_deleted": "its cluster is being deleted",
    "delete": "the job is being deleted",
    "shutdown": "the emulator is stopping",
    "task_failed": "one of its tasks failed",  # _stop_reason names the task
    None: "its commands ended but left processes running",
}
TRANSIENT_RUNTIME = ("tasks", "stop", "stopSignalledAt", "killedAt", "failedTask")
PROCESS_LOST = (
    "JobProcessLost",
    "The job's process is gone without an exit code (the emulator's machine restarted, or the process was killed"
    " outside Batch AI)",
)


class StartFailure(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# ----------------------------------------------------------------------------------------------- queries, requests


def jobs_needing(db: sqlite3.Connection, cluster_key: str) -> list[Resource]:
    """Jobs that queue for or run on the cluster (what auto-scale provides nodes for)."""
    return [
        job for job in store.jobs_in_states(db, ("queued", *ACTIVE))
        if job.runtime["clusterKey"] == cluster_key and job.status["provisioningState"] != "deleting"
    ]


def request_stop(db: sqlite3.Connection, job_key: str | None, reason: str) -> None:
    """Ask the scheduler to stop a running job (the first reason given wins)."""
    job = store.get(db, job_key or "", "job")
    if job is not None and job.status["executionState"] in ACTIVE and "stop" not in job.runtime:
        job.runtime["stop"] = reason
        store.save(db, job)


def toolkit_of(job: Resource) -> tuple[str, dict[str, Any]]:
    name, tool_type = next((name, tool) for name, tool in TOOLKITS.items() if name in job.properties)
    return tool_type, job.properties[name]


def set_execution_state(job: Resource, state: str, now: float) -> None:
    job.status["executionState"] = state
    job.status["executionStateTransitionTime"] = iso_millis(now)


# ----------------------------------------------------------------------------------------------- the scheduler step


def advance(ctx: Context, now: float) -> bool:
    changed = False
    for job in store.jobs_in_states(ctx.state.connection(), ACTIVE):
        changed |= _supervise(ctx, job, now)
    return _schedule(ctx, now) or changed


def _schedule(ctx: Context, now: float) -> bool:
    connection = ctx.state.connection()
    waiting: dict[str, list[Resource]] = {}
    for job in store.jobs_in_states(connection, ("queued",)):
        if job.status["provisioningState"] != "deleting":
            waiting.setdefault(job.runtime["clusterKey"], []).append(job)
    changed = False
    for cluster_key, jobs in waiting.items():
        cluster = store.get(connection, cluster_key, "cluster")
        if cluster is None:
            for job in jobs:
                _end(ctx, job.key, now, errors=[_error("ClusterNotFound", "The job's cluster no longer exists")])
            changed = True
            continue
        if cluster.status["provisioningState"] == "deleting":
            continue
        idle = [node for node in store.nodes(connection, cluster_key) if node.state == "idle"]
        for job in sorted(jobs, key=lambda item: (PRIORITY_RANK[item.properties["schedulingPriority"]], item.seq)):
            wanted = job.properties["nodeCount"]
            if len(idle) < wanted:
                break
            _start(ctx, job.key, cluster, [node.node_id for node in idle[:wanted]], now)
            idle = idle[wanted:]
            changed = True
    return changed


def _start(ctx: Context, job_key: str, cluster: Resource, node_ids: list[str], now: float) -> None:
    """Prepare the nodes, then mark the job running (with its output locations) and launch its tasks."""
    job = store.get(ctx.state.connection(), job_key, "job")
    if job is None or job.status["executionState"] != "queued":
        return
    try:
        launch = _prepare(ctx, job, cluster, node_ids)
    except StartFailure as failure:
        _end(ctx, job_key, now, errors=[_error(failure.code, failure.message)])
        return
    with ctx.state.transaction() as db:
        job = store.get(db, job_key, "job")
        if job is None or job.status["executionState"] != "queued":
            return
        for node in store.nodes(db, cluster.key):
            if node.node_id in node_ids:
                node.state, node.since, node.job_key = "running", now, job_key
                store.save_node(db, node)
        set_execution_state(job, "running", now)
        job.status["executionInfo"] = {"startTime": iso_millis(now)}
        for transient in TRANSIENT_RUNTIME:
            job.runtime.pop(transient, None)
        job.runtime.update(nodes=node_ids, startedAt=now, locations=launch.locations,
                           stderrFiles=launch.stderr_files)
        store.save(db, job)
    records: list[TaskRecord] = []
    try:
        for index, script in enumerate(launch.scripts):
            records.append(ctx.processes.launch(script, launch.environments[index], script.parent,
                                                use_cgroup=ctx.config.use_cgroups))
            launch.log.write(f"Task {index} started on node {node_ids[index]} (pid {records[-1].pid},"
                             f" process group {records[-1].pid}" + (", own cgroup)" if records[-1].cgroup else ")"))
    except OSError as error:
        for record in records:
            ctx.processes.signal_tree(record, signal.SIGKILL)
        ctx.processes.wait_gone(records, ctx.config.kill_wait_s)
        for record in records:
            ctx.processes.release(record)
        _end(ctx, job_key, clock_now(), errors=[_error("JobStartFailed", f"The job's processes could not start: {error}")])
        return
    with ctx.state.transaction() as db:
        current = store.get(db, job_key, "job")
        if current is not None:
            current.runtime["tasks"] = [record.to_json() for record in records]
            store.save(db, current)


@dataclass(frozen=True)
class Launch:
    """A job ready to start: one task script per node, its environment, and where the outputs will be."""

    scripts: list[Path]
    environments: list[dict[str, str]]
    locations: dict[str, Any]
    log: ExecutionLog
    stderr_files: list[dict[str, str]]  # per task: phase -> the name of its stderr file in stdouterr/


def _prepare(ctx: Context, job: Resource, cluster: Resource, node_ids: list[str]) -> Launch:
    """Every node's directories, mounts, environment and task script, as the service set them up."""
    properties = job.properties
    tool_type, settings = toolkit_of(job)
    job_uuid, segment = job.runtime["uuid"], job.runtime["outputSegment"]
    notes: list[str] = []
    image = (properties.get("containerSettings") or {}).get("imageSourceRegistry", {}).get("image")
    if image:
        notes.append(f"Container image {image} requested: the emulator has no container engine, so the job runs"
                     " directly on the host.")
    try:
        job_mounts = mounts.resolve(ctx.state, properties.get("mountVolumes") or {}, ctx.layout.root)
        cluster_mounts = mounts.resolve(
            ctx.state, (cluster.properties.get("nodeSetup") or {}).get("mountVolumes") or {}, ctx.layout.root
        )
    except mounts.MountError as error:
        raise StartFailure("MountFailed", str(error)) from None
    shared = ctx.layout.shared_job_temp(job_uuid)
    gpus = lookup(cluster.properties["vmSize"]).gpus
    base = {**node_environment(ctx.host_env, ctx.config.job_python), **machine.shared_cores(len(node_ids))}
    try:
        # A job queued again (its nodes were taken away) starts afresh: what its stopped run left there (PyTorch's
        # rendezvous file, with the dead processes' addresses) would mislead the new one.
        shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir(parents=True)
        environments, temps = [], []
        for index, node_id in enumerate(node_ids):
            node = ctx.layout.node(node_id)
            if node.jobs_dir.is_dir():  # a node wipes the temp directories of its previous jobs
                for previous in node.jobs_dir.iterdir():
                    shutil.rmtree(previous, ignore_errors=True)
            job_temp = node.job_temp(job_uuid)
            job_temp.mkdir(parents=True)
            mounts.link(node.job_mount_root(job_uuid), job_mounts)
            environments.append(job_environment(
                base, properties, output_segment=segment, task_index=index, mount_root=node.mount_root,
                job_mount_root=node.job_mount_root(job_uuid), jobs_dir=node.jobs_dir, job_temp=job_temp,
                shared_job_temp=shared, gpus=gpus, tool_type=tool_type,
            ))
            (job_temp / "hostfile").write_text(f"localhost slots={len(node_ids) * max(gpus, 1)}\n")
            temps.append(job_temp)
        commands = task_commands(tool_type, settings, len(node_ids), environments.__getitem__,
                                 ctx.config.job_python, notes)
        stdouterr = Path(environments[0]["AZ_BATCHAI_STDOUTERR_DIR"])
        stdouterr.mkdir(parents=True, exist_ok=True)
        outputs = {}
        for directory in properties.get("outputDirectories") or []:
            variable = f"AZ_BATCHAI_OUTPUT_{directory['id']}"
            for env in environments:  # the service created them on every node (they may be node-local)
                Path(env[variable]).mkdir(parents=True, exist_ok=True)
            outputs[directory["id"]] = _location(Path(environments[0][variable]), cluster_mounts + job_mounts)
        log = ExecutionLog(stdouterr / "execution.log")
        log.write(f"Job {job.runtime['experimentName']}/{job.name} ({tool_type}) starts on node(s)"
                  f" {', '.join(node_ids)} of cluster {cluster.name}")
        for note in notes:
            log.write(note)
        log.write(f"Toolkit settings: {json.dumps(settings, sort_keys=True)}")
        preparation = properties.get("jobPreparation")
        scripts, stderr_files = [], []
        for index, command in enumerate(commands):
            steps = []
            if preparation:
                suffix = "" if len(commands) == 1 else f"-{index}"
                steps.append(Step("preparation", [shell(), "-c", preparation["commandLine"]],
                                  stdouterr / f"stdout-job_prep{suffix}.txt", stdouterr / f"stderr-job_prep{suffix}.txt"))
            if command.argv is not None:
                steps.append(Step("command", command.argv, stdouterr / command.stdout_name,
                                  stdouterr / command.stderr_name))
            for step in steps:  # listed (empty) from the moment the job runs
                step.stdout.touch()
                step.stderr.touch()
            script = temps[index] / f"task-{index}.sh"
            script.write_text(task_script(steps, script.with_suffix(".exit")))
            scripts.append(script)
            stderr_files.append({step.phase: step.stderr.name for step in steps})
    except LaunchError as error:
        raise StartFailure(error.code, error.message) from None
    except SecretUnavailable as error:
        raise StartFailure("SecretNotAvailable", str(error)) from None
    except (OSError, ValueError) as error:
        raise StartFailure("JobStartFailed", f"The job's processes could not start: {error}") from None
    locations = {"stdouterr": _location(stdouterr, cluster_mounts + job_mounts), "outputs": outputs}
    return Launch(scripts, environments, locations, log, stderr_files)


def _location(path: Path, mounted: list[mounts.Mounted]) -> dict[str, str]:
    resolved = path.resolve()
    location = {"path": str(resolved)}
    found = mounts.share_of(resolved, mounted)
    if found is not None:
        share, inside = found
        location.update(account=share.account, share=share.share, sharePath=inside)
    return location


def _supervise(ctx: Context, job: Resource, now: float) -> bool:
    records = [TaskRecord.from_json(task) for task in job.runtime.get("tasks", [])]
    changed = False
    stop = job.runtime.get("stop")
    if stop is None and _past_wall_clock(job, now):
        with ctx.state.transaction() as db:
            request_stop(db, job.key, "wallclock")
        stop, changed = "wallclock", True
    outcomes = [ctx.processes.outcome(record) for record in records]
    if stop is None and any(outcome is None for outcome in outcomes):
        failed = _first_failure(outcomes)
        if failed is None:
            return changed
        # The other tasks may wait for the failed one forever (a collective, a rendezvous): stop them now.
        stop, changed = _stop_after_failure(ctx, job, *failed), True
    # Stopping, or every task's command has ended: nothing the job started may outlive it.
    left = _left_running(ctx, records)
    signalled, killed = job.runtime.get("stopSignalledAt"), job.runtime.get("killedAt")
    if left:
        if signalled is None:
            _log(job, f"Stopping the job's processes: {_stop_reason(job, stop)}")
            for index in left:
                _log(job, f"Task {index}: {ctx.processes.signal_tree(records[index], signal.SIGTERM).describe()}")
            _update_runtime(ctx, job.key, stopSignalledAt=now)
            return True
        if killed is None:
            if now - signalled < ctx.config.terminate_grace_s:
                return changed
            for index, members in left.items():
                _log(job, _kill_line(index, members, now - signalled,
                                     ctx.processes.signal_tree(records[index], signal.SIGKILL)))
            _update_runtime(ctx, job.key, killedAt=now)
            return True
        if now - killed < ctx.config.kill_wait_s:
            return changed
        _log(job, _given_up_line(left, now - killed))
        outcomes = [outcome or Outcome(None, None) for outcome in
                    (ctx.processes.outcome(record) for record in records)]
    else:
        outcomes = [ctx.processes.outcome(record) for record in records]
        if any(outcome is None for outcome in outcomes):
            return changed  # a main process ended between the two looks: the next step finishes the job
        if signalled is not None:
            _log(job, _ended_line(now - (killed if killed is not None else signalled),
                                  "SIGKILL" if killed is not None else "SIGTERM"))
    if not records:
        outcomes = [Outcome(None, None)]  # marked running but never launched: the emulator died in between
    for record in records:
        ctx.processes.release(record)
    _finish(ctx, job.key, outcomes, now)
    return True


def _first_failure(outcomes: list[Outcome | None]) -> tuple[int, Outcome] | None:
    """The task (index, outcome) whose command or job preparation failed first, by when its exit was recorded."""
    failed = [(outcome.ended_at or 0.0, index) for index, outcome in enumerate(outcomes)
              if outcome is not None and outcome.phase is not None and outcome.exit_code != 0]
    if not failed:
        return None
    index = min(failed)[1]
    return index, outcomes[index]


def _stop_after_failure(ctx: Context, job: Resource, index: int, outcome: Outcome) -> str:
    """Record the failed task and stop the job for it (unless another stop came first); returns the stop reason."""
    failed = {"index": index, "phase": outcome.phase, "exitCode": outcome.exit_code}
    with ctx.state.transaction() as db:
        current = store.get(db, job.key, "job")
        earlier = None if current is None else current.runtime.get("stop")
        if current is not None and earlier is None:
            current.runtime.update(stop="task_failed", failedTask=failed)
            store.save(db, current)
    if earlier is not None:
        return earlier  # a stop requested since this step began (terminate, delete) goes on as asked
    job.runtime.update(stop="task_failed", failedTask=failed)
    text = _failure_text(job, index, outcome)
    _log(job, f"{text[0].upper()}{text[1:]}, the first of the job's tasks to fail; the others are stopped")
    return "task_failed"


def _failed_task(job: Resource) -> tuple[int, Outcome] | None:
    failed = job.runtime.get("failedTask")
    return None if failed is None else (failed["index"], Outcome(failed["phase"], failed["exitCode"]))


def _stop_reason(job: Resource, stop: str | None) -> str:
    failed = _failed_task(job) if stop == "task_failed" else None
    return _failure_text(job, *failed) if failed else STOP_REASONS.get(stop, stop)


def _failure_text(job: Resource, index: int, outcome: Outcome) -> str:
    """`task 1 (node tvm-…) failed with exit code 3 (stderr in stderr-1.txt)`."""
    which = "the job preparation of task" if outcome.phase == "preparation" else "task"
    text = f"{which} {index} (node {job.runtime['nodes'][index]}) failed with exit code {outcome.exit_code}"
    stderr = _stderr_file(job, index, outcome)
    return text + (f" (stderr in {stderr})" if stderr else "")


def _stderr_file(job: Resource, index: int, outcome: Outcome) -> str | None:
    files = job.runtime.get("stderrFiles") or []  # absent for jobs started by an older emulator
    return files[index].get(outcome.phase or "") if index < len(files) else None


def _left_running(ctx: Context, records: list[TaskRecord]) -> dict[int, dict[int, int]]:
    """Task index -> the processes of that task still running (pid -> process group)."""
    left = {index: ctx.processes.members(record) for index, record in enumerate(records)}
    return {index: members for index, members in left.items() if members}


def _kill_line(index: int, members: dict[int, int], waited_s: float, killed: Signalled) -> str:
    return (f"Task {index}: {count(len(members), 'process', 'processes')} still running {_seconds(waited_s)}"
            f" after SIGTERM ({pid_list(members)}); {killed.describe()}")


def _given_up_line(left: dict[int, dict[int, int]], waited_s: float) -> str:
    pids = [pid for members in left.values() for pid in members]
    return (f"{count(len(pids), 'process', 'processes')} still present {_seconds(waited_s)} after SIGKILL"
            f" ({pid_list(pids)}, uninterruptible?): the job ends without waiting for them")


def _ended_line(waited_s: float, last_signal: str) -> str:
    return f"All of the job's processes have ended, {_seconds(waited_s)} after {last_signal}"


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.1f}s"


def _past_wall_clock(job: Resource, now: float) -> bool:
    limit = parse_duration(job.properties["constraints"]["maxWallClockTime"]).total_seconds()
    return now - job.runtime["startedAt"] >= limit


def _update_runtime(ctx: Context, job_key: str, **values: Any) -> None:
    with ctx.state.transaction() as db:
        job = store.get(db, job_key, "job")
        if job is not None:
            job.runtime.update(values)
            store.save(db, job)


def _finish(ctx: Context, job_key: str, outcomes: list[Outcome], now: float) -> None:
    job = store.get(ctx.state.connection(), job_key, "job")
    if job is None:
        return
    stop = job.runtime.get("stop")
    every_task_recorded = bool(outcomes) and all(outcome.phase is not None for outcome in outcomes)
    if stop not in (None, "task_failed") and not every_task_recorded:
        if stop == "requeue":
            _requeue(ctx, job_key, now)
            return
        _end(ctx, job_key, now, errors=[_error(*STOP_ERRORS[stop])])
        return
    # The task that failed first decides, not the ones stopped because of it.
    failed = _failed_task(job) or _first_failure(outcomes)
    if failed is not None:
        index, outcome = failed
        error = _task_error(job, index, outcome, len(outcomes))
        _end(ctx, job_key, now, exit_code=outcome.exit_code, errors=[error])
    elif not every_task_recorded:
        _end(ctx, job_key, now, errors=[_error(*PROCESS_LOST)])
    else:
        _end(ctx, job_key, now, exit_code=0)


def _task_error(job: Resource, index: int, outcome: Outcome, tasks: int) -> dict[str, Any]:
    """`JobFailed` / `JobPreparationFailed`; for a job of several tasks, which task failed and where its stderr is."""
    if outcome.phase == "preparation":
        error = _error("JobPreparationFailed", f"The job preparation failed with exit code {outcome.exit_code}")
    else:
        error = _error("JobFailed", "Job failed with non-zero exit code")
    if tasks == 1:
        return error
    node = job.runtime["nodes"][index]
    error["message"] += f" (task {index} of {tasks}, node {node})"
    details = {"taskIndex": str(index), "nodeId": node, "stderr": _stderr_file(job, index, outcome)}
    error["details"] = [{"name": name, "value": value} for name, value in details.items() if value is not None]
    return error


def _requeue(ctx: Context, job_key: str, now: float) -> None:
    with ctx.state.transaction() as db:
        job = store.get(db, job_key, "job")
        if job is None:
            return
        _release_nodes(ctx, db, job_key, now)
        set_execution_state(job, "queued", now)
        job.status.pop("executionInfo", None)
        for transient in (*TRANSIENT_RUNTIME, "nodes", "startedAt"):
            job.runtime.pop(transient, None)
        store.save(db, job)
    _log(job, "The job's nodes were removed by a cluster resize; the job is queued again")


def _end(ctx: Context, job_key: str, now: float, *, exit_code: int | None = None,
         errors: list[dict[str, Any]] | None = None) -> None:
    """Put the job in its final state, free its nodes and finish the operations that waited for it."""
    with ctx.state.transaction() as db:
        job = store.get(db, job_key, "job")
        if job is None:
            return
        _release_nodes(ctx, db, job_key, now)
        set_execution_state(job, "failed" if errors else "succeeded", now)
        info = {"startTime": job.status.get("executionInfo", {}).get("startTime"), "endTime": iso_millis(now),
                "exitCode": exit_code, "errors": errors}
        job.status["executionInfo"] = {name: value for name, value in info.items() if value is not None}
        waiting = job.runtime.pop("terminateOperations", [])
        store.save(db, job)
    for operation_id in waiting:
        finish_operation(ctx.state, operation_id)
    if errors:
        _log(job, f"Job failed: {errors[0]['code']}: {errors[0]['message']}"
             + (f" (exit code {exit_code})" if exit_code is not None else ""))
    else:
        _log(job, "Job succeeded (exit code 0)")


def _release_nodes(ctx: Context, db: sqlite3.Connection, job_key: str, now: float) -> None:
    for node in store.nodes_of_job(db, job_key):
        node.job_key = None
        node.since = now
        if node.runtime.pop("leaveAfterJob", False):
            node.state, node.due_at = "leaving", now + ctx.config.delays.node_leaving_s
        else:
            node.state, node.due_at = "idle", None
        store.save_node(db, node)


def _log(job: Resource, message: str) -> None:
    location = job.runtime.get("locations", {}).get("stdouterr")
    if location and Path(location["path"]).is_dir():
        ExecutionLog(Path(location["path"]) / "execution.log").write(message)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


def stop_everything(ctx: Context, setup_tasks: Iterable[TaskRecord] = ()) -> None:
    """Emulator shutdown (the scheduler no longer steps): SIGTERM to every running job's and setup task's processes,
    wait up to the grace period for them to end, SIGKILL what is left, wait up to `kill_wait_s` again; then the
    jobs end (`EmulatorStopped`, or as the stop already under way said) and execution.log says what happened."""
    with ctx.state.transaction() as db:
        for job in store.jobs_in_states(db, ACTIVE):
            request_stop(db, job.key, "shutdown")
    jobs = [(job, [TaskRecord.from_json(task) for task in job.runtime.get("tasks", [])])
            for job in store.jobs_in_states(ctx.state.connection(), ACTIVE)]
    setup_tasks = list(setup_tasks)
    for job, records in jobs:
        _log(job, f"Stopping the job's processes: {STOP_REASONS['shutdown']}")
        for index, record in enumerate(records):
            sent = ctx.processes.signal_tree(record, signal.SIGTERM)
            if sent.pids:
                _log(job, f"Task {index}: {sent.describe()}")
    for record in setup_tasks:
        ctx.processes.signal_tree(record, signal.SIGTERM)
    everything = [record for _, records in jobs for record in records] + setup_tasks
    signalled_at = time.monotonic()
    left = ctx.processes.wait_gone(everything, ctx.config.terminate_grace_s)
    killed_at = None
    if left:
        killed_at = time.monotonic()
        for job, records in jobs:
            for index, record in enumerate(records):
                if record in left:
                    _log(job, _kill_line(index, left[record], killed_at - signalled_at,
                                         ctx.processes.signal_tree(record, signal.SIGKILL)))
        for record in setup_tasks:
            if record in left:
                ctx.processes.signal_tree(record, signal.SIGKILL)
        left = ctx.processes.wait_gone(left, ctx.config.kill_wait_s)
    ended_at = time.monotonic()
    for job, records in jobs:
        still = {index: left[record] for index, record in enumerate(records) if record in left}
        if still:
            _log(job, _given_up_line(still, ended_at - (killed_at or signalled_at)))
        elif records:
            _log(job, _ended_line(ended_at - (killed_at or signalled_at), "SIGKILL" if killed_at else "SIGTERM"))
        outcomes = [ctx.processes.outcome(record) or Outcome(None, None) for record in records]
        for record in records:
            ctx.processes.release(record)
        _finish(ctx, job.key, outcomes or [Outcome(None, None)], clock_now())
    for record in setup_tasks:
        if record not in left:
            ctx.processes.release(record)
    if left:
        logger.warning("processes still present after SIGKILL at shutdown: %s",
                       pid_list(pid for members in left.values() for pid in members))


class ExecutionLog:
    """The emulator's own account of a run (`execution.log`), appended line by line with UTC times."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, message: str) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(f"{iso_millis(clock_now())} {message}\n")
