"""The background thread of each emulated service (Batch AI, Azure Batch) that moves its state forward by the
clock: it steps whenever a request changed something (`wake`) and at least every `tick_s`, so clock-driven
transitions (allocation delays, wall-clock limits, finished processes) happen without any request waiting for
them; and, when the emulator stops, it ends the processes the service started.

A step is `(ctx, now) -> bool` (True when anything changed: zero delays let one change enable the next, so the
scheduler steps again at once, up to a bound). Each step runs on its own: one that raises (a bad row) is logged
and the later ones still run. `ctx.config` has `tick_s` and `stop_processes_on_shutdown`.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from batchai_spec.emulator.clock import now
from batchai_spec.emulator.state import State

logger = logging.getLogger("batchai_spec.emulator")

Step = Callable[[Any, float], bool]
_MAX_STEPS_PER_WAKE = 16


class ClockScheduler:
    def __init__(self, ctx: Any, name: str, steps: Callable[[], Sequence[Step]], on_stop: Callable[[Any], None]):
        """`steps` is read at each step (modules may register theirs later); `on_stop(ctx)` ends the service's
        processes on a clean stop (with `stop_processes_on_shutdown` off they keep running and the next emulator
        on this state adopts them, as after a crash)."""
        self.ctx = ctx
        self.name = name
        self._steps = steps
        self._on_stop = on_stop
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-scheduler", daemon=True)

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
            try:
                self._on_stop(self.ctx)
            except Exception:
                logger.exception("stopping the %s processes at shutdown failed", self.name)

    def step(self) -> None:
        for _ in range(_MAX_STEPS_PER_WAKE):
            moment = now()
            changed = False
            for step in self._steps():
                try:
                    changed |= step(self.ctx, moment)
                except Exception:
                    logger.exception("the %s scheduler step %s failed", self.name, getattr(step, "__qualname__", step))
            if not changed:
                return

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            self.step()
            self._wake.wait(self.ctx.config.tick_s)


class Running:
    """The running scheduler of each State (one emulator per state dir; tests run several in one process)."""

    def __init__(self) -> None:
        self._by_state: weakref.WeakKeyDictionary[State, ClockScheduler] = weakref.WeakKeyDictionary()

    def start(self, state: State, scheduler: ClockScheduler) -> Callable[[], None]:
        """Start `scheduler` for `state`; returns its stop."""
        self._by_state[state] = scheduler
        scheduler.start()

        def stop() -> None:
            scheduler.stop()
            self._by_state.pop(state, None)

        return stop

    def get(self, state: State) -> ClockScheduler | None:
        return self._by_state.get(state)

    def wake(self, state: State) -> None:
        """A request changed something: let the scheduler act on it now rather than at its next tick."""
        scheduler = self._by_state.get(state)
        if scheduler is not None:
            scheduler.wake()
