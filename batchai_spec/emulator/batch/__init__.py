"""Azure Batch in the emulator: Microsoft.Batch on ARM (accounts, pools) and the Batch data plane (jobs, tasks,
nodes, files), with pools, nodes and tasks moved by the clock and tasks run as real local processes.

The server wires `add_routes(router)` on the ARM router and `start(state)` (batch/service.py: one scheduler thread)
when it starts serving. Importing a module registers its scheduler steps (`@on_tick`) in import order: auto-scale
evaluation and pools/nodes (nodes.py) come first, the tasks (tasks_runner.py) after them. The data plane (batch/dataplane/)
is its own HTTPS service, wired by server.py.
"""

from __future__ import annotations

# Pools and nodes first, then the tasks that run on them.
from batchai_spec.emulator.batch import accounts, autoscale, nodes, pools  # noqa: F401  (registers the steps)
from batchai_spec.emulator.batch import tasks_runner  # noqa: F401  (registers the steps)
from batchai_spec.emulator.batch.service import start
from batchai_spec.emulator.routing import Router


def add_routes(router: Router) -> None:
    """Microsoft.Batch on the ARM router: batch accounts and their pools."""
    accounts.add_routes(router)
    pools.add_routes(router)


__all__ = ["add_routes", "start"]
