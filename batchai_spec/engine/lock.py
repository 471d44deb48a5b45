"""One apply or destroy of a spec against an endpoint at a time.

The lock is an advisory `flock` on a file beside the endpoint's state (the local emulator's state directory, or the
user's cache for Azure), holding who took it and when. The operating system releases it when its holder dies, so a
crashed holder never blocks anyone; `force-unlock` removes the file for the rare case of a lock on a shared file
system whose holder is gone.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import re
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from batchai_spec.engine.waits import Backoff
from batchai_spec.errors import UserError


def lock_path(lock_dir: Path, spec_name: str) -> Path:
    return lock_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', spec_name)}.lock"


def describe_holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "an unknown holder"
    described = (
        f"{holder.get('command', '?')} by {holder.get('user', '?')}@{holder.get('host', '?')} "
        f"(pid {holder.get('pid', '?')}) since {holder.get('since', '?')}"
    )
    return f"{described}, {holder['doing']}" if holder.get("doing") else described


class SpecLock:
    """`with SpecLock(...)` takes the lock (waiting up to `timeout` seconds) and releases it at the end."""

    def __init__(
        self,
        lock_dir: Path,
        spec_name: str,
        command: str,
        *,
        timeout: float = 0,
        on_wait: Callable[[str], None] | None = None,
    ):
        self.path = lock_path(lock_dir, spec_name)
        self.command = command
        self.timeout = timeout
        self.on_wait = on_wait
        self._handle = None
        self._record: dict[str, object] = {}

    def acquire(self, timeout: float, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the lock, waiting up to `timeout` seconds; `on_wait(holder)` is called once if it has to wait."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        backoff = Backoff(first=0.1, most=2.0)
        waiting = False
        while True:
            handle = open(self.path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                if time.monotonic() >= deadline:
                    raise UserError(
                        f"the spec is locked by {describe_holder(self.path)}; wait with --lock-timeout DURATION (e.g. 10m), or "
                        f"if that run is gone for good: batchai-spec force-unlock SPEC"
                    ) from None
                if not waiting and on_wait is not None:
                    on_wait(describe_holder(self.path))
                waiting = True
                backoff.wait()
                continue
            # force-unlock may have removed the file we locked: then lock the new one.
            if not self.path.exists() or os.stat(self.path).st_ino != os.fstat(handle.fileno()).st_ino:
                handle.close()
                continue
            self._handle = handle
            self._record = {
                "command": self.command,
                "user": getpass.getuser(),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "argv": sys.argv[1:2],
            }
            self._write_record()
            return

    def note(self, doing: str) -> None:
        """What the holder does now ('following job.exp/train'), for the message of a command that waits or is
        refused."""
        if self._handle is not None:
            self._record["doing"] = doing
            self._write_record()

    def _write_record(self) -> None:
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps(self._record))
        self._handle.flush()

    def release(self) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "SpecLock":
        self.acquire(self.timeout, on_wait=self.on_wait)
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def force_unlock(lock_dir: Path, spec_name: str) -> str | None:
    """Remove the lock file; returns who held it, or None when there was none."""
    path = lock_path(lock_dir, spec_name)
    if not path.exists():
        return None
    holder = describe_holder(path) if path.stat().st_size else None
    path.unlink(missing_ok=True)
    return holder or "nobody (the lock was free)"
