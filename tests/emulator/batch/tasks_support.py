"""A world of Batch rows for the task runner's tests: an account, pools of `idle` nodes with their directories,
jobs and tasks inserted as the data plane and the node step would leave them, and the runner's own step driven
until a condition holds (polling with a deadline, never a fixed sleep).

No emulator server runs here: `World.step()` is the task runner's scheduler step alone, so the pools' and
nodes' own steps never move the rows the test wrote.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from batchai_spec.emulator.batch import store, tasks_runner
from batchai_spec.emulator.batch import task_rows as rows
from batchai_spec.emulator.batch.service import Context
from batchai_spec.emulator.batchai.config import BatchAIConfig
from batchai_spec.emulator.clock import iso8601, now
from batchai_spec.emulator.state import State
from tests.emulator.batchai_support import fast_config as batchai_fast_config
from tests.emulator.batchai_support import running, wait_for

T = TypeVar("T")

ACCOUNT = "acct"


def fast_config(**overrides: Any) -> BatchAIConfig:
    """Batch AI's test configuration, waiting at most 5 s for processes to go after SIGKILL."""
    return batchai_fast_config(**{"kill_wait_s": 5.0, **overrides})


@dataclass
class World:
    root: Path
    config: BatchAIConfig = field(default_factory=fast_config)

    def __post_init__(self) -> None:
        self.state = State(self.root / "state")
        self.ctx = Context(self.state, self.config)
        self.started_pids: list[Path] = []
        with self.state.transaction() as db:
            db.execute(
                "INSERT INTO batch_accounts (name, subscription, resource_group, location, body, key1, key2, etag,"
                " modified_at, seq) VALUES (?, 'sub', 'rg', 'westeurope', ?, 'k1', 'k2', '0x1', ?, 1)",
                (ACCOUNT, json.dumps({"properties": {"accountEndpoint": f"{ACCOUNT}.westeurope.batch.example"}}),
                 now()),
            )

    # ------------------------------------------------------------------------------------------- rows

    def add_pool(self, name: str = "pool", nodes: int = 1, **properties: Any) -> list[str]:
        moment = now()
        node_ids = []
        with self.state.transaction() as db:
            db.execute(
                "INSERT INTO batch_pools (account, name, properties, status, runtime, tags, etag, created_at,"
                " modified_at, seq) VALUES (?, ?, ?, ?, '{}', '{}', '0x1', ?, ?, ?)",
                (ACCOUNT, name, json.dumps({"vmSize": "STANDARD_D2S_V3", **properties}),
                 json.dumps({"allocationState": "Steady"}), moment, moment, store.next_seq(db, "batch_pools")),
            )
            for index in range(nodes):
                node_id = f"tvmps_{name}_{index}_d"
                root = self.root / "nodes" / name / node_id
                for sub in ("startup", "shared", "fsmounts", "workitems"):
                    (root / sub).mkdir(parents=True, exist_ok=True)
                db.execute(
                    "INSERT INTO batch_nodes (account, pool, node_id, state, since, due_at, task_key, runtime, seq)"
                    " VALUES (?, ?, ?, 'idle', ?, NULL, NULL, ?, ?)",
                    (ACCOUNT, name, node_id, moment,
                     json.dumps({"ip": f"127.10.0.{index + 4}", "root": str(root), "isDedicated": True}),
                     store.next_seq(db, "batch_nodes")),
                )
                node_ids.append(node_id)
        return node_ids

    def add_job(self, job_id: str, pool: str = "pool", **body: Any) -> None:
        moment = now()
        with self.state.transaction() as db:
            db.execute(
                "INSERT INTO batch_jobs (account, job_id, body, status, runtime, etag, created_at, modified_at, seq)"
                " VALUES (?, ?, ?, ?, '{}', '0x1', ?, ?, ?)",
                (ACCOUNT, job_id, json.dumps({"id": job_id, "poolInfo": {"poolId": pool}, **body}),
                 json.dumps({"state": "active", "stateTransitionTime": iso8601(moment),
                             "executionInfo": {"startTime": iso8601(moment), "poolId": pool}}),
                 moment, moment, store.next_seq(db, "batch_jobs")),
            )

    def add_task(self, job_id: str, task_id: str, command_line: str, **body: Any) -> None:
        moment = now()
        with self.state.transaction() as db:
            db.execute(
                "INSERT INTO batch_tasks (account, job_id, task_id, body, status, runtime, etag, created_at,"
                " modified_at, seq) VALUES (?, ?, ?, ?, ?, '{}', '0x1', ?, ?, ?)",
                (ACCOUNT, job_id, task_id, json.dumps({"id": task_id, "commandLine": command_line, **body}),
                 json.dumps({"state": "active", "stateTransitionTime": iso8601(moment),
                             "executionInfo": {"retryCount": 0, "requeueCount": 0}}),
                 moment, moment, store.next_seq(db, "batch_tasks")),
            )

    def task(self, job_id: str, task_id: str) -> rows.TaskRow | None:
        return rows.get_task(self.state.connection(), ACCOUNT, job_id, task_id)

    def job(self, job_id: str) -> rows.JobRow | None:
        return rows.get_job(self.state.connection(), ACCOUNT, job_id)

    def node(self, node_id: str, pool: str = "pool") -> rows.NodeRow | None:
        return rows.get_node(self.state.connection(), ACCOUNT, pool, node_id)

    def node_root(self, node_id: str, pool: str = "pool") -> Path:
        return self.root / "nodes" / pool / node_id

    def update_task_runtime(self, job_id: str, task_id: str, **values: Any) -> None:
        with self.state.transaction() as db:
            task = rows.get_task(db, ACCOUNT, job_id, task_id)
            task.runtime.update(values)
            rows.save_task(db, task)

    def set_job_state(self, job_id: str, state: str, **runtime: Any) -> None:
        """What the data plane does for terminate, delete, disable, enable."""
        with self.state.transaction() as db:
            job = rows.get_job(db, ACCOUNT, job_id)
            rows.set_state(job.status, state, now())
            job.runtime.update(runtime)
            db.execute("UPDATE batch_jobs SET status = ?, runtime = ? WHERE account = ? AND job_id = ?",
                       (json.dumps(job.status), json.dumps(job.runtime), ACCOUNT, job_id))

    def set_node_state(self, node_id: str, state: str, pool: str = "pool") -> None:
        with self.state.transaction() as db:
            db.execute("UPDATE batch_nodes SET state = ?, since = ? WHERE account = ? AND pool = ? AND node_id = ?",
                       (state, now(), ACCOUNT, pool, node_id))

    # ------------------------------------------------------------------------------------------- time

    def step(self) -> bool:
        return tasks_runner.advance(self.ctx, now())

    def drive(self, done: Callable[[], T], timeout_s: float = 30.0, step: Callable[[], Any] | None = None) -> T:
        """Step the runner until `done()` is truthy; fail with what it last returned after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        pause = 0.005
        while True:
            (step or self.step)()
            value = done()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out driving the task runner; last value: {value!r}")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.1)

    def until_state(self, job_id: str, task_id: str, *states: str, timeout_s: float = 30.0) -> rows.TaskRow:
        def current():
            task = self.task(job_id, task_id)
            return task if task is not None and task.state in states else None
        return self.drive(current, timeout_s)

    def stop(self) -> None:
        """End every process the world started (what the emulator's shutdown does)."""
        tasks_runner.stop_everything(self.ctx)


def wait_file(path: Path, predicate: Callable[[str], bool] = bool, timeout_s: float = 30.0) -> str:
    """The text of `path` ("" while it does not exist) once `predicate` holds for it."""
    return wait_for(lambda: path.read_text() if path.exists() else "", predicate, timeout_s, what=str(path),
                    first_pause_s=0.005, longest_pause_s=0.1)


def assert_gone(pids: list[int], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while any(running(pid) for pid in pids):
        if time.monotonic() > deadline:
            left = [pid for pid in pids if running(pid)]
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            pytest.fail(f"processes still running: {left}")
        time.sleep(0.02)


def pids_in(path: Path) -> list[int]:
    return [int(word) for word in path.read_text().split()] if path.exists() else []


@pytest.fixture
def world(tmp_path: Path):
    created = World(tmp_path)
    yield created
    created.stop()
