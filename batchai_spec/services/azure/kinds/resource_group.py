"""resource_group.NAME: an ARM resource group. Adopted when it exists; deleted only with delete_on_destroy."""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from batchai_spec.graph import Resource, SpecWalk
from batchai_spec.kinds import Declaration, Kind, Policy
from batchai_spec.observed import Observed
from batchai_spec.services.azure.connection import AzureConnection
from batchai_spec.services.azure.errors import already_gone, service_call
from batchai_spec.services.azure.ownership import canonical_location, merged_tags, owned_by, user_tags


class ResourceGroup(Kind):
    name = "resource_group"
    address_keys = ("resource_group",)
    fields = {"location": Policy.REPLACE, "tags": Policy.UPDATE}

    def declared(self, walk: SpecWalk):
        group = walk.spec.resource_group
        yield Declaration(
            {"resource_group": group.name},
            ("resource_group",),
            group,
            extra={"delete_on_destroy": group.delete_on_destroy},
        )

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        group = declaration.node
        return {"location": canonical_location(group.location), "tags": dict(group.tags or {})}

    def destroy_allowed(self, resource: Resource | None, live: Observed) -> tuple[bool, str]:
        # Deleting a group deletes everything in it, the spec's or not: only when the spec says so.
        return bool(resource and resource.extra["delete_on_destroy"]), "delete_on_destroy is true"

    def read(self, connection: AzureConnection, resource: Resource) -> Observed:
        with service_call(resource.address, "reading"):
            try:
                group = connection.clients.resource.resource_groups.get(resource.ids["resource_group"])
            except ResourceNotFoundError:
                return Observed(resource.address, self.name, resource.ids, None)
        return Observed(
            resource.address,
            self.name,
            resource.ids,
            {"location": canonical_location(group.location), "tags": user_tags(group.tags, resource.desired["tags"])},
            owned=owned_by(group.tags, connection.spec_name),
        )

    def create(self, connection: AzureConnection, resource: Resource, progress=None) -> None:
        tags = merged_tags(resource.desired["tags"], None, True, connection.spec_name)
        connection.clients.resource.resource_groups.create_or_update(
            resource.ids["resource_group"], {"location": resource.desired["location"], "tags": tags}
        )

    def update(self, connection: AzureConnection, resource: Resource, progress=None) -> None:
        name = resource.ids["resource_group"]
        group = connection.clients.resource.resource_groups.get(name)
        owned = connection.observed[resource.address].owned
        connection.clients.resource.resource_groups.update(
            name, {"tags": merged_tags(resource.desired["tags"], group.tags, owned, connection.spec_name)}
        )

    def delete(self, connection: AzureConnection, live: Observed) -> None:
        with already_gone():
            connection.clients.resource.resource_groups.begin_delete(live.ids["resource_group"]).result()


RESOURCE_GROUP = ResourceGroup()
