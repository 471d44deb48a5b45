"""The processes of Batch tasks, job preparation and job release tasks, kept where they can be found again.

Each start of a task (each try) gets a launch directory `STATE/batch-launches/{id}/`, outside the node directories
(so the file APIs never list it): `owner.json` (what it runs for), one generated `sh` script per process (see
batchai/processes.py: own session and process group, own cgroup where possible, an exit file written when the
command ends), and `processes.json`, written as each process starts, before any database write: an emulator that
crashed at any point finds the processes again from there (the database rows hold a copy, `runtime.processes`).

A launch whose owner no longer refers to it (its task or job row was deleted, or it finished) is an orphan: the
scheduler stops its processes (SIGTERM, the grace period, SIGKILL) and removes the directory.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchai_spec.emulator.batchai.processes import Outcome, Step, TaskRecord, count, pid_list, task_script
from batchai_spec.emulator.clock import iso8601, now as clock_now

logger = logging.getLogger("batchai_spec.emulator")

LAUNCHES_FOLDER = "batch-launches"

# `ssh HOST COMMAND...` for MPI launchers (OpenMPI's rsh/ssh agent): every node of the emulator is this machine,
# so the command runs here, in the calling task's process group and cgroup, and ends with the task.
NODE_SSH = """\
#!/bin/sh
# Written by the Azure Batch emulator: all of its nodes are this machine, so `ssh NODE COMMAND` runs COMMAND here.
while [ $# -gt 0 ]; do
  case "$1" in
    -[bcDEeFIiJLlmOopQRSWw]) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] && shift
