"""Batch AI rows in the emulator's SQLite database.

`batchai_resources` holds every ARM-visible resource (workspaces, experiments, clusters, file servers, jobs) as
three JSON documents: `body`, the normalised create request (secrets included: the nodes need them; they are
removed when rendered); `status`, the server-owned fields the API returns (provisioning/allocation/execution
states, times, errors); and `runtime`, facts only the emulator uses (a job's output uuid, its processes, the
operations waiting for it). `batchai_nodes` holds the compute nodes of clusters.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from batchai_spec.emulator.batchai import ids
from batchai_spec.emulator.batchai.times import iso_millis
from batchai_spec.emulator.state import register_schema

register_schema(
    """
    CREATE TABLE IF NOT EXISTS batchai_resources (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        parent_key TEXT NOT NULL,
        id TEXT NOT NULL,
        name TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        runtime TEXT NOT NULL,
        etag TEXT NOT NULL,
        modified_at REAL NOT NULL,
        seq INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS batchai_resources_by_parent ON batchai_resources (parent_key, kind, seq);
    CREATE INDEX IF NOT EXISTS batchai_resources_by_kind ON batchai_resources (kind, seq);
    CREATE TABLE IF NOT EXISTS batchai_nodes (
        cluster_key TEXT NOT NULL,
        node_id TEXT NOT NULL,
        state TEXT NOT NULL,
        since REAL NOT NULL,
        due_at REAL,
        job_key TEXT,
        runtime TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (cluster_key, node_id)
    );
    """
)


@dataclass
class Resource:
    key: str
    kind: str
    parent_key: str
    id: str
    name: str
    body: dict[str, Any]
    status: dict[str, Any]
    runtime: dict[str, Any]
    etag: str
    modified_at: float
    seq: int = 0

    @property
    def properties(self) -> dict[str, Any]:
        return self.body.get("properties", {})


@dataclass
class Node:
    cluster_key: str
    node_id: str
    state: str  # preparing | idle | running | leaving | unusable
    since: float
    due_at: float | None
    job_key: str | None
    runtime: dict[str, Any] = field(default_factory=dict)
    seq: int = 0


def new_etag() -> str:
    return f'"0x{uuid.uuid4().hex[:15].upper()}"'


def _resource(row: sqlite3.Row) -> Resource:
    return Resource(
        key=row["key"], kind=row["kind"], parent_key=row["parent_key"], id=row["id"], name=row["name"],
        body=json.loads(row["body"]), status=json.loads(row["status"]), runtime=json.loads(row["runtime"]),
        etag=row["etag"], modified_at=row["modified_at"], seq=row["seq"],
    )


def _node(row: sqlite3.Row) -> Node:
    return Node(
        cluster_key=row["cluster_key"], node_id=row["node_id"], state=row["state"], since=row["since"],
        due_at=row["due_at"], job_key=row["job_key"], runtime=json.loads(row["runtime"]), seq=row["seq"],
    )


# ----------------------------------------------------------------------------------------------- resources


def get(db: sqlite3.Connection, resource_id: str, kind: str | None = None) -> Resource | None:
    row = db.execute("SELECT * FROM batchai_resources WHERE key = ?", (ids.key(resource_id),)).fetchone()
    if row is None or (kind is not None and row["kind"] != kind):
        return None
    return _resource(row)


def create(db: sqlite3.Connection, kind: str, resource_id: str, parent_id: str, body: dict[str, Any], now: float,
           *, status: dict[str, Any] | None = None, runtime: dict[str, Any] | None = None) -> Resource:
    """Insert a new resource, provisioned at `now` (the service reported `succeeded` as soon as it existed)."""
    stamp = iso_millis(now)
    return insert(db, Resource(
        key=ids.key(resource_id), kind=kind, parent_key=ids.key(parent_id), id=resource_id,
        name=resource_id.rsplit("/", 1)[1], body=body,
        status={"provisioningState": "succeeded", "provisioningStateTransitionTime": stamp, "creationTime": stamp,
                **(status or {})},
        runtime=runtime or {}, etag=new_etag(), modified_at=now,
    ))


def insert(db: sqlite3.Connection, resource: Resource) -> Resource:
    resource.seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM batchai_resources").fetchone()[0]
    db.execute(
        "INSERT INTO batchai_resources (key, kind, parent_key, id, name, body, status, runtime, etag, modified_at,"
        " seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            resource.key, resource.kind, resource.parent_key, resource.id, resource.name, json.dumps(resource.body),
            json.dumps(resource.status), json.dumps(resource.runtime), resource.etag, resource.modified_at,
            resource.seq,
        ),
    )
    return resource


def save(db: sqlite3.Connection, resource: Resource) -> None:
    """Write back body, status and runtime (etag and modification time only change through `touch`)."""
    db.execute(
        "UPDATE batchai_resources SET body = ?, status = ?, runtime = ?, etag = ?, modified_at = ? WHERE key = ?",
        (
            json.dumps(resource.body), json.dumps(resource.status), json.dumps(resource.runtime), resource.etag,
            resource.modified_at, resource.key,
        ),
    )


def touch(resource: Resource, now: float) -> None:
    """A client changed the resource (PUT/PATCH): new ETag and Last-Modified; state changes never do this."""
    resource.etag = new_etag()
    resource.modified_at = now


def delete(db: sqlite3.Connection, resource_key: str) -> None:
    db.execute("DELETE FROM batchai_resources WHERE key = ?", (resource_key,))
    db.execute("DELETE FROM batchai_nodes WHERE cluster_key = ?", (resource_key,))


def children(db: sqlite3.Connection, parent_key: str, kind: str | None = None) -> list[Resource]:
    if kind is None:
        rows = db.execute("SELECT * FROM batchai_resources WHERE parent_key = ? ORDER BY seq", (parent_key,))
    else:
        rows = db.execute(
            "SELECT * FROM batchai_resources WHERE parent_key = ? AND kind = ? ORDER BY seq", (parent_key, kind)
        )
    return [_resource(row) for row in rows]


def of_kind(db: sqlite3.Connection, kind: str) -> list[Resource]:
    rows = db.execute("SELECT * FROM batchai_resources WHERE kind = ? ORDER BY seq", (kind,))
    return [_resource(row) for row in rows]


def with_key_prefix(db: sqlite3.Connection, prefix: str, kind: str) -> list[Resource]:
    """Resources whose id starts with `prefix` (case-insensitive), e.g. every workspace of a resource group."""
    pattern = ids.key(prefix).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = db.execute(
        "SELECT * FROM batchai_resources WHERE kind = ? AND key LIKE ? ESCAPE '\\' ORDER BY seq", (kind, pattern)
    )
    return [_resource(row) for row in rows]


def jobs_in_states(db: sqlite3.Connection, states: Iterable[str]) -> list[Resource]:
    wanted = list(states)
    marks = ", ".join("?" for _ in wanted)
    rows = db.execute(
        f"SELECT * FROM batchai_resources WHERE kind = 'job'"
        f" AND json_extract(status, '$.executionState') IN ({marks}) ORDER BY seq",
        wanted,
    )
    return [_resource(row) for row in rows]


def being_deleted(db: sqlite3.Connection) -> list[Resource]:
    rows = db.execute(
        "SELECT * FROM batchai_resources WHERE json_extract(status, '$.provisioningState') = 'deleting' ORDER BY seq"
    )
    return [_resource(row) for row in rows]


# ----------------------------------------------------------------------------------------------- nodes


def nodes(db: sqlite3.Connection, cluster_key: str) -> list[Node]:
    rows = db.execute("SELECT * FROM batchai_nodes WHERE cluster_key = ? ORDER BY seq", (cluster_key,))
    return [_node(row) for row in rows]


def nodes_of_job(db: sqlite3.Connection, job_key: str) -> list[Node]:
    rows = db.execute("SELECT * FROM batchai_nodes WHERE job_key = ? ORDER BY seq", (job_key,))
    return [_node(row) for row in rows]


def insert_node(db: sqlite3.Connection, node: Node) -> None:
    node.seq = db.execute(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM batchai_nodes WHERE cluster_key = ?", (node.cluster_key,)
    ).fetchone()[0]
    db.execute(
        "INSERT INTO batchai_nodes (cluster_key, node_id, state, since, due_at, job_key, runtime, seq)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            node.cluster_key, node.node_id, node.state, node.since, node.due_at, node.job_key,
            json.dumps(node.runtime), node.seq,
        ),
    )


def save_node(db: sqlite3.Connection, node: Node) -> None:
    db.execute(
        "UPDATE batchai_nodes SET state = ?, since = ?, due_at = ?, job_key = ?, runtime = ?"
        " WHERE cluster_key = ? AND node_id = ?",
        (node.state, node.since, node.due_at, node.job_key, json.dumps(node.runtime), node.cluster_key, node.node_id),
    )


def delete_node(db: sqlite3.Connection, node: Node) -> None:
    db.execute(
        "DELETE FROM batchai_nodes WHERE cluster_key = ? AND node_id = ?", (node.cluster_key, node.node_id)
    )
