"""One Azure Batch scheduler per running emulator (per State): a thread that moves pools, nodes, jobs and tasks
forward by the clock, woken by the requests that change something.

Each part registers its step with `@on_tick` (a function `(ctx, now) -> bool`, True when anything changed) and
what must happen when the emulator stops with `@on_stop` (`(ctx) -> None`: end the processes it started); the
modules that do are imported by `batch/__init__.py`. Steps run in registration order: pools and nodes first, then
the tasks that run on them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from batchai_spec.emulator.batchai.config import BatchAIConfig
from batchai_spec.emulator.batchai.environment import host_environment
from batchai_spec.emulator.batchai.processes import ProcessTable
from batchai_spec.emulator.scheduling import ClockScheduler, Running
from batchai_spec.emulator.state import State

logger = logging.getLogger("batchai_spec.emulator")


@dataclass
class Context:
    """What the steps share: the state, the delays and job settings (the Batch AI emulator's, one configuration
    for the whole emulator), the task processes, the root of the nodes' directories."""

    state: State
    config: BatchAIConfig
    processes: ProcessTable = field(default_factory=ProcessTable)
    host_env: dict[str, str] = field(default_factory=host_environment)

    @property
    def nodes_root(self):
        return self.state.root / "batch"


_TICKS: list[Callable[[Context, float], bool]] = []
_STOPS: list[Callable[[Context], None]] = []


def on_tick(step: Callable[[Context, float], bool]) -> Callable[[Context, float], bool]:
    _TICKS.append(step)
    return step


def on_stop(step: Callable[[Context], None]) -> Callable[[Context], None]:
    _STOPS.append(step)
    return step


def _stop_processes(ctx: Context) -> None:
    for stop in reversed(_STOPS):  # tasks before the nodes they run on
        try:
            stop(ctx)
        except Exception:
            logger.exception("stopping the Batch processes at shutdown failed")


def scheduler(ctx: Context) -> ClockScheduler:
    return ClockScheduler(ctx, "batch", lambda: _TICKS, _stop_processes)


_RUNNING = Running()


def start(state: State, config: BatchAIConfig | None = None) -> Callable[[], None]:
    """Start the scheduler for `state`; returns its stop."""
    return _RUNNING.start(state, scheduler(Context(state, config or BatchAIConfig.from_environment())))


def wake(state: State) -> None:
    """A request changed something: let the scheduler act on it now rather than at its next tick."""
    _RUNNING.wake(state)


def context(state: State) -> Context | None:
    """The running scheduler's context (tests reconfigure its delays through it)."""
    running = _RUNNING.get(state)
    return running.ctx if running is not None else None
