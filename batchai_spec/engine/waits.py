"""Waiting on the service: polls that back off (fast at first, then every few seconds) and end with a timeout."""

from __future__ import annotations

import codecs
import time
from dataclasses import dataclass
from typing import Callable

from batchai_spec.engine.retry import with_retries
from batchai_spec.errors import UserError
from batchai_spec.graph import Resource
from batchai_spec.kinds import Connection, Readiness
from batchai_spec.statuses import STDOUTERR, JobStatus, OutputFile
from batchai_spec.ui.reporters import Reporter, service_errors

FINISHED = ("succeeded", "failed")
STREAMS = ("stdout", "stderr")


class Backoff:
    def __init__(self, first: float = 0.2, factor: float = 1.5, most: float = 5.0, sleep: Callable = time.sleep):
        self.first, self.factor, self.most, self.sleep = first, factor, most, sleep
        self.delay = first

    def wait(self) -> None:
        self.sleep(self.delay)
        self.delay = min(self.most, self.delay * self.factor)

    def reset(self) -> None:
        self.delay = self.first


@dataclass
class Timeouts:
    cluster: float = 1800.0
    job: float = 7 * 24 * 3600.0


class Waits:
    def __init__(self, connection: Connection, reporter: Reporter, timeouts: Timeouts | None = None):
        self.connection = connection
        self.watch = connection.watch
        self.reporter = reporter
        self.timeouts = timeouts or Timeouts()

    def _retried(self, call):
        return with_retries(call, self.connection)

    def until_ready(self, address: str, readiness: Readiness) -> None:
        """Until allocation is steady with the nodes wanted; unusable nodes fail at once."""
        wanted = readiness.wanted
        deadline = time.monotonic() + self.timeouts.cluster
        backoff = Backoff()
        last = None
        while True:
            status = self._retried(readiness.poll)
            seen = (status.allocation_state, tuple(sorted(status.counts.items())))
            if seen != last:
                self.reporter.emit(
                    "cluster.waiting", address=address, allocation_state=status.allocation_state, counts=status.counts
                )
                last = seen
            unusable = status.counts.get("unusable_node_count", 0)
            if unusable or status.errors:
                details = service_errors(status.errors) or "no details"
                raise UserError(f"{address} has {unusable} unusable node(s): {details}")
            usable = status.counts.get("idle_node_count", 0) + status.counts.get("running_node_count", 0)
            if status.allocation_state == "steady" and usable >= wanted:
                return
            if time.monotonic() > deadline:
                raise UserError(
                    f"{address} was not ready after {self.timeouts.cluster:.0f}s "
                    f"(allocation {status.allocation_state}, {usable} of {wanted} nodes); raise --cluster-timeout"
                )
            backoff.wait()

    def follow_job(self, job: Resource, *, stream_logs: bool) -> JobStatus:
        """Until the job ends, streaming the stdout and stderr of its main process as they grow (ranged reads)."""
        deadline = time.monotonic() + self.timeouts.job
        backoff = Backoff()
        offsets = {stream: 0 for stream in STREAMS}
        # Ranged reads can end inside a multi-byte character: decode each file as one stream.
        decoders = {stream: codecs.getincrementaldecoder("utf-8")(errors="replace") for stream in STREAMS}
        followed = time.monotonic()  # how long the job took when the service gives no start and end
        last_state = None
        while True:
            status = self._retried(lambda: self.watch.job(job.ids))
            grew = False
            if stream_logs and status.execution_state in ("running", "terminating", *FINISHED):
                grew = self._stream(job, status, offsets, decoders)  # before the state line: a job's last words first
            if status.execution_state != last_state:
                started = status.start_time.timestamp() if status.start_time else None
                self.reporter.emit("job.state", address=job.address, state=status.execution_state, started=started)
                last_state = status.execution_state
            if status.execution_state in FINISHED:
                self.reporter.emit(
                    "job.finished",
                    address=job.address,
                    state=status.execution_state,
                    exit_code=status.exit_code,
                    seconds=_duration(status, time.monotonic() - followed),
                )
                return status
            if time.monotonic() > deadline:
                raise UserError(
                    f"{job.address} is still {status.execution_state} after {self.timeouts.job:.0f}s; it goes on "
                    f"running: follow it with `batchai-spec logs <spec> {job.ids['experiment']}/{job.ids['job']} -f`"
                )
            if grew:
                backoff.reset()
            backoff.wait()

    def _stream(self, job: Resource, status: JobStatus, offsets: dict[str, int],
                decoders: dict[str, codecs.IncrementalDecoder]) -> bool:
        files = {f.path: f for f in self._retried(lambda: self.watch.output_files(job.ids, STDOUTERR))}
        grew = False
        for stream, name in zip(STREAMS, status.log_files):
            file = files.get(name)
            if file is None or file.size <= offsets[stream]:
                continue
            data = self._retried(lambda f=file, s=stream: self.watch.read_from(f.url, offsets[s]))
            if data:
                offsets[stream] += len(data)
                text = decoders[stream].decode(data)
                if text:
                    self.reporter.emit("job.log", address=job.address, stream=stream, text=text)
                grew = True
        return grew

    def outputs(self, job: Resource, directory_ids: tuple[str, ...]) -> list[OutputFile]:
        found: list[OutputFile] = []
        for directory_id in (*directory_ids, STDOUTERR):
            found += self._retried(lambda d=directory_id: self.watch.output_files(job.ids, d))
        return found


def _duration(status: JobStatus, fallback: float) -> float:
    if status.start_time and status.end_time:
        return (status.end_time - status.start_time).total_seconds()
    return fallback
