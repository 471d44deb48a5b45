"""Azure Batch rows in the emulator's SQLite database: the tables both halves share.

- `batch_accounts` (ARM, Microsoft.Batch/batchAccounts): one row per account, its name globally unique (it is the
  DNS label of the account's endpoint, and the data plane finds the account by it); `body` is the ARM resource as
  GET returns it (without keys), `key1`/`key2` the shared keys listKeys returns.
- `batch_pools`: the pools of an account, created through ARM (`PUT .../pools/{name}`) or the data plane
  (`POST /pools`). `properties` is the ARM `properties` object as stored (camelCase, ARM enum spelling), `status`
  the server-owned fields (allocation state, current nodes, times, resize errors), `runtime` what only the
  emulator uses.
- `batch_nodes`: the compute nodes of pools, their state machine driven by the scheduler's clock.
- `batch_jobs` / `batch_tasks`: the data plane's jobs and tasks (`body` as the client sent it, data-plane
  spelling; `status` the server-owned fields; `runtime` the emulator's own facts: processes, directories).

Names compare without case where Azure compares them so (account, pool, job and task ids are case-insensitive
and case-preserving). `seq` orders lists as they were created.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

from batchai_spec.emulator.state import register_schema

register_schema(
    """
    CREATE TABLE IF NOT EXISTS batch_accounts (
        name TEXT PRIMARY KEY COLLATE NOCASE,
        subscription TEXT NOT NULL,
        resource_group TEXT NOT NULL COLLATE NOCASE,
        location TEXT NOT NULL,
        body TEXT NOT NULL,
        key1 TEXT NOT NULL,
        key2 TEXT NOT NULL,
        etag TEXT NOT NULL,
        modified_at REAL NOT NULL,
        seq INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS batch_pools (
        account TEXT NOT NULL COLLATE NOCASE,
        name TEXT NOT NULL COLLATE NOCASE,
        properties TEXT NOT NULL,
        status TEXT NOT NULL,
        runtime TEXT NOT NULL,
        tags TEXT NOT NULL,
        etag TEXT NOT NULL,
        created_at REAL NOT NULL,
        modified_at REAL NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (account, name)
    );
    CREATE TABLE IF NOT EXISTS batch_nodes (
        account TEXT NOT NULL COLLATE NOCASE,
        pool TEXT NOT NULL COLLATE NOCASE,
        node_id TEXT NOT NULL,
        state TEXT NOT NULL,
        since REAL NOT NULL,
        due_at REAL,
        task_key TEXT,
        runtime TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (account, pool, node_id)
    );
    CREATE TABLE IF NOT EXISTS batch_jobs (
        account TEXT NOT NULL COLLATE NOCASE,
        job_id TEXT NOT NULL COLLATE NOCASE,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        runtime TEXT NOT NULL,
        etag TEXT NOT NULL,
        created_at REAL NOT NULL,
        modified_at REAL NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (account, job_id)
    );
    CREATE TABLE IF NOT EXISTS batch_tasks (
        account TEXT NOT NULL COLLATE NOCASE,
        job_id TEXT NOT NULL COLLATE NOCASE,
        task_id TEXT NOT NULL COLLATE NOCASE,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        runtime TEXT NOT NULL,
        etag TEXT NOT NULL,
        created_at REAL NOT NULL,
        modified_at REAL NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (account, job_id, task_id)
    );
    """
)


@dataclass
class Account:
    name: str
    subscription: str
    resource_group: str
    location: str
    body: dict[str, Any]
    key1: str
    key2: str
    etag: str
    modified_at: float
    seq: int = 0


def data_plane_etag() -> str:
    """An entity tag as the data plane writes it: unquoted, `0x` and 15 hex digits (ARM quotes the same form)."""
    return f"0x{uuid.uuid4().hex[:15].upper()}"


def next_seq(db: sqlite3.Connection, table: str) -> int:
    return db.execute(f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {table}").fetchone()[0]  # noqa: S608 - fixed names


def account_by_name(db: sqlite3.Connection, name: str) -> Account | None:
    """The account a data-plane request names (its keys included), None when there is none."""
    row = db.execute("SELECT * FROM batch_accounts WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    return Account(
        name=row["name"], subscription=row["subscription"], resource_group=row["resource_group"],
        location=row["location"], body=json.loads(row["body"]), key1=row["key1"], key2=row["key2"],
        etag=row["etag"], modified_at=row["modified_at"], seq=row["seq"],
    )
