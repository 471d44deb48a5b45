"""Microsoft.BatchAI 2018-05-01 in the emulator: the control plane (api/), cluster and node lifecycle
(lifecycle.py) and a job runner that runs jobs as real local processes (runner.py), moved by one scheduler
thread per running emulator (service.py, on emulator/scheduling.py).

The server wires two things: `add_routes(router)` on the ARM router, and `start(state)` when it starts serving
(it returns the function that stops the scheduler and, on a clean stop, every job's and setup task's processes;
after a crash, the processes that still run are adopted on restart).
"""

from __future__ import annotations

from batchai_spec.emulator.batchai import deletion  # noqa: F401  (registers the resource-group cascade)
from batchai_spec.emulator.batchai.api import clusters, experiments, file_servers, jobs, provider, workspaces
from batchai_spec.emulator.batchai.api.common import OPERATIONS
from batchai_spec.emulator.batchai.service import start
from batchai_spec.emulator.routing import Router


def add_routes(router: Router) -> None:
    for module in (provider, workspaces, experiments, clusters, file_servers, jobs):
        module.add_routes(router)
    OPERATIONS.add_routes(router)


__all__ = ["add_routes", "start"]
