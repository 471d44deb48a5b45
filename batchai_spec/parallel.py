"""Bounded parallelism for reads: a batch of calls at once, or a pipeline of tasks that return further tasks."""

from __future__ import annotations

from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
# A task that returns the tasks it makes possible (listing a directory makes the reads of its entries possible).
Task = Callable[[], "list[Task]"]


def in_parallel(calls: Iterable[Callable[[], T]], parallelism: int) -> list[T]:
    """Every call's result, in order; the first failure is raised once all have ended."""
    calls = list(calls)
    if not calls:
        return []
    with ThreadPoolExecutor(max_workers=min(parallelism, len(calls))) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


def pipeline(first: Task, parallelism: int) -> None:
    """Run `first` and the tasks each task returns, in parallel, until none is left: no task waits for a round."""
    pool = ThreadPoolExecutor(max_workers=parallelism)
    try:
        pending = {pool.submit(first)}
        while pending:
            done, pending = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
            for future in done:
                pending |= {pool.submit(task) for task in future.result()}
    finally:
        pool.shutdown(cancel_futures=True)


