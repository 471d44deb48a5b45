"""experiment.NAME: a Batch AI experiment, the container of jobs; recorded in its workspace's tags."""

from __future__ import annotations

from batchai_spec.graph import Graph, Resource
from batchai_spec.kinds import Cannot
from batchai_spec.observed import Observed
from batchai_spec.services.azure.errors import already_gone
from batchai_spec.services.batchai.connection import BatchAIConnection
from batchai_spec.services.declarations import SpecExperiment


class Experiment(SpecExperiment):
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
