"""workspace.NAME: the Batch AI workspace, which holds the clusters, experiments and file servers and, in its tags,
the spec's ownership records of them (batchai_spec/services/batchai/ownership.py). It belongs to one spec."""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.batchai import models as batchai_models

from batchai_spec.graph import Resource
from batchai_spec.observed import Observed
from batchai_spec.services.azure.errors import already_gone, service_call
from batchai_spec.services.batchai.connection import BatchAIConnection
from batchai_spec.services.declarations import SpecWorkspace


class Workspace(SpecWorkspace):
    holds = ("cluster", "experiment", "file_server")

    def read(self, connection: BatchAIConnection, resource: Resource) -> Observed:
        ids = resource.ids
        with service_call(resource.address, "reading"):
            try:
                workspace = connection.clients.batchai.workspaces.get(ids["resource_group"], ids["workspace"])
            except ResourceNotFoundError:
                connection.ownership.gone(ids)
                return Observed(resource.address, self.name, ids, None)
        tags = workspace.tags or {}
        connection.ownership.seen(ids, tags)
        return self.found(resource, connection.spec_name, workspace.location, tags)

    def create(self, connection: BatchAIConnection, resource: Resource, progress=None) -> None:
        ids, desired = resource.ids, resource.desired
        tags = self.new_tags(resource, connection.spec_name, "batchai")
        workspace = connection.clients.batchai.workspaces.begin_create(
            ids["resource_group"],
            ids["workspace"],
            batchai_models.WorkspaceCreateParameters(location=desired["location"], tags=tags),
        ).result()
        connection.ownership.seen(ids, workspace.tags or tags)

    def update(self, connection: BatchAIConnection, resource: Resource, progress=None) -> None:
        declared = resource.desired["tags"]
        connection.ownership.change(resource.ids, lambda tags: tags.update(declared))

    def delete(self, connection: BatchAIConnection, live: Observed) -> None:
        with already_gone():
            connection.clients.batchai.workspaces.begin_delete(live.ids["resource_group"], live.ids["workspace"]).result()
        connection.ownership.gone(live.ids)


WORKSPACE = Workspace()
