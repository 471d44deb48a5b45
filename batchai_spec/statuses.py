"""What following running work reads, in the service-neutral shape the engine waits on and the CLI shows: a
cluster's allocation, a job's state, its output files. Each service's `Watch` answers in these types."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# The output directory id of a job's stdout.txt and stderr.txt.
STDOUTERR = "stdouterr"
LOG_FILES = ("stdout.txt", "stderr.txt")
ACTIVE_RUN_STATES = ("queued", "running", "terminating")


@dataclass(frozen=True)
class ClusterStatus:
    allocation_state: str | None
    current_node_count: int
    counts: dict[str, int]
    errors: list[dict[str, Any]]


@dataclass(frozen=True)
class JobStatus:
    execution_state: str | None
    exit_code: int | None
    errors: list[dict[str, Any]]
    start_time: Any
    end_time: Any
    output_directory_ids: tuple[str, ...]
    run_id: str | None = None  # the uuid of this run's output directories
    # The stdout and stderr files (in stdouterr) of the job's main process: rank 0's `stdout-0.txt`, `stderr-0.txt`
    # when each node of a distributed job writes its own.
    log_files: tuple[str, str] = LOG_FILES
    # The stderr file of the process whose failure failed the job, where the service says (another node's rank).
    failed_stderr: str | None = None

    @property
    def failure_stderr(self) -> str:
        return self.failed_stderr or self.log_files[1]


@dataclass(frozen=True)
class OutputFile:
    directory_id: str
    path: str  # relative to the output directory
    url: str
    size: int


def node_counts(counts: dict[str, int]) -> str:
    """'idle 1, running 2' from the service's node state counts (zero counts left out)."""
    return ", ".join(f"{key.replace('_node_count', '')} {value}" for key, value in sorted(counts.items()) if value)


class Watch(Protocol):
    def cluster(self, ids: dict[str, str]) -> ClusterStatus: ...

    def job(self, ids: dict[str, str]) -> JobStatus: ...

    def job_or_none(self, ids: dict[str, str]) -> JobStatus | None: ...

    def output_files(self, ids: dict[str, str], directory_id: str, directory: str = ".") -> list[OutputFile]: ...

    def read_from(self, url: str, offset: int) -> bytes: ...

    def download(self, files: list[OutputFile], root: Path) -> None: ...

    def tail(self, ids: dict[str, str], name: str, lines: int = 20, directory_id: str = STDOUTERR) -> str | None: ...

    def begin_terminate(self, ids: dict[str, str]) -> Any: ...
