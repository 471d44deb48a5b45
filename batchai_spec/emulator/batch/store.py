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


# ------------------------------------------------------------------------------------------ accounts, pools, nodes
# Accessors for the ARM half (accounts.py, pools.py, nodes.py) that the data plane uses too. Pool `properties` are
# the ARM `properties` (camelCase, ARM enum spelling: `Steady`, `TaskCompletion`, secrets included); `status` the
# server-owned fields as ARM shows them (`provisioningState`, `allocationState`, `currentDedicatedNodes`, ...);
# node `state` is the data plane's lowercase spelling (`starting`, `idle`, `running`, ...), `runtime` what the
# emulator knows of the node (see nodes.py for the keys).


def account_row(db: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    return db.execute("SELECT * FROM batch_accounts WHERE name = ?", (name,)).fetchone()


def accounts_in_group(db: sqlite3.Connection, resource_group: str) -> list[Account]:
    rows = db.execute(
        "SELECT name FROM batch_accounts WHERE resource_group = ? ORDER BY seq", (resource_group,)
    ).fetchall()
    return [account for row in rows if (account := account_by_name(db, row["name"])) is not None]


def all_accounts(db: sqlite3.Connection) -> list[Account]:
    rows = db.execute("SELECT name FROM batch_accounts ORDER BY seq").fetchall()
    return [account for row in rows if (account := account_by_name(db, row["name"])) is not None]


@dataclass
class Pool:
    account: str
    name: str
    properties: dict[str, Any]
    status: dict[str, Any]
    runtime: dict[str, Any]
    tags: dict[str, str]
    etag: str  # unquoted (`0x...`), as the data plane writes it; ARM quotes it
    created_at: float
    modified_at: float
    seq: int = 0

    @property
    def deleting(self) -> bool:
        return self.status.get("provisioningState") == "Deleting"


def _pool(row: sqlite3.Row) -> Pool:
    return Pool(
        account=row["account"], name=row["name"], properties=json.loads(row["properties"]),
        status=json.loads(row["status"]), runtime=json.loads(row["runtime"]), tags=json.loads(row["tags"]),
        etag=row["etag"], created_at=row["created_at"], modified_at=row["modified_at"], seq=row["seq"],
    )


def get_pool(db: sqlite3.Connection, account: str, name: str) -> Pool | None:
    row = db.execute("SELECT * FROM batch_pools WHERE account = ? AND name = ?", (account, name)).fetchone()
    return None if row is None else _pool(row)


def list_pools(db: sqlite3.Connection, account: str | None = None) -> list[Pool]:
    """The pools of `account` (every account's when None), in creation order."""
    if account is None:
        rows = db.execute("SELECT * FROM batch_pools ORDER BY seq").fetchall()
    else:
        rows = db.execute("SELECT * FROM batch_pools WHERE account = ? ORDER BY seq", (account,)).fetchall()
    return [_pool(row) for row in rows]


def insert_pool(db: sqlite3.Connection, pool: Pool) -> None:
    pool.seq = next_seq(db, "batch_pools")
    db.execute(
        "INSERT INTO batch_pools (account, name, properties, status, runtime, tags, etag, created_at, modified_at,"
        " seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (pool.account, pool.name, json.dumps(pool.properties), json.dumps(pool.status), json.dumps(pool.runtime),
         json.dumps(pool.tags), pool.etag, pool.created_at, pool.modified_at, pool.seq),
    )


def save_pool(db: sqlite3.Connection, pool: Pool) -> None:
    db.execute(
        "UPDATE batch_pools SET properties = ?, status = ?, runtime = ?, tags = ?, etag = ?, modified_at = ?"
        " WHERE account = ? AND name = ?",
        (json.dumps(pool.properties), json.dumps(pool.status), json.dumps(pool.runtime), json.dumps(pool.tags),
         pool.etag, pool.modified_at, pool.account, pool.name),
    )


def delete_pool_row(db: sqlite3.Connection, account: str, name: str) -> None:
    """The pool's row and its nodes' rows (nodes.py removes pools only once their nodes have left)."""
    db.execute("DELETE FROM batch_nodes WHERE account = ? AND pool = ?", (account, name))
    db.execute("DELETE FROM batch_pools WHERE account = ? AND name = ?", (account, name))


@dataclass
class Node:
    account: str
    pool: str
    node_id: str
    state: str
    since: float  # when it entered `state` (stateTransitionTime)
    due_at: float | None  # starting: when it boots; leavingpool: when it may be gone
    task_key: str | None  # "{job_id}/{task_id}" while a task runs on it (the task runner sets and clears it)
    runtime: dict[str, Any]
    seq: int = 0


def _node(row: sqlite3.Row) -> Node:
    return Node(
        account=row["account"], pool=row["pool"], node_id=row["node_id"], state=row["state"], since=row["since"],
        due_at=row["due_at"], task_key=row["task_key"], runtime=json.loads(row["runtime"]), seq=row["seq"],
    )


def list_nodes(db: sqlite3.Connection, account: str, pool: str) -> list[Node]:
    rows = db.execute(
        "SELECT * FROM batch_nodes WHERE account = ? AND pool = ? ORDER BY seq", (account, pool)
    ).fetchall()
    return [_node(row) for row in rows]


def get_node(db: sqlite3.Connection, account: str, pool: str, node_id: str) -> Node | None:
    row = db.execute(
        "SELECT * FROM batch_nodes WHERE account = ? AND pool = ? AND node_id = ?", (account, pool, node_id)
    ).fetchone()
    return None if row is None else _node(row)


def insert_node(db: sqlite3.Connection, node: Node) -> None:
    node.seq = next_seq(db, "batch_nodes")
    db.execute(
        "INSERT INTO batch_nodes (account, pool, node_id, state, since, due_at, task_key, runtime, seq)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (node.account, node.pool, node.node_id, node.state, node.since, node.due_at, node.task_key,
         json.dumps(node.runtime), node.seq),
    )


def save_node(db: sqlite3.Connection, node: Node) -> None:
    db.execute(
        "UPDATE batch_nodes SET state = ?, since = ?, due_at = ?, task_key = ?, runtime = ?"
        " WHERE account = ? AND pool = ? AND node_id = ?",
        (node.state, node.since, node.due_at, node.task_key, json.dumps(node.runtime), node.account, node.pool,
         node.node_id),
    )


def delete_node_row(db: sqlite3.Connection, node: Node) -> None:
    db.execute("DELETE FROM batch_nodes WHERE account = ? AND pool = ? AND node_id = ?",
               (node.account, node.pool, node.node_id))
