"""Real processes for node tasks (setup tasks, job tasks) that outlive the emulator and can be found again.

Each task runs a generated `sh` script in a new session (its own process group, so one signal stops the whole
tree and a closing terminal does not). The script writes `PHASE CODE` to an exit file when its command ends, so
an emulator that restarted, and is no longer the task's parent, still learns the exit code. Records keep the pid
and the process start time from /proc, so a recycled pid is never mistaken for the task.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TaskRecord:
    """What the database keeps about a launched task."""

    pid: int
    start_ticks: int | None
    exit_file: str

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "startTicks": self.start_ticks, "exitFile": self.exit_file}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> TaskRecord:
        return cls(document["pid"], document.get("startTicks"), document["exitFile"])


@dataclass(frozen=True)
class Outcome:
    """A finished task: the phase that ended it (`preparation` or `command`) and its exit code.
    `phase` is None when the task ended without writing its exit file (killed, or lost)."""

    phase: str | None
    exit_code: int | None


@dataclass(frozen=True)
class Step:
    """One command of a task script, its output appended to two files."""

    phase: str
    argv: list[str]
    stdout: Path
    stderr: Path


def task_script(steps: list[Step], exit_file: Path) -> str:
    """`sh` source that runs the steps in order, stops at the first failure and records how it ended."""
    exit_path = shlex.quote(str(exit_file))
    temporary = shlex.quote(str(exit_file) + ".tmp")
    lines = [
        "#!/bin/sh",
        "# Written by the Batch AI emulator: runs the steps of one task and records how it ended.",
        f'finish() {{ printf "%s %s\\n" "$1" "$2" > {temporary} && mv {temporary} {exit_path}; exit "$2"; }}',
    ]
    for step in steps:
        command = " ".join(shlex.quote(part) for part in step.argv)
        out, err = shlex.quote(str(step.stdout)), shlex.quote(str(step.stderr))
        lines.append(f"{command} </dev/null >>{out} 2>>{err}")
        lines.append(f'code=$?; [ "$code" -eq 0 ] || finish {step.phase} "$code"')
    lines.append("finish command 0")
    return "\n".join(lines) + "\n"


def launch(script: Path, env: Mapping[str, str], cwd: Path) -> tuple[subprocess.Popen, TaskRecord]:
    exit_file = script.with_suffix(".exit")
    exit_file.unlink(missing_ok=True)
    process = subprocess.Popen(
        ["/bin/sh", str(script)],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    return process, TaskRecord(process.pid, start_ticks(process.pid), str(exit_file))


def start_ticks(pid: int) -> int | None:
    """The process start time (clock ticks since boot, /proc/PID/stat field 22), or None where there is no /proc."""
    fields_after_name = _stat_fields(pid)
    return int(fields_after_name[19]) if fields_after_name else None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its closing one.
    return text[text.rindex(")") + 2:].split()


def _alive(record: TaskRecord) -> bool:
    try:
        os.waitpid(record.pid, os.WNOHANG)  # reap it if it is an exited child of this process
    except ChildProcessError:
        pass
    if not Path("/proc").is_dir():
        try:
            os.kill(record.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    fields_after_name = _stat_fields(record.pid)
    if fields_after_name is None or fields_after_name[0] == "Z":
        return False
    return record.start_ticks is None or int(fields_after_name[19]) == record.start_ticks


def _recorded_outcome(record: TaskRecord) -> Outcome | None:
    try:
        phase, code = Path(record.exit_file).read_text().split()
        return Outcome(phase, int(code))
    except (OSError, ValueError):
        return None


class ProcessTable:
    """The tasks this emulator process launched (it reaps them) and the ones it adopted after a restart."""

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen] = {}

    def launch(self, script: Path, env: Mapping[str, str], cwd: Path) -> TaskRecord:
        process, record = launch(script, env, cwd)
        self._children[record.pid] = process
        return record

    def outcome(self, record: TaskRecord) -> Outcome | None:
        """None while the task runs; how it ended otherwise (phase None: it died without recording an exit)."""
        child = self._children.get(record.pid)
        if child is not None:
            if child.poll() is None:
                return None
            del self._children[record.pid]
        elif _alive(record):
            return None
        return _recorded_outcome(record) or Outcome(None, None)

    def signal(self, record: TaskRecord, signum: int = signal.SIGTERM) -> None:
        """Signal the task's whole process group (only while it is still the process that was launched)."""
        child = self._children.get(record.pid)
        running = child.poll() is None if child is not None else _alive(record)
        if running:
            try:
                os.killpg(record.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass
