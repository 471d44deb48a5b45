"""Real processes for node tasks (setup tasks, job tasks) that survive an emulator crash and can be found again.

Each task runs a generated `sh` script in a new session (its own process group, so one signal stops the whole
tree and a closing terminal does not). The script writes `PHASE CODE` to an exit file when its command ends, so
an emulator that restarted after a crash, and is no longer the task's parent, still learns the exit code (a clean
stop ends every task first: service.py). Records keep the pid
and the process start time from /proc, so a recycled pid is never mistaken for the task.

Nothing a task starts may outlive it, so a task's processes are found by three marks (`ProcessTable.members`):
- its process group: the launched `sh` leads it, and everything it starts stays in it unless it leaves;
- `BATCHAI_EMULATOR_TASK=<token>` in the environment of every process it starts (read from /proc/PID/environ):
  catches daemons that left the group with setsid() (double fork), wherever /proc exists;
- a cgroup v2 of its own, where this emulator may create one (`cgroup_parent()`): also catches processes that
  scrub their environment, and `cgroup.kill` kills them all at once, new forks included.
`signal_tree` signals the group (os.killpg) and every member outside it; callers send SIGTERM, wait the grace
period for `members` to empty, then SIGKILL. Members are signalled through a pidfd after checking they still
carry the task's marks, so a pid recycled between the /proc walk and the signal is never hit.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("batchai_spec.emulator")

TASK_MARKER = "BATCHAI_EMULATOR_TASK"
CGROUP_PARENT = "batchai-emulator"  # created next to the emulator's own cgroup; one cgroup per task inside it
_CGROUP_PREFIX = "task-"


@dataclass(frozen=True)
class TaskRecord:
    """What the database keeps about a launched task."""

    pid: int
    start_ticks: int | None
    exit_file: str
    token: str | None = None  # the value of BATCHAI_EMULATOR_TASK in its processes' environment
    cgroup: str | None = None  # the task's cgroup directory, where it has one

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"pid": self.pid, "startTicks": self.start_ticks, "exitFile": self.exit_file}
        if self.token is not None:
            document["token"] = self.token
        if self.cgroup is not None:
            document["cgroup"] = self.cgroup
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> TaskRecord:
        return cls(document["pid"], document.get("startTicks"), document["exitFile"], document.get("token"),
                   document.get("cgroup"))


@dataclass(frozen=True)
class Outcome:
    """A finished task: the phase that ended it (`preparation` or `command`), its exit code and when its exit file
    was written (epoch seconds; it orders tasks that failed between two looks). `phase` is None when the task
    ended without writing its exit file (killed, or lost)."""

    phase: str | None
    exit_code: int | None
    ended_at: float | None = None


@dataclass(frozen=True)
class Step:
    """One command of a task script, its output appended to two files."""

    phase: str
    argv: list[str]
    stdout: Path
    stderr: Path


@dataclass(frozen=True)
class Signalled:
    """What one `signal_tree` call reached: the task's process group and its processes outside that group."""

    signum: int
    group: int | None  # the process group signalled with killpg (None: no group of the task was left)
    pids: tuple[int, ...]  # every process of the task that was running
    outside: tuple[int, ...]  # of those, the ones signalled one by one (they had left the group)

    def describe(self) -> str:
        """`sent SIGTERM to process group 41 (pids 41, 42) and to 1 process outside it (pid 57)`."""
        name = signal.Signals(self.signum).name
        if self.group is None and not self.outside:
            return f"no process left to send {name} to"
        parts = []
        if self.group is not None:
            inside = [pid for pid in self.pids if pid not in self.outside]
            parts.append(f"process group {self.group}" + (f" ({pid_list(inside)})" if inside else ""))
        if self.outside:
            where = " outside it" if self.group is not None else ""
            parts.append(f"{count(len(self.outside), 'process', 'processes')}{where} ({pid_list(self.outside)})")
        return f"sent {name} to " + " and to ".join(parts)


def count(number: int, singular: str, plural: str) -> str:
    return f"{number} {singular if number == 1 else plural}"


def pid_list(pids: Iterable[int], limit: int = 8) -> str:
    pids = sorted(pids)
    shown = ", ".join(str(pid) for pid in pids[:limit])
    if len(pids) > limit:
        shown += f" and {len(pids) - limit} more"
    return ("pid " if len(pids) == 1 else "pids ") + shown


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


# The task's `sh` moves itself into its cgroup before it runs anything, so every process it starts is born there.
_JOIN_CGROUP = 'echo $$ > "$0/cgroup.procs" 2>/dev/null; exec /bin/sh "$1"'


def launch(script: Path, env: Mapping[str, str], cwd: Path, *,
           use_cgroup: bool = True) -> tuple[subprocess.Popen, TaskRecord]:
    exit_file = script.with_suffix(".exit")
    exit_file.unlink(missing_ok=True)
    token = uuid.uuid4().hex
    cgroup = _new_cgroup(token) if use_cgroup else None
    argv = ["/bin/sh", str(script)] if cgroup is None else ["/bin/sh", "-c", _JOIN_CGROUP, str(cgroup), str(script)]
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**env, TASK_MARKER: token},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except BaseException:
        if cgroup is not None:
            _remove_cgroup(cgroup)
        raise
    record = TaskRecord(process.pid, start_ticks(process.pid), str(exit_file), token,
                        None if cgroup is None else str(cgroup))
    return process, record


def start_ticks(pid: int) -> int | None:
    """The process start time (clock ticks since boot, /proc/PID/stat field 22), or None where there is no /proc."""
    fields_after_name = _stat_fields(pid)
    return int(fields_after_name[19]) if fields_after_name else None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its closing one.
    return text[text.rindex(")") + 2:].split()


def _running_group(pid: int) -> int | None:
    """The process group of a live (not zombie) process; None when it is gone."""
    fields_after_name = _stat_fields(pid)
    if fields_after_name is None or fields_after_name[0] in ("Z", "X"):
        return None
    return int(fields_after_name[2])


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
    if fields_after_name is None or fields_after_name[0] in ("Z", "X"):
        return False
    return record.start_ticks is None or int(fields_after_name[19]) == record.start_ticks


def _recorded_outcome(record: TaskRecord) -> Outcome | None:
    exit_file = Path(record.exit_file)
    try:
        phase, code = exit_file.read_text().split()
        return Outcome(phase, int(code), exit_file.stat().st_mtime)
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------- finding members


def _marked(token: str) -> list[int]:
    """Processes whose environment carries the task's marker (a walk over /proc; other users' are unreadable)."""
    needle = f"\0{TASK_MARKER}={token}\0".encode()
    myself = os.getpid()
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit() or int(name) == myself:
            continue
        if _has_marker(int(name), needle):
            found.append(int(name))
    return found


def _has_marker(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except OSError:
        return False
    return needle in b"\0" + environ + b"\0"


def _in_cgroup(pid: int, cgroup: str) -> bool:
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return False
    component = f"/{Path(cgroup).name}/"  # the task's cgroup, or one below it
    return any(line.startswith("0::") and component in line[3:] + "/" for line in lines)


def _belongs(pid: int, record: TaskRecord) -> bool:
    if record.token is not None and _has_marker(pid, f"\0{TASK_MARKER}={record.token}\0".encode()):
        return True
    return record.cgroup is not None and _in_cgroup(pid, record.cgroup)


def _send(pid: int, record: TaskRecord, signum: int) -> None:
    """Signal one member found by a walk, through a pidfd opened before checking it is still the task's."""
    descriptor = None
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):
        descriptor = None  # no pidfds here: a plain kill right after the check
    try:
        if not _belongs(pid, record):
            return
        if descriptor is not None:
            signal.pidfd_send_signal(descriptor, signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
    finally:
        if descriptor is not None:
            os.close(descriptor)


# ----------------------------------------------------------------------------------------------- cgroups


_cgroup_lock = threading.Lock()
_cgroup_probe: list[Path | None] = []  # [] until probed, then [the parent directory or None]


def cgroup_parent() -> Path | None:
    """Where this emulator creates task cgroups (`batchai-emulator/` next to its own cgroup v2), or None where
    it cannot: no cgroup v2 mounted, or not writable for this user (most containers, non-root without a delegated
    subtree). Probed once per process."""
    with _cgroup_lock:
        if not _cgroup_probe:
            _cgroup_probe.append(_probe_cgroup_parent())
            logger.debug("task cgroups: %s", _cgroup_probe[0] or "not available")
        return _cgroup_probe[0]


def _probe_cgroup_parent() -> Path | None:
    try:
        own = next(line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::"))
        mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    except (OSError, StopIteration):
        return None
    for line in mountinfo:
        fields = line.split()
        try:
            separator = fields.index("-")
        except ValueError:
            continue
        if fields[separator + 1] != "cgroup2":
            continue
        root, mount_point = _unescape(fields[3]), _unescape(fields[4])
        if root != "/" and own != root and not own.startswith(root + "/"):
            continue
        inside = own[len(root):] if root != "/" else own
        parent = Path(mount_point) / inside.lstrip("/") / CGROUP_PARENT
        probe = parent / f"probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            parent.mkdir(exist_ok=True)
            probe.mkdir()
        except OSError:
            continue
        usable = os.access(probe / "cgroup.procs", os.W_OK)
        _remove_cgroup(probe)
        if usable:
            return parent
    return None


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(escaped, plain)
    return text


def _new_cgroup(token: str) -> Path | None:
    parent = cgroup_parent()
    if parent is None:
        return None
    directory = parent / f"{_CGROUP_PREFIX}{token}"
    try:
        directory.mkdir()
    except OSError as error:
        logger.warning("cannot create the task cgroup %s (%s); the task runs without one", directory, error)
        return None
    return directory


def _cgroup_pids(cgroup: str) -> list[int]:
    """The processes in the task's cgroup and in any cgroup below it (a job may run an emulator of its own)."""
    pids = []
    for directory, _, _ in os.walk(cgroup):
        try:
            pids.extend(int(line) for line in Path(directory, "cgroup.procs").read_text().split())
        except (OSError, ValueError):
            continue
    return pids


def _cgroup_kill(cgroup: str) -> bool:
    """SIGKILL everything in the cgroup at once (`cgroup.kill`, Linux 5.14+); False where it cannot."""
    try:
        Path(cgroup, "cgroup.kill").write_text("1")
    except OSError:
        return False
    return True


def _remove_cgroup(cgroup: Path | str) -> None:
    """Remove an empty cgroup and any (empty) cgroups below it, deepest first."""
    for directory, _, _ in sorted(os.walk(cgroup), key=lambda entry: -len(Path(entry[0]).parts)):
        try:
            os.rmdir(directory)
        except OSError:
            pass  # gone already, or a process is still in it


# ----------------------------------------------------------------------------------------------- the table


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `condition` with backoff (5 ms doubling to 200 ms) until it holds (True) or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        if condition():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.2)


class ProcessTable:
    """The tasks this emulator process launched (it reaps them) and the ones it adopted after a restart."""

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen] = {}

    def launch(self, script: Path, env: Mapping[str, str], cwd: Path, *, use_cgroup: bool = True) -> TaskRecord:
        process, record = launch(script, env, cwd, use_cgroup=use_cgroup)
        self._children[record.pid] = process
        return record

    def outcome(self, record: TaskRecord) -> Outcome | None:
        """None while the task's main process runs; how it ended otherwise (phase None: it died without recording
        an exit). Processes it left behind are `members`, not part of the outcome."""
        child = self._children.get(record.pid)
        if child is not None:
            if child.poll() is None:
                return None
            del self._children[record.pid]
        elif _alive(record):
            return None
        return _recorded_outcome(record) or Outcome(None, None)

    def members(self, record: TaskRecord) -> dict[int, int]:
        """The task's live processes (pid -> process group): its main process while it runs, everything in its
        cgroup, everything whose environment carries its marker. Zombies count as gone."""
        self._reap()
        candidates: set[int] = set()
        if record.cgroup is not None:
            candidates.update(_cgroup_pids(record.cgroup))
        if record.token is not None:
            candidates.update(_marked(record.token))
        candidates.discard(os.getpid())
        found = {}
        for pid in candidates:
            group = _running_group(pid)
            if group is not None:
                found[pid] = group
        if record.pid not in found and _alive(record):
            group = _running_group(record.pid)
            if group is not None:
                found[record.pid] = group
        return found

    def signal_tree(self, record: TaskRecord, signum: int = signal.SIGTERM) -> Signalled:
        """Signal the task's process group and each of its processes that left the group."""
        found = self.members(record)
        group = None
        # The group is the task's own while its leader runs or one of its marked processes is still in it.
        if record.pid in found or record.pid in found.values():
            try:
                os.killpg(record.pid, signum)
                group = record.pid
            except (ProcessLookupError, PermissionError):
                pass
        outside = tuple(sorted(pid for pid, pgid in found.items() if group is None or pgid != group))
        if signum == signal.SIGKILL and record.cgroup is not None:
            _cgroup_kill(record.cgroup)
        for pid in outside:
            _send(pid, record, signum)
        return Signalled(signum, group, tuple(sorted(found)), outside)

    def release(self, record: TaskRecord) -> None:
        """The task is over and none of its processes is left: remove its cgroup."""
        if record.cgroup is not None:
            _remove_cgroup(record.cgroup)

    def wait_gone(self, records: Iterable[TaskRecord], timeout_s: float) -> dict[TaskRecord, dict[int, int]]:
        """Wait (with backoff, up to `timeout_s`) until none of the tasks has a process left; returns what is left."""
        records = list(records)
        left: dict[TaskRecord, dict[int, int]] = {}

        def gone() -> bool:
            left.clear()
            for record in records:
                members = self.members(record)
                if members:
                    left[record] = members
            return not left

        wait_until(gone, timeout_s)
        return dict(left)

    def _reap(self) -> None:
        for child in list(self._children.values()):
            child.poll()  # an exited child would stay a zombie (and keep its pid) until polled
