"""`endpoint.json`: how a client finds a running emulator (URLs, CA certificate, token, subscription), and the
other files of a state dir that say whether one serves it. Light on purpose: the CLI imports this module, never
the server's.

- `endpoint.json`: written by the emulator once it serves; removed when it stops (or decides to stop).
- `emulator.lock`: flock'ed by the serving emulator for its whole life (one emulator per state dir), its pid
  written in it, so that a client sees an emulator that is starting or stopping.
- `clients.lock`: every command using the emulator holds a shared flock on it; an idle emulator stops only once it
  can take it exclusively (no command attached), and removes endpoint.json while it holds it.
- `emulator.log`: the output of an emulator started in the background by a command.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

ENDPOINT_FILE = "endpoint.json"
LOCK_FILE = "emulator.lock"
CLIENTS_FILE = "clients.lock"
LOG_FILE = "emulator.log"
DATABASE_FILE = "state.sqlite3"


@dataclass(frozen=True)
class Endpoint:
    pid: int
    arm_url: str  # https://127.0.0.1:PORT, the ARM base_url for every management client
    storage_url: str  # account A's file endpoint (account_url) is f"{storage_url}/A"
    ca_cert: str  # absolute path of the PEM to pass as connection_verify
    token: str  # the bearer token ARM accepts (a secret: never print it)
    subscription_id: str
    state_dir: str
    started_at: float = 0.0  # time.time() when it started serving (0: unknown)
    idle_timeout: float | None = None  # seconds without a job, a request or a command before it stops itself
    # The Azure Batch data plane; account A's endpoint (BatchClient's) is f"{batch_url}/A". Empty in files written
    # by an emulator from before it served Batch.
    batch_url: str = ""

    def file_endpoint(self, account: str) -> str:
        return f"{self.storage_url}/{account}"

    def batch_endpoint(self, account: str) -> str:
        return f"{self.batch_url}/{account}"

    def to_json(self) -> dict:
        return asdict(self)

    def __repr__(self) -> str:
        return (
            f"Endpoint(pid={self.pid}, arm_url={self.arm_url!r}, storage_url={self.storage_url!r},"
            f" batch_url={self.batch_url!r})"
        )

    @classmethod
    def from_json(cls, document: dict) -> Endpoint:
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in document.items() if key in known})

    @classmethod
    def read(cls, path: Path) -> Endpoint:
        return cls.from_json(json.loads(path.read_text()))

    def write(self, path: Path) -> None:
        """Owner-only (0600) from the first byte: the file holds the token."""
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(self.to_json(), handle, indent=2)
        os.replace(temporary, path)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie, dead but not yet reaped, counts as exited)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # "pid (comm) S ...": the state follows the last ')' (comm may itself hold parentheses).
            return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True  # no /proc here: os.kill's answer stands


def live_endpoint(state_dir: Path) -> Endpoint | None:
    """The endpoint of the emulator serving `state_dir`, if one does: its file is there and names the process that
    holds the state dir's lock (a file left by an emulator that was killed may name a pid since given to another
    process)."""
    try:
        endpoint = Endpoint.read(state_dir / ENDPOINT_FILE)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(endpoint.pid, int) or endpoint.pid != lock_holder(state_dir):
        return None
    return endpoint


def lock_holder(state_dir: Path) -> int | None:
    """The pid of the emulator holding `state_dir` (serving, starting or stopping). Told by the kernel's table of
    locks, not by the pid written in the lock file, which outlives a killed emulator and may name a pid reused by
    another process; the file's pid stands only where /proc/locks cannot be read."""
    path = state_dir / LOCK_FILE
    try:
        info = path.stat()
        text = path.read_text().strip()
    except OSError:
        return None
    written = int(text) if text.isdigit() else None
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return written if written is not None and pid_alive(written) else None
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 21889 fe:00:2146365 0 EOF" (a blocked waiter's line has "->" after "1:")
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[3] == "WRITE" and fields[5] == device:
            pid = int(fields[4])
            return pid if pid_alive(pid) else None
    return None


def active_jobs(state_dir: Path) -> list[str] | None:
    """EXPERIMENT/JOB (state) of the jobs of `state_dir` that are queued, running or terminating, read from the
    database without the server; None when it cannot be read."""
    import sqlite3

    database = state_dir / DATABASE_FILE
    if not database.exists():
        return []
    try:
        connection = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=2.0)
        try:
            rows = connection.execute(
                "SELECT id, json_extract(status, '$.executionState') FROM batchai_resources WHERE kind = 'job'"
                " AND json_extract(status, '$.executionState') IN ('queued', 'running', 'terminating') ORDER BY seq"
            ).fetchall()
        finally:
            connection.close()
    except sqlite3.Error as error:
        if "no such table" in str(error):
            return []
        return None
    jobs = []
    for resource_id, state in rows:
        parts = str(resource_id).split("/")
        jobs.append(f"{'/'.join(parts[-3::2])} ({state})" if len(parts) >= 4 else f"{resource_id} ({state})")
    return jobs
