"""Read the live state of a graph through the registry: in parallel, one round of requests per level of the kind
tree (the kinds read by name, then those listed under them, and so on).

Besides the declared resources it finds the ones this spec created and no longer declares (they are planned for
deletion), and nothing else is ever reported as owned. This module knows neither the SDKs nor any service.
"""

from __future__ import annotations

from batchai_spec.graph import Graph, prune
from batchai_spec.kinds import Connection
from batchai_spec.observed import Observed
from batchai_spec.parallel import in_parallel


def read_live(connection: Connection, graph: Graph, *, parallelism: int = 16) -> dict[str, Observed]:
    """What exists of the graph, and what the spec owns beyond it; also kept as `connection.observed`, which the
    adapters' writes read."""
    registry = connection.registry
    observed: dict[str, Observed] = {}
    connection.observed = observed

    def record(found: list[Observed]) -> None:
        for live in found:
            if live.state is not None:
                live.state = prune(live.state)
            observed[live.address] = live

    by_name = [kind for kind in registry if kind.read_under is None and kind.found_with is None]
    for found in in_parallel(
        [lambda k=kind, r=resource: [k.read(connection, r)] for kind in by_name for resource in graph.by_kind(kind.name)],
        parallelism,
    ):
        record(found)
    read = {kind.name for kind in by_name}
    listed = [kind for kind in registry if kind.read_under is not None]
    while listed:
        level = [kind for kind in listed if kind.read_under in read]
        if not level:
            raise AssertionError(f"{[kind.name for kind in listed]} are listed under kinds nothing reads")
        parents = {kind.read_under: [o for o in observed.values() if o.kind == kind.read_under and o.exists] for kind in level}
        calls = [
            lambda k=kind, p=parent: k.list_under(connection, p, graph)
            for kind in level
            for parent in parents[kind.read_under]
        ]
        for found in in_parallel(calls, parallelism):
            record(found)
        read |= {kind.name for kind in level}
        listed = [kind for kind in listed if kind not in level]
    for resource in graph:
        observed.setdefault(resource.address, Observed(resource.address, resource.kind, resource.ids, None))
    return observed
