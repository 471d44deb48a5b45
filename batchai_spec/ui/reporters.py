"""Event sinks. The engine calls `emit(kind, **data)`; each reporter renders what it understands.

Events: change.started/finished/failed/retry {address, operation}, upload.progress {address, done, total},
cluster.waiting {address, allocation_state, counts}, job.state {address, state, started (epoch seconds of the run's
start, when the service knows it)}, job.log {address, stream, text},
job.finished {address, state, exit_code, seconds}, message {text, level}. None of them carries a secret.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from batchai_spec.durations import elapsed
from batchai_spec.statuses import node_counts


class Reporter(Protocol):
    def emit(self, kind: str, **data: Any) -> None: ...

    def close(self) -> None: ...


def service_errors(errors: list[dict[str, Any]]) -> str:
    """'Code: message; ...' from the service's BatchAIError list."""
    return "; ".join(f"{error.get('code')}: {error.get('message')}" for error in errors)


def _describe(kind: str, data: dict[str, Any]) -> str | None:
    address = data.get("address", "")
    if kind == "change.started":
        return f"{address}: {data['operation']}…"
    if kind == "change.finished":
        return f"{address}: {data['operation']} done ({data['seconds']:.1f}s)"
    if kind == "change.failed":
        return f"{address}: {data['operation']} failed: {data['error']}"
    if kind == "change.retry":
        return f"{address}: transient error ({data['error']}), retrying in {data['delay']:.1f}s"
    if kind == "change.skipped":
        return f"{address}: {data['reason']}"
    if kind == "cluster.waiting":
        counts = node_counts(data["counts"])
        return f"{address}: allocation {data['allocation_state']}" + (f" ({counts})" if counts else "")
    if kind == "job.state":
        return f"{address}: {data['state']}"
    if kind == "job.finished":
        exit_code = data.get("exit_code")
        suffix = f", exit code {exit_code}" if exit_code is not None else ""
        return f"{address}: {data['state']}{suffix} after {data['seconds']:.0f}s"
    if kind == "message":
        return data["text"]
    return None


class PlainReporter:
    """One line per event; upload progress in 25% steps. For logs, CI and pipes."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._reported_quarter: dict[str, int] = {}

    def emit(self, kind: str, **data: Any) -> None:
        if kind == "job.log":
            line = data["text"]
        elif kind == "upload.progress":
            quarter = int(4 * data["done"] / max(data["total"], 1))
            if quarter <= self._reported_quarter.get(data["address"], -1):
                return
            self._reported_quarter[data["address"]] = quarter
            line = f"{data['address']}: uploaded {data['done']:,} of {data['total']:,} bytes\n"
        else:
            text = _describe(kind, data)
            if text is None:
                return
            line = text + "\n"
        with self._lock:
            self.stream.write(line)
            self.stream.flush()

    def close(self) -> None:
        pass


class JsonReporter:
    """JSON lines for machines: {"time": ..., "event": kind, ...}."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def emit(self, kind: str, **data: Any) -> None:
        record = {"time": round(time.time(), 3), "event": kind, **data}
        with self._lock:
            self.stream.write(json.dumps(record, default=str) + "\n")
            self.stream.flush()

    def close(self) -> None:
        pass


class _ActivityColumn(ProgressColumn):
    """Bytes, speed and time left for an upload; state and time elapsed for a cluster or a job."""

    def __init__(self) -> None:
        super().__init__()
        self._transfer = (DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        self._elapsed = TimeElapsedColumn()

    def render(self, task: Task) -> Text:
        if task.fields.get("state") is not None:
            # A job's time counts from its start on the service (it may have started before this command did).
            since = task.fields.get("since")
            clock = Text(elapsed(time.time() - since), style="progress.elapsed") if since else self._elapsed.render(task)
            return Text.assemble(f"{task.fields['state']}  ", clock)
        return Text(" ").join(column.render(task) for column in self._transfer)


class RichReporter:
    """Live lines on a terminal: uploads with their bars, the cluster's nodes and each job's state with its time;
    finished steps and job logs are printed above them. The live part starts with the first event, so that what is
    printed or asked before (the plan, the confirmation) is drawn as it is, not under a live display."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            _ActivityColumn(),
            console=console,
            transient=True,
        )
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._started = False

    def _task(self, address: str, **fields: Any) -> Any:
        task = self._tasks.get(address)
        if task is None:
            task = self._tasks[address] = self.progress.add_task(address, **fields)
        return task

    def emit(self, kind: str, **data: Any) -> None:
        with self._lock:
            if not self._started:
                self.progress.start()
                self._started = True
            address = data.get("address", "")
            if kind == "upload.progress":
                task = self._task(address, total=data["total"])
                self.progress.update(task, total=data["total"], completed=data["done"])
                return
            if kind in ("cluster.waiting", "job.state"):
                state = _describe(kind, data).removeprefix(f"{address}: ")
                task = self._task(address, total=None, state=state, since=data.get("started"))
                self.progress.update(task, state=state, since=data.get("started"))
            if kind in ("change.finished", "change.failed", "job.finished") and address in self._tasks:
                self.progress.remove_task(self._tasks.pop(address))
            # Lines printed next are drawn with the live part as last rendered: render the change first.
            self.progress.refresh()
            if kind == "job.log":
                self.progress.console.out(data["text"], end="", highlight=False)
                return
            if kind in ("upload.progress", "cluster.waiting", "job.state"):
                return
            text = _describe(kind, data)
            if text is not None:
                style = "red" if kind == "change.failed" else ("dim" if kind == "change.started" else None)
                self.progress.console.print(text, style=style, highlight=False, markup=False)

    def close(self) -> None:
        with self._lock:
            if self._started:
                self.progress.stop()
                self._started = False


def make_reporter(console: Console, *, json_lines: bool) -> Reporter:
    if json_lines:
        return JsonReporter()
    if console.is_terminal:
        return RichReporter(console)
    return PlainReporter()
