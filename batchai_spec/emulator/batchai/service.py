"""One Batch AI scheduler per running emulator (per State), started and stopped with the server: deletions,
cluster allocation and nodes, jobs (emulator/scheduling.py runs them); when the emulator stops, the end of every
process its jobs and setup tasks started (`runner.stop_everything`: SIGTERM, the grace period, SIGKILL)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from batchai_spec.emulator.batchai import deletion, lifecycle, runner
from batchai_spec.emulator.batchai.config import BatchAIConfig
from batchai_spec.emulator.batchai.context import Context
from batchai_spec.emulator.batchai.environment import host_environment
from batchai_spec.emulator.scheduling import ClockScheduler, Running
from batchai_spec.emulator.state import State

_STEPS = (deletion.advance, lifecycle.advance, runner.advance)
_RUNNING = Running()


def _stop_processes(ctx: Context) -> None:
    runner.stop_everything(ctx, lifecycle.setup_tasks(ctx))


def start(state: State, config: BatchAIConfig | None = None) -> Callable[[], None]:
    """Start the scheduler for `state` (adopting the jobs a previous emulator left running); returns its stop."""
    context = Context.create(state, config or BatchAIConfig.from_environment())
    return _RUNNING.start(state, ClockScheduler(context, "batchai", lambda: _STEPS, _stop_processes))


def wake(state: State) -> None:
    """A request changed something: let the scheduler act on it now rather than at its next tick."""
    _RUNNING.wake(state)


def reconfigure(state: State, config: BatchAIConfig, host_env: Mapping[str, str] | None = None) -> None:
    """Change a running scheduler's delays or job Python (tests run against one emulator with zero delays), and what
    the host lends node tasks (`host_env`; None: this process's environment, as at start)."""
    scheduler = _RUNNING.get(state)
    scheduler.ctx.config = config
    scheduler.ctx.host_env = host_environment() if host_env is None else dict(host_env)
    scheduler.wake()