exec /bin/sh -c "$*"
"""


@dataclass(frozen=True)
class Proc:
    """One launched process: its record, the node it runs on and what it is (`command`, `coordination`,
    `preparation`, `release`)."""

    record: TaskRecord
    node: str
    role: str

    def to_json(self) -> dict[str, Any]:
        return {**self.record.to_json(), "node": self.node, "role": self.role}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Proc:
        return cls(TaskRecord.from_json(document), document.get("node", ""), document.get("role", "command"))


def procs_of(documents: Iterable[Mapping[str, Any]] | None) -> list[Proc]:
    return [Proc.from_json(document) for document in documents or []]


class Launch:
    def __init__(self, path: Path):
        self.path = path

    @property
    def id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, state_root: Path, owner: Mapping[str, Any]) -> Launch:
        path = state_root / LAUNCHES_FOLDER / uuid.uuid4().hex
        path.mkdir(parents=True, mode=0o700)
        (path / "owner.json").write_text(json.dumps(dict(owner)))
        (path / "processes.json").write_text("[]")
        return cls(path)

    @classmethod
    def find(cls, state_root: Path, launch_id: str | None) -> Launch | None:
        if not launch_id:
            return None
        path = state_root / LAUNCHES_FOLDER / launch_id
        return cls(path) if path.is_dir() else None

    def owner(self) -> dict[str, Any]:
        return _read_json(self.path / "owner.json", {})

    def procs(self) -> list[Proc]:
        return procs_of(_read_json(self.path / "processes.json", []))

    def node_ssh(self) -> Path:
        """The `ssh` stand-in multi-instance tasks hand to MPI (see NODE_SSH)."""
        path = self.path / "node-ssh"
        if not path.exists():
            path.write_text(NODE_SSH)
            path.chmod(0o755)
        return path

    def start(self, ctx, name: str, steps: list[Step], env: Mapping[str, str], cwd: Path, *, node: str,
              role: str) -> Proc:
        """Write `{name}.sh` and start it; the record is in processes.json before this returns."""
        script = self.path / f"{name}.sh"
        script.write_text(task_script(steps, script.with_suffix(".exit")))
        record = ctx.processes.launch(script, env, cwd, use_cgroup=ctx.config.use_cgroups)
        proc = Proc(record, node, role)
        started = [*_read_json(self.path / "processes.json", []), proc.to_json()]
        temporary = self.path / "processes.json.tmp"
        temporary.write_text(json.dumps(started))
        temporary.replace(self.path / "processes.json")
        return proc

    def stop_progress(self) -> dict[str, Any]:
        return _read_json(self.path / "stop.json", {})

    def save_stop_progress(self, progress: Mapping[str, Any]) -> None:
        (self.path / "stop.json").write_text(json.dumps(dict(progress)))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def all_launches(state_root: Path) -> list[Launch]:
    folder = state_root / LAUNCHES_FOLDER
    if not folder.is_dir():
        return []
    return [Launch(path) for path in sorted(folder.iterdir()) if path.is_dir()]


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


# ----------------------------------------------------------------------------------------------- stopping


class NoteLog:
    """The emulator's own notes on a task (`emulator.log` in the task directory): what it could not do as Batch
    does (containers) and which processes it stopped how. Written only when there is something to say."""

    def __init__(self, path: Path | None):
        self.path = path

    def write(self, message: str) -> None:
        if self.path is None or not self.path.parent.is_dir():
            return
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(f"{iso8601(clock_now())} {message}\n")
        except OSError:
            pass


def outcomes(ctx, procs: Iterable[Proc]) -> list[Outcome | None]:
    return [ctx.processes.outcome(proc.record) for proc in procs]


def drive_stop(ctx, procs: list[Proc], progress: dict[str, Any], now: float, log: NoteLog,
               why: str) -> tuple[bool, bool]:
    """One step of stopping `procs` (SIGTERM to every process group and the processes that left it, SIGKILL after
    the grace period to what is left, then give up after `kill_wait_s`). `progress` (persisted by the caller)
    holds `signalledAt` / `killedAt`. Returns (done: no process left or given up, changed: progress moved)."""
    left = {index: members for index, members in
            ((index, ctx.processes.members(proc.record)) for index, proc in enumerate(procs)) if members}
    signalled, killed = progress.get("signalledAt"), progress.get("killedAt")
    if not left:
        if signalled is not None:
            last = "SIGKILL" if killed is not None else "SIGTERM"
            waited = now - (killed if killed is not None else signalled)
            log.write(f"All of the task's processes have ended, {max(waited, 0.0):.1f}s after {last}")
        for proc in procs:
            ctx.processes.release(proc.record)
        return True, True
    if signalled is None:
        log.write(f"Stopping the task's processes: {why}")
        for index in left:
            sent = ctx.processes.signal_tree(procs[index].record, signal.SIGTERM)
            log.write(f"{_label(procs[index])}: {sent.describe()}")
        progress["signalledAt"] = now
        return False, True
    if killed is None:
        if now - signalled < ctx.config.terminate_grace_s:
            return False, False
        for index, members in left.items():
            sent = ctx.processes.signal_tree(procs[index].record, signal.SIGKILL)
            log.write(f"{_label(procs[index])}: {count(len(members), 'process', 'processes')} still running"
                      f" {now - signalled:.1f}s after SIGTERM ({pid_list(members)}); {sent.describe()}")
        progress["killedAt"] = now
        return False, True
    if now - killed < ctx.config.kill_wait_s:
        return False, False
    pids = [pid for members in left.values() for pid in members]
    log.write(f"{count(len(pids), 'process', 'processes')} still present {now - killed:.1f}s after SIGKILL"
              f" ({pid_list(pids)}, uninterruptible?): the task ends without waiting for them")
    logger.warning("Batch task processes still present after SIGKILL: %s", pid_list(pids))
    return True, True


def stop_all_now(ctx, groups: list[tuple[list[Proc], NoteLog]], why: str) -> None:
    """Emulator shutdown: SIGTERM to everything, wait up to the grace period, SIGKILL what is left, wait up to
    `kill_wait_s` (blocking: the scheduler no longer steps)."""
    everything = [proc for procs, _ in groups for proc in procs]
    for procs, log in groups:
        running = [proc for proc in procs if ctx.processes.members(proc.record)]
        if running:
            log.write(f"Stopping the task's processes: {why}")
        for proc in running:
            log.write(f"{_label(proc)}: {ctx.processes.signal_tree(proc.record, signal.SIGTERM).describe()}")
    records = [proc.record for proc in everything]
    left = ctx.processes.wait_gone(records, ctx.config.terminate_grace_s)
    if left:
        for procs, log in groups:
            for proc in procs:
                if proc.record in left:
                    log.write(f"{_label(proc)}: still running after the grace period;"
                              f" {ctx.processes.signal_tree(proc.record, signal.SIGKILL).describe()}")
        left = ctx.processes.wait_gone(list(left), ctx.config.kill_wait_s)
    for record in records:
        if record not in left:
            ctx.processes.release(record)
    if left:
        logger.warning("Batch task processes still present after SIGKILL at shutdown: %s",
                       pid_list(pid for members in left.values() for pid in members))


def _label(proc: Proc) -> str:
    return {"coordination": f"Coordination command on node {proc.node}",
            "preparation": f"Job preparation task on node {proc.node}",
            "release": f"Job release task on node {proc.node}"}.get(proc.role, f"Command on node {proc.node}")
