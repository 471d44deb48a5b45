"""Apply a plan: deletions first, children before parents; then creations and updates, parents before children;
each phase a DAG walked with bounded parallelism. Every step is idempotent, so a failed or interrupted apply is
finished by running apply again."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Iterator

from batchai_spec.engine.retry import with_retries
from batchai_spec.engine.waits import Waits
from batchai_spec.errors import UserError
from batchai_spec.graph import Graph
from batchai_spec.kinds import Connection, KeptInPlace
from batchai_spec.observed import Observed
from batchai_spec.plan.model import Action, Plan
from batchai_spec.ui.reporters import Reporter


@dataclass
class Step:
    address: str
    kind: str
    operation: str  # "create", "update", "delete" or the kind's own verb ("upload")
    run: Callable[[], None]
    after: set[str] = field(default_factory=set)


class ApplyFailed(UserError):
    pass


def parents(address: str, graph: Graph, observed: dict[str, Observed], known: set[str]) -> set[str]:
    """What `address` lives in or needs: graph dependencies, or for undeclared resources their container."""
    if address in graph.resources:
        return set(graph.resources[address].depends_on)
    live = observed[address]
    parent = graph.registry[live.kind].parent_address(live.ids, known)
    return {parent} if parent else set()


@contextlib.contextmanager
def _worker_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apply")
    try:
        yield pool
    except BaseException:
        # Ctrl-C: changes in flight (a cluster's allocation may take many minutes) are not waited for; the CLI exits
        # with 130 at once and the next apply finishes them.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


class Executor:
    def __init__(
        self,
        plan: Plan,
        graph: Graph,
        observed: dict[str, Observed],
        connection: Connection,
        waits: Waits,
        reporter: Reporter,
        *,
        parallelism: int = 10,
    ):
        self.plan = plan
        self.graph = graph
        self.observed = observed
        self.connection = connection
        self.registry = graph.registry
        self.waits = waits
        self.reporter = reporter
        self.parallelism = parallelism
        self.done: list[str] = []
        self.created_runs: list[str] = []  # what runs to completion and was created: followed after the apply

    # -- steps ----------------------------------------------------------------------------------------------------

    def _delete_step(self, address: str, kind: str) -> Callable[[], None]:
        adapter, live = self.registry[kind], self.observed[address]

        def run() -> None:
            if adapter.runs_to_completion and live.run is not None and live.run.in_flight:
                adapter.terminate(self.connection, live)
            adapter.delete(self.connection, live)

        return run

    def _create_step(self, address: str, kind: str, action: Action) -> Callable[[], None]:
        adapter, resource = self.registry[kind], self.graph.resources[address]

        def progress(done: int, total: int) -> None:
            self.reporter.emit("upload.progress", address=address, done=done, total=total)

        def run() -> None:
            write = adapter.update if action is Action.UPDATE else adapter.create
            write(self.connection, resource, progress)
            readiness = adapter.readiness(self.connection, resource)
            if readiness is not None:
                self.waits.until_ready(address, readiness)
            if adapter.runs_to_completion:
                self.created_runs.append(address)

        return run

    def steps(self) -> tuple[list[Step], list[Step]]:
        deletions: dict[str, Step] = {}
        creations: dict[str, Step] = {}
        for change in self.plan.changes:
            if change.action in (Action.DELETE, Action.REPLACE):
                deletions[change.address] = Step(
                    change.address, change.kind, "delete", self._delete_step(change.address, change.kind)
                )
            if change.action in (Action.CREATE, Action.REPLACE, Action.UPDATE):
                operation = "update" if change.action is Action.UPDATE else "create"
                operation = self.registry[change.kind].write_verb or operation
                creations[change.address] = Step(
                    change.address, change.kind, operation, self._create_step(change.address, change.kind, change.action)
                )
        known = set(self.graph.resources) | set(self.observed)
        for step in deletions.values():
            # A parent is deleted after its children, and what a resource uses after it.
            live = self.observed[step.address]
            used = parents(step.address, self.graph, self.observed, known) | self.registry[live.kind].live_dependencies(live)
            for parent in used:
                if parent in deletions:
                    deletions[parent].after.add(step.address)
        for step in creations.values():
            step.after = {parent for parent in parents(step.address, self.graph, self.observed, known) if parent in creations}
        return list(deletions.values()), list(creations.values())

    # -- the walk -------------------------------------------------------------------------------------------------

    def _run_step(self, step: Step) -> None:
        self.reporter.emit("change.started", address=step.address, operation=step.operation)
        started = time.monotonic()
        try:
            with_retries(
                step.run,
                self.connection,
                on_retry=lambda error, delay: self.reporter.emit(
                    "change.retry", address=step.address, error=self.connection.describe(error), delay=delay
                ),
            )
        except KeptInPlace as kept:
            self.reporter.emit("change.skipped", address=step.address, reason=f"left in place: {kept}")
            return
        self.reporter.emit(
            "change.finished", address=step.address, operation=step.operation, seconds=time.monotonic() - started
        )

    def _walk(self, steps: list[Step]) -> None:
        pending = {step.address: step for step in steps}
        finished: set[str] = set()
        running: dict[Future, Step] = {}
        failure: tuple[Step, BaseException] | None = None
        with _worker_pool(self.parallelism) as pool:
            while pending or running:
                if failure is None:
                    for address, step in list(pending.items()):
                        if len(running) >= self.parallelism:
                            break
                        if step.after <= finished:
                            running[pool.submit(self._run_step, step)] = pending.pop(address)
                if not running:
                    if pending and failure is None:
                        raise AssertionError(f"dependency cycle among {sorted(pending)}")
                    break
                completed, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in completed:
                    step = running.pop(future)
                    error = future.exception()
                    if error is None:
                        finished.add(step.address)
                        self.done.append(f"{step.operation} {step.address}")
                    elif failure is None:
                        failure = (step, error)
                        message = error.message if isinstance(error, UserError) else self.connection.describe(error)
                        self.reporter.emit(
                            "change.failed", address=step.address, operation=step.operation, error=message
                        )
        if failure is not None:
            step, error = failure
            message = error.message if isinstance(error, UserError) else self.connection.describe(error)
            done = "; ".join(self.done) if self.done else "nothing"
            raise ApplyFailed(
                f"{step.operation} {step.address} failed: {message.rstrip('.')}. Already done: {done}. "
                "Run the same command again to finish: completed changes are not repeated."
            ) from error

    def run(self) -> None:
        deletions, creations = self.steps()
        self._walk(deletions)
        self._walk(creations)
