"""The rows the task runner reads and writes (`batch_jobs`, `batch_tasks`, `batch_nodes`, `batch_pools`), and the
server-owned fields it writes in the data plane's own spelling.

Every write re-reads the row inside a transaction and changes only the fields the runner owns, so that requests
handled at the same time (the data plane writes `status.state` of jobs and `runtime.terminateRequested` of tasks)
are never lost.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from batchai_spec.emulator.batch.store import account_by_name
from batchai_spec.emulator.batchai.times import parse_duration
from batchai_spec.emulator.clock import iso8601

BUSY = ("preparing", "running")


@dataclass
class TaskRow:
    account: str
    job_id: str
    task_id: str
    body: dict[str, Any]
    status: dict[str, Any]
    runtime: dict[str, Any]
    seq: int

    @property
    def key(self) -> str:
        return f"{self.job_id}/{self.task_id}"

    @property
    def state(self) -> str:
        return self.status.get("state", "active")

    @property
    def nodes(self) -> list[str]:
        return list(self.runtime.get("nodes") or ([self.runtime["node"]] if self.runtime.get("node") else []))

    @property
    def instances(self) -> int | None:
        """numberOfInstances of a multi-instance task (None for an ordinary one)."""
        settings = self.body.get("multiInstanceSettings")
        if settings is None:
            return None
        return max(int(settings.get("numberOfInstances") or 1), 1)


@dataclass
class JobRow:
    account: str
    job_id: str
    body: dict[str, Any]
    status: dict[str, Any]
    runtime: dict[str, Any]
    seq: int
    created_at: float

    @property
    def state(self) -> str:
        return self.status.get("state", "active")

    @property
    def pool_id(self) -> str | None:
        return (self.body.get("poolInfo") or {}).get("poolId")


@dataclass
class NodeRow:
    account: str
    pool: str
    node_id: str
    state: str
    since: float
    task_key: str | None
    runtime: dict[str, Any]
    seq: int


def _task(row: sqlite3.Row) -> TaskRow:
    return TaskRow(row["account"], row["job_id"], row["task_id"], json.loads(row["body"]), json.loads(row["status"]),
                   json.loads(row["runtime"]), row["seq"])


def _job(row: sqlite3.Row) -> JobRow:
    return JobRow(row["account"], row["job_id"], json.loads(row["body"]), json.loads(row["status"]),
                  json.loads(row["runtime"]), row["seq"], row["created_at"])


def _node(row: sqlite3.Row) -> NodeRow:
    return NodeRow(row["account"], row["pool"], row["node_id"], row["state"], row["since"], row["task_key"],
                   json.loads(row["runtime"]), row["seq"])


def get_task(db: sqlite3.Connection, account: str, job_id: str, task_id: str) -> TaskRow | None:
    row = db.execute("SELECT * FROM batch_tasks WHERE account = ? AND job_id = ? AND task_id = ?",
                     (account, job_id, task_id)).fetchone()
    return _task(row) if row is not None else None


def _rows_where(db: sqlite3.Connection, table: str, condition: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """The rows of `table` (one of this module's, never a caller's string) matching `condition`, in creation order."""
    return db.execute(f"SELECT * FROM {table} WHERE {condition} ORDER BY seq", params).fetchall()  # noqa: S608


def _state_in(states: tuple[str, ...]) -> str:
    """The condition `status.state` is one of `states` (bound as parameters)."""
    return f"json_extract(status, '$.state') IN ({','.join('?' for _ in states)})"


def tasks_in_states(db: sqlite3.Connection, states: tuple[str, ...]) -> list[TaskRow]:
    return [_task(row) for row in _rows_where(db, "batch_tasks", _state_in(states), states)]


def tasks_to_terminate(db: sqlite3.Connection) -> list[TaskRow]:
    """Active tasks with a terminate request (`runtime.terminateRequested`)."""
    return [_task(row) for row in _rows_where(db, "batch_tasks", "json_extract(status, '$.state') = 'active'"
                                              " AND json_extract(runtime, '$.terminateRequested')")]


def tasks_of_job(db: sqlite3.Connection, account: str, job_id: str) -> list[TaskRow]:
    rows = db.execute("SELECT * FROM batch_tasks WHERE account = ? AND job_id = ? ORDER BY seq", (account, job_id))
    return [_task(row) for row in rows]


def task_states_of_job(db: sqlite3.Connection, account: str, job_id: str) -> dict[str, int]:
    rows = db.execute("SELECT json_extract(status, '$.state') AS state, COUNT(*) AS n FROM batch_tasks"
                      " WHERE account = ? AND job_id = ? GROUP BY 1", (account, job_id))
    return {row["state"] or "active": row["n"] for row in rows}


def save_task(db: sqlite3.Connection, task: TaskRow) -> None:
    """`subtasks` (multi-instance: what subtasksinfo answers) is kept in `status` and mirrored in `runtime`."""
    if "subtasks" in task.status:
        task.runtime["subtasks"] = task.status["subtasks"]
    else:
        task.runtime.pop("subtasks", None)
    db.execute("UPDATE batch_tasks SET status = ?, runtime = ? WHERE account = ? AND job_id = ? AND task_id = ?",
               (json.dumps(task.status), json.dumps(task.runtime), task.account, task.job_id, task.task_id))


def get_job(db: sqlite3.Connection, account: str, job_id: str) -> JobRow | None:
    row = db.execute("SELECT * FROM batch_jobs WHERE account = ? AND job_id = ?", (account, job_id)).fetchone()
    return _job(row) if row is not None else None


def jobs_in_states(db: sqlite3.Connection, states: tuple[str, ...]) -> list[JobRow]:
    return [_job(row) for row in _rows_where(db, "batch_jobs", _state_in(states), states)]


def jobs_with_node_tasks(db: sqlite3.Connection) -> list[JobRow]:
    """Jobs whose preparation or release task runs on some node (`runtime.nodeTasks` not empty)."""
    return [_job(row) for row in _rows_where(db, "batch_jobs", "json_extract(runtime, '$.nodeTasks') IS NOT NULL"
                                             " AND json_extract(runtime, '$.nodeTasks') != '{}'")]


def save_job(db: sqlite3.Connection, job: JobRow) -> None:
    """Also brings the data plane's views up to date: `status.preparationAndReleaseTaskStatus` (the list
    jobpreparationandreleasetaskstatus answers) and `runtime.releasePending` (see `release_pending`)."""
    entries = job.runtime.get("preparationAndRelease")
    if entries is not None:
        job.status["preparationAndReleaseTaskStatus"] = list(entries.values())
    pending = release_pending(db, job)
    if pending:
        job.runtime["releasePending"] = True
    else:
        job.runtime.pop("releasePending", None)
    db.execute("UPDATE batch_jobs SET status = ?, runtime = ? WHERE account = ? AND job_id = ?",
               (json.dumps(job.status), json.dumps(job.runtime), job.account, job.job_id))


def release_pending(db: sqlite3.Connection, job: JobRow) -> bool:
    """Whether the job must not end yet: a job preparation or release task of it runs on a node, or a node that
    ran its preparation (and is still there) has not run its release task."""
    if any(job.runtime.get("nodeTasks") or {}):
        return True
    if not job.body.get("jobReleaseTask"):
        return False
    for node_id, entry in (job.runtime.get("preparationAndRelease") or {}).items():
        if "jobPreparationTaskExecutionInfo" not in entry or "jobReleaseTaskExecutionInfo" in entry:
            continue
        if get_node(db, job.account, entry.get("poolId") or job.pool_id or "", node_id) is not None:
            return True
    return False


def get_node(db: sqlite3.Connection, account: str, pool: str, node_id: str) -> NodeRow | None:
    row = db.execute("SELECT * FROM batch_nodes WHERE account = ? AND pool = ? AND node_id = ?",
                     (account, pool, node_id)).fetchone()
    return _node(row) if row is not None else None


def nodes_of_pool(db: sqlite3.Connection, account: str, pool: str) -> list[NodeRow]:
    rows = db.execute("SELECT * FROM batch_nodes WHERE account = ? AND pool = ? ORDER BY seq", (account, pool))
    return [_node(row) for row in rows]


def busy_nodes(db: sqlite3.Connection) -> list[NodeRow]:
    return [_node(row) for row in db.execute("SELECT * FROM batch_nodes WHERE task_key IS NOT NULL ORDER BY seq")]


def save_node(db: sqlite3.Connection, node: NodeRow) -> None:
    db.execute("UPDATE batch_nodes SET state = ?, since = ?, task_key = ? WHERE account = ? AND pool = ?"
               " AND node_id = ?", (node.state, node.since, node.task_key, node.account, node.pool, node.node_id))


def account_url(db: sqlite3.Connection, account: str) -> str | None:
    """`https://{accountEndpoint}` as the account's ARM body names it (None when it names none)."""
    found = account_by_name(db, account)
    endpoint = ((found.body.get("properties") or {}).get("accountEndpoint") if found else None) or ""
    if not endpoint:
        return None
    return endpoint.rstrip("/") if "://" in endpoint else f"https://{endpoint.rstrip('/')}"


