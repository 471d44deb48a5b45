"""experiment.NAME: a Batch AI experiment, the container of jobs; recorded in its workspace's tags."""

from __future__ import annotations

from typing import Any

from batchai_spec.graph import Graph, Resource, SpecWalk
from batchai_spec.kinds import Cannot, Declaration, Kind
from batchai_spec.observed import Observed
from batchai_spec.services.azure.errors import already_gone
from batchai_spec.services.batchai.bodies import workspace_ids
from batchai_spec.services.batchai.connection import BatchAIConnection


class Experiment(Kind):
    name = "experiment"
    address_keys = ("experiment",)
    parent = "workspace"
    holds = ("job",)
    read_under = "workspace"

    def declared(self, walk: SpecWalk):
        spec = walk.spec
        for index, experiment in enumerate(spec.experiments):
            yield Declaration(
                {**workspace_ids(spec), "experiment": experiment.name},
                ("experiments", index),
                experiment,
                depends_on=(f"workspace.{spec.workspace.name}",),
            )

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        return {}

    def list_under(self, connection: BatchAIConnection, workspace: Observed, graph: Graph) -> list[Observed]:
        return [
            Observed(self.address(ids), self.name, ids, {}, owned=owned)
            for _, ids, owned, _ in connection.workspace_children(
                workspace, self.name, connection.clients.batchai.experiments, "experiments"
            )
        ]

    def create(self, connection: BatchAIConnection, resource: Resource, progress=None) -> None:
        ids = resource.ids
        connection.ownership.record(self.name, ids)
        connection.clients.batchai.experiments.begin_create(ids["resource_group"], ids["workspace"], ids["experiment"]).result()

    update = Cannot("an experiment has no properties to change")

    def delete(self, connection: BatchAIConnection, live: Observed) -> None:
        ids = live.ids
        with already_gone():
            connection.clients.batchai.experiments.begin_delete(ids["resource_group"], ids["workspace"], ids["experiment"]).result()
        connection.ownership.forget(self.name, ids)


EXPERIMENT = Experiment()
