"""The emulator's persistent state: one SQLite database (WAL) plus file contents on disk, all under one directory.

Every module that keeps rows declares its tables with `register_schema` at import time; `State` creates them
idempotently when it opens. Handlers run in a thread pool, so each thread gets its own connection and writes go
through `transaction()` (BEGIN IMMEDIATE, so concurrent writers queue instead of failing half way).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SCHEMAS: list[str] = []
# Tables whose rows `reset` keeps: the emulator's identity (token, subscription) must outlive a reset.
_KEPT_ON_RESET = {"emulator_settings"}


def register_schema(ddl: str) -> None:
    """Declare tables (idempotent DDL: CREATE TABLE IF NOT EXISTS ...) that every State creates when it opens."""
    if ddl not in _SCHEMAS:
        _SCHEMAS.append(ddl)


register_schema("CREATE TABLE IF NOT EXISTS emulator_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


class State:
    """The state directory: `state.sqlite3`, `files/` (share contents) and the emulator's identity."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.database_path = self.root / "state.sqlite3"
        self.files_root = self.root / "files"
        self.files_root.mkdir(exist_ok=True)
        # The database holds the token and the account keys: owner only, before SQLite creates it.
        os.close(os.open(self.database_path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(self.database_path, 0o600)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._create_schema()
        self.subscription_id = self._setting("subscription_id", lambda: str(uuid.uuid4()))
        self.tenant_id = self._setting("tenant_id", lambda: str(uuid.uuid4()))
        self.token = self._setting("token", lambda: secrets.token_urlsafe(32))
        # Set by the server once its sockets are bound: resources embed their own URLs (storage endpoints, LROs).
        self.arm_url = ""
        self.storage_url = ""

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; use `transaction()` for anything that writes)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.database_path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            self._local.connection = connection
            self._local.depth = 0
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; nested uses on the same thread join the outer one."""
        connection = self.connection()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield connection
            finally:
                self._local.depth -= 1
            return
        connection.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        else:
            connection.execute("COMMIT")
        finally:
            self._local.depth = 0

    def reset(self) -> None:
        """Forget every resource and file, keeping the emulator's identity (token, subscription, certificates)."""
        with self.transaction() as db:
            tables = [row["name"] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                if table not in _KEPT_ON_RESET and not table.startswith("sqlite_"):
                    db.execute(f'DELETE FROM "{table}"')
        shutil.rmtree(self.files_root, ignore_errors=True)
        self.files_root.mkdir(exist_ok=True)

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def _create_schema(self) -> None:
        connection = self.connection()
        for ddl in _SCHEMAS:
            connection.executescript(ddl)

    def _setting(self, key: str, generate) -> str:
        with self.transaction() as db:
            row = db.execute("SELECT value FROM emulator_settings WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return row["value"]
            value = generate()
            db.execute("INSERT INTO emulator_settings (key, value) VALUES (?, ?)", (key, value))
            return value