# ----------------------------------------------------------------------------------------------- status fields


def set_state(status: dict[str, Any], state: str, now: float) -> None:
    """`state` with its transition time; the previous pair moves to `previousState*`."""
    previous = status.get("state")
    if previous == state:
        return
    if previous is not None:
        status["previousState"] = previous
        if status.get("stateTransitionTime"):
            status["previousStateTransitionTime"] = status["stateTransitionTime"]
    status["state"] = state
    status["stateTransitionTime"] = iso8601(now)


def failure(category: str, code: str, message: str) -> dict[str, Any]:
    return {"category": category, "code": code, "message": message}


# What Azure reports. Category spelling as the real service wrote it (recordings: `"category":"UserError"`; the
# SDK's enum is `usererror` and compares case-insensitively). `TaskEnded` + "Task Was Ended by User Request" for
# a terminated task; `ServerError`/`TaskEnded` for maxWallClockTime (Batch's error-checking article).
EXIT_CODE_FAILURE = failure("UserError", "FailureExitCode", "The task exited with an exit code representing a failure")
ENDED_BY_USER = failure("UserError", "TaskEnded", "Task Was Ended by User Request")
WALL_CLOCK = failure("ServerError", "TaskEnded",
                     "The task ran longer than its constraints.maxWallClockTime and was terminated")


# ----------------------------------------------------------------------------------------------- durations

_UNLIMITED = timedelta(days=10675199)  # Batch's "no limit" (P10675199DT2H48M5.4775807S)
_DURATION = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
                       r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?")


def seconds(duration: str | None) -> float | None:
    """An ISO-8601 duration in seconds; None when absent or Batch's unlimited value."""
    if not duration:
        return None
    try:
        span = parse_duration(duration)
    except ValueError:
        match = _DURATION.fullmatch(duration.strip().upper())
        if match is None:
            return None
        years, months, weeks, days, hours, minutes, secs = (float(part) if part else 0.0 for part in match.groups())
        span = timedelta(days=years * 365 + months * 30 + weeks * 7 + days, hours=hours, minutes=minutes,
                         seconds=secs)
    if span >= _UNLIMITED:
        return None
    return span.total_seconds()
