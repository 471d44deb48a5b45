"""The background thread that moves Batch AI forward: deletions, cluster allocation and nodes, jobs; and, when the
emulator stops, the end of every process its jobs and setup tasks started.

It steps whenever a request changed something (`wake`) and at least every `tick_s`, so clock-driven transitions
(allocation delays, wall-clock limits, finished processes) happen without any request waiting for them.
"""

from __future__ import annotations

import logging
import threading

from batchai_spec.emulator.batchai import deletion, lifecycle, runner
from batchai_spec.emulator.batchai.context import Context
from batchai_spec.emulator.clock import now

logger = logging.getLogger("batchai_spec.emulator")

# Zero delays let one change enable the next (allocated -> prepared -> job started): step until nothing moves.
_MAX_STEPS_PER_WAKE = 16


class Scheduler:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batchai-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stops stepping, then every job's and setup task's processes (SIGTERM, the grace period, SIGKILL; see
        `runner.stop_everything`): none outlives the emulator. With `stop_processes_on_shutdown` off they keep
        running and the next emulator on this state adopts them, as after a crash."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.ctx.config.stop_processes_on_shutdown:
            try:
                runner.stop_everything(self.ctx, lifecycle.setup_tasks(self.ctx))
            except Exception:
                logger.exception("stopping the jobs' processes at shutdown failed")

    def step(self) -> None:
        for _ in range(_MAX_STEPS_PER_WAKE):
            moment = now()
            changed = deletion.advance(self.ctx, moment)
            changed |= lifecycle.advance(self.ctx, moment)
            changed |= runner.advance(self.ctx, moment)
            if not changed:
                return

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.step()
            except Exception:
                logger.exception("the Batch AI scheduler step failed")
            self._wake.wait(self.ctx.config.tick_s)
