"""workspace.NAME: the Batch AI workspace, which holds the clusters, experiments and file servers and, in its tags,
the spec's ownership records of them (batchai_spec/services/batchai/ownership.py). It belongs to one spec."""

from __future__ import annotations

import secrets as random_tokens
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.batchai import models as batchai_models

from batchai_spec.graph import Resource, SpecWalk
from batchai_spec.kinds import Declaration, Kind, Policy
from batchai_spec.observed import Observed, Stored
from batchai_spec.services.azure.errors import already_gone, service_call
from batchai_spec.services.azure.ownership import SPEC_TAG, canonical_location, merged_tags, owned_by, user_tags
from batchai_spec.services.batchai.bodies import workspace_ids
from batchai_spec.services.batchai.connection import BatchAIConnection
from batchai_spec.services.batchai.ownership import SALT_TAG


class Workspace(Kind):
    name = "workspace"
    address_keys = ("workspace",)
    parent = "resource_group"
    fields = {"location": Policy.REPLACE, "tags": Policy.UPDATE}
    holds = ("cluster", "experiment", "file_server")
    one_spec_only = True

    def declared(self, walk: SpecWalk):
        spec = walk.spec
        yield Declaration(
            workspace_ids(spec),
            ("workspace",),
            spec.workspace,
            depends_on=(f"resource_group.{spec.resource_group.name}",),
        )

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        return {"location": canonical_location(walk.spec.workspace_location), "tags": dict(declaration.node.tags or {})}

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
        owner = tags.get(SPEC_TAG)
        return Observed(
            resource.address,
            self.name,
            ids,
            {"location": canonical_location(workspace.location), "tags": user_tags(tags, resource.desired["tags"])},
            owned=owned_by(tags, connection.spec_name),
            stored=Stored(salt=tags.get(SALT_TAG)),
            other_owner=owner if owner and owner != connection.spec_name else None,
        )

    def create(self, connection: BatchAIConnection, resource: Resource, progress=None) -> None:
        ids, desired = resource.ids, resource.desired
        tags = merged_tags(desired["tags"], None, True, connection.spec_name)
        tags[SALT_TAG] = random_tokens.token_hex(8)
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
