"""Reading and writing the shared Batch rows (store.py) from the data plane: JSON columns, lookups that answer the
service's NotFound errors, the defaults every job and task gets."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from batchai_spec.emulator.batch.dataplane.wire import BatchError, invalid_property, not_found

RETENTION_DEFAULT = "P7D"
JOB_STATE_ERRORS = {
    "completed": ("JobCompleted", "The specified job is already in a completed state."),
    "deleting": ("JobBeingDeleted", "The specified job has been marked for deletion and is being garbage collected."),
    "terminating": ("JobBeingTerminated", "The specified job is being terminated."),
}


def loads(text: str | None) -> dict[str, Any]:
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {}


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def job_row(db: sqlite3.Connection, account: str, job_id: str) -> sqlite3.Row:
    row = db.execute("SELECT * FROM batch_jobs WHERE account = ? AND job_id = ?", (account, job_id)).fetchone()
    if row is None:
        raise not_found("JobNotFound", "job")
    return row


def task_row(db: sqlite3.Connection, account: str, job_id: str, task_id: str) -> sqlite3.Row:
    row = db.execute(
        "SELECT * FROM batch_tasks WHERE account = ? AND job_id = ? AND task_id = ?", (account, job_id, task_id)
    ).fetchone()
    if row is None:
        raise not_found("TaskNotFound", "task")
    return row


def refuse_job_state(state: str, *, allowed: tuple[str, ...] = ("active", "disabling", "disabled", "enabling"),
                     errors: dict[str, tuple[str, str]] | None = None) -> None:
    """409 with the service's code for a job whose state forbids the operation (`errors`: codes of the caller's
    own for some states)."""
    if state in allowed:
        return
    code, message = {**JOB_STATE_ERRORS, **(errors or {})}.get(
        state, ("JobNotActive", "The specified job is not in active state."))
    raise BatchError(409, code, message)


def user_identity(value: Any, name: str = "userIdentity") -> dict[str, Any]:
    """An auto-user of the pool scope without elevation unless told otherwise (the service's default)."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise invalid_property(name, value, "userIdentity must be an object.")
    if value.get("username"):
        return {"username": value["username"]}
    auto = value.get("autoUser") or {}
    return {"autoUser": {"scope": str(auto.get("scope") or "pool").lower(),
                         "elevationLevel": str(auto.get("elevationLevel") or "nonadmin").lower()}}


def integer(value: Any, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_property(name, value, "The value must be an integer.")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise invalid_property(name, value, f"The value must be between {minimum} and {maximum}.")
    return value


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_property(name, value, "The value must be true or false.")
    return value


def choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise invalid_property(name, value, f"The value must be one of {', '.join(allowed)}.")
    return value.lower()


def remove_directory(root: Path, directory: str | None) -> None:
    """Delete a task's directory on its node (the runner's `runtime.taskDir`), only ever inside the state dir."""
    if not directory:
        return
    path = Path(directory)
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return
    shutil.rmtree(path, ignore_errors=True)



def work_pending(db: sqlite3.Connection) -> bool:
    """Whether Batch has something under way that an idle emulator must not cut short: a task preparing or
    running, a job being terminated, deleted, disabled or enabled, a pool resizing or being deleted."""
    return db.execute(
        "SELECT 1 FROM batch_tasks WHERE json_extract(status, '$.state') IN ('preparing', 'running')"
        " UNION ALL SELECT 1 FROM batch_jobs WHERE json_extract(status, '$.state') IN"
        " ('terminating', 'deleting', 'disabling', 'enabling')"
        " UNION ALL SELECT 1 FROM batch_pools WHERE json_extract(status, '$.allocationState') IN"
        " ('Resizing', 'Stopping') OR json_extract(status, '$.provisioningState') = 'Deleting' LIMIT 1"
    ).fetchone() is not None
