"""One Azure Batch scheduler per running emulator (per State): a thread that moves pools, nodes, jobs and tasks
forward by the clock, woken by the requests that change something.

Each part registers its step with `@on_tick` (a function `(ctx, now) -> bool`, True when anything changed) and
what must happen when the emulator stops with `@on_stop` (`(ctx) -> None`: end the processes it started); the
modules that do are imported by `batch/__init__.py`. Steps run in registration order: pools and nodes first, then
the tasks that run on them.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from batchai_spec.emulator.batchai.config import BatchAIConfig
from batchai_spec.emulator.batchai.environment import host_environment
from batchai_spec.emulator.batchai.processes import ProcessTable
from batchai_spec.emulator.clock import now
from batchai_spec.emulator.state import State

logger = logging.getLogger("batchai_spec.emulator")

_MAX_STEPS_PER_WAKE = 16  # zero delays let one change enable the next: step until nothing moves


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


class Scheduler:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.ctx.config.stop_processes_on_shutdown:
            for stop in reversed(_STOPS):  # tasks before the nodes they run on
                try:
                    stop(self.ctx)
                except Exception:
                    logger.exception("stopping the Batch processes at shutdown failed")

    def step(self) -> None:
        for _ in range(_MAX_STEPS_PER_WAKE):
            moment = now()
            changed = False
            for tick in _TICKS:
                # Each step on its own: one that raises (a bad row) must not stop the later ones, for any account.
                try:
                    changed |= tick(self.ctx, moment)
                except Exception:
                    logger.exception("the Batch scheduler step %s failed", getattr(tick, "__qualname__", tick))
            if not changed:
                return

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.step()
            except Exception:
                logger.exception("the Batch scheduler step failed")
            self._wake.wait(self.ctx.config.tick_s)


_SCHEDULERS: weakref.WeakKeyDictionary[State, Scheduler] = weakref.WeakKeyDictionary()


def start(state: State, config: BatchAIConfig | None = None) -> Callable[[], None]:
    """Start the scheduler for `state`; returns its stop."""
    scheduler = Scheduler(Context(state, config or BatchAIConfig.from_environment()))
    _SCHEDULERS[state] = scheduler
    scheduler.start()

    def stop() -> None:
        scheduler.stop()
        _SCHEDULERS.pop(state, None)

    return stop


def wake(state: State) -> None:
    """A request changed something: let the scheduler act on it now rather than at its next tick."""
    scheduler = _SCHEDULERS.get(state)
    if scheduler is not None:
        scheduler.wake()


def context(state: State) -> Context | None:
    """The running scheduler's context (tests reconfigure its delays through it)."""
    scheduler = _SCHEDULERS.get(state)
    return scheduler.ctx if scheduler is not None else None
