"""How fast the emulated Batch AI moves, which Python runs the jobs and how their processes are stopped, from the
environment of the emulator.

- `BATCHAI_EMULATOR_DELAY_SCALE` (float, default 1): multiplies every simulated delay below and the grace period
  of stopped jobs; `0` makes clusters allocate and nodes prepare and leave at once (the tests use it).
- `BATCHAI_EMULATOR_JOB_PYTHON`: the interpreter for toolkit jobs whose `pythonInterpreterPath` is absent or does
  not exist on this machine (default: the emulator's own `sys.executable`).
- `BATCHAI_EMULATOR_TERMINATE_GRACE_S` (float, default 3, then scaled; never below 0.25): how long a stopped job's
  processes have between SIGTERM and SIGKILL.
- `BATCHAI_EMULATOR_CGROUPS` (`1` default, `0` off): give each task a cgroup v2 of its own where the emulator may
  create one (see processes.py); without one, a task's processes are found by process group and environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

DELAY_SCALE_VARIABLE = "BATCHAI_EMULATOR_DELAY_SCALE"
JOB_PYTHON_VARIABLE = "BATCHAI_EMULATOR_JOB_PYTHON"
TERMINATE_GRACE_VARIABLE = "BATCHAI_EMULATOR_TERMINATE_GRACE_S"
CGROUPS_VARIABLE = "BATCHAI_EMULATOR_CGROUPS"
DEFAULT_TERMINATE_GRACE_S = 3.0
# SIGTERM stays worth sending (a job may save its state) even when every other delay is scaled to zero.
MINIMUM_TERMINATE_GRACE_S = 0.25


@dataclass(frozen=True)
class Delays:
    """Simulated durations in seconds (the real service took minutes; these keep demos lively)."""

    allocation_s: float = 1.5  # a resize request until its nodes exist
    node_preparation_s: float = 0.5  # a new node until its mounts and setup task start
    node_leaving_s: float = 0.5  # a node being removed until it is gone
    autoscale_idle_s: float = 5.0  # an auto-scale cluster removes nodes idle this long

    def scaled(self, factor: float) -> Delays:
        return replace(self, **{item.name: getattr(self, item.name) * factor for item in fields(self)})


@dataclass(frozen=True)
class BatchAIConfig:
    delays: Delays = field(default_factory=Delays)
    job_python: str = sys.executable
    # A stopped job (terminate, delete, wall-clock limit, scale-down, emulator shutdown), and what a finished job
    # left running, get SIGTERM, then SIGKILL after this grace period.
    terminate_grace_s: float = DEFAULT_TERMINATE_GRACE_S
    # After SIGKILL, how long to wait for the processes to vanish before giving up on them (and saying so).
    kill_wait_s: float = 5.0
    # Each task in a cgroup of its own, where this machine lets the emulator create one.
    use_cgroups: bool = True
    # Emulator shutdown stops every job's and setup task's processes (False: they keep running, to be adopted by
    # the next emulator on the same state, as after a crash).
    stop_processes_on_shutdown: bool = True
    # The scheduler also wakes on every change a request makes; this bounds how stale the clock-driven steps get.
    tick_s: float = 0.1

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> BatchAIConfig:
        scale = _number(environ, DELAY_SCALE_VARIABLE, 1.0)
        grace = _number(environ, TERMINATE_GRACE_VARIABLE, DEFAULT_TERMINATE_GRACE_S)
        cgroups = environ.get(CGROUPS_VARIABLE, "1").strip().lower()
        if cgroups not in ("0", "1", "false", "true", "no", "yes", "off", "on"):
            raise ValueError(f"{CGROUPS_VARIABLE} must be 1 or 0, not {cgroups!r}")
        return cls(
            delays=Delays().scaled(scale),
            job_python=environ.get(JOB_PYTHON_VARIABLE) or sys.executable,
            terminate_grace_s=max(grace * scale, MINIMUM_TERMINATE_GRACE_S),
            use_cgroups=cgroups in ("1", "true", "yes", "on"),
        )


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    text = environ.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a number, at least 0, not {text!r}")
    return value
