"""One Batch AI scheduler per running emulator (per State), started and stopped with the server."""

from __future__ import annotations

import weakref
from collections.abc import Callable

from batchai_spec.emulator.batchai.config import BatchAIConfig
from batchai_spec.emulator.batchai.context import Context
from batchai_spec.emulator.batchai.scheduler import Scheduler
from batchai_spec.emulator.state import State

_SCHEDULERS: weakref.WeakKeyDictionary[State, Scheduler] = weakref.WeakKeyDictionary()


def start(state: State, config: BatchAIConfig | None = None) -> Callable[[], None]:
    """Start the scheduler for `state` (adopting the jobs a previous emulator left running); returns its stop."""
    scheduler = Scheduler(Context.create(state, config or BatchAIConfig.from_environment()))
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


def reconfigure(state: State, config: BatchAIConfig) -> None:
    """Change a running scheduler's delays or job Python (tests run against one emulator with zero delays)."""
    scheduler = _SCHEDULERS[state]
    scheduler.ctx.config = config
    scheduler.wake()
