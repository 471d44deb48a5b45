"""How fast the emulated Batch AI moves and which Python runs the jobs, from the environment of the emulator.

- `BATCHAI_EMULATOR_DELAY_SCALE` (float, default 1): multiplies every simulated delay below; `0` makes clusters
  allocate and nodes prepare and leave at once (the tests use it).
- `BATCHAI_EMULATOR_JOB_PYTHON`: the interpreter for toolkit jobs whose `pythonInterpreterPath` is absent or does
  not exist on this machine (default: the emulator's own `sys.executable`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

DELAY_SCALE_VARIABLE = "BATCHAI_EMULATOR_DELAY_SCALE"
JOB_PYTHON_VARIABLE = "BATCHAI_EMULATOR_JOB_PYTHON"


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
    # A terminated job gets SIGTERM, then SIGKILL after this grace period.
    terminate_grace_s: float = 3.0
    # The scheduler also wakes on every change a request makes; this bounds how stale the clock-driven steps get.
    tick_s: float = 0.1

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> BatchAIConfig:
        scale_text = environ.get(DELAY_SCALE_VARIABLE, "1")
        try:
            scale = float(scale_text)
        except ValueError:
            raise ValueError(f"{DELAY_SCALE_VARIABLE} must be a number, not {scale_text!r}") from None
        if scale < 0:
            raise ValueError(f"{DELAY_SCALE_VARIABLE} must not be negative")
        return cls(delays=Delays().scaled(scale), job_python=environ.get(JOB_PYTHON_VARIABLE) or sys.executable)
