"""storage_account.NAME: the account of the spec's file shares, created or referenced (existing: true)."""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.storage import models as storage_models

from batchai_spec.graph import Resource, SpecWalk
from batchai_spec.kinds import Declaration, Kind, Policy
from batchai_spec.observed import Observed
from batchai_spec.services.azure.connection import AzureConnection
from batchai_spec.services.azure.errors import service_call
from batchai_spec.services.azure.ownership import canonical_location, check_service, merged_tags, owned_by, user_tags


class StorageAccount(Kind):
    name = "storage_account"
    address_keys = ("account",)
    parent = "resource_group"
    fields = {"location": Policy.REPLACE, "kind": Policy.REPLACE, "sku": Policy.UPDATE, "tags": Policy.UPDATE}
    holds = ("file_share",)

    def declared(self, walk: SpecWalk):
        if walk.spec.storage is None:
            return
        account = walk.spec.storage.account
        yield Declaration(
            {"resource_group": walk.spec.resource_group.name, "account": account.name},
            ("storage", "account"),
            account,
            depends_on=(f"resource_group.{walk.spec.resource_group.name}",),
            managed=not account.existing,
        )

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        account = declaration.node
        return {
            "location": canonical_location(walk.spec.storage_location),
            "sku": account.sku,
            "kind": account.kind,
            "tags": {},
        }

    def read(self, connection: AzureConnection, resource: Resource) -> Observed:
        ids = resource.ids
        with service_call(resource.address, "reading"):
            try:
                account = connection.clients.storage.storage_accounts.get_properties(ids["resource_group"], ids["account"])
            except ResourceNotFoundError:
                return Observed(resource.address, self.name, ids, None)
        check_service(resource.address, account.tags, connection.spec_name, connection.registry.service)
        return Observed(
            resource.address,
            self.name,
            ids,
            {
                "location": canonical_location(account.location),
                "sku": account.sku.name if account.sku else None,
                "kind": account.kind,
                "tags": user_tags(account.tags, (resource.desired or {}).get("tags")),
            },
            owned=owned_by(account.tags, connection.spec_name),
        )

    def create(self, connection: AzureConnection, resource: Resource, progress=None) -> None:
        desired = resource.desired
        parameters = storage_models.StorageAccountCreateParameters(
            sku=storage_models.Sku(name=desired["sku"]),
            kind=desired["kind"],
            location=desired["location"],
            tags=merged_tags(desired["tags"], None, True, connection.spec_name, connection.registry.service),
        )
        connection.clients.forget_account(resource.ids["account"])
        connection.clients.storage.storage_accounts.begin_create(
            resource.ids["resource_group"], resource.ids["account"], parameters
        ).result()

    def update(self, connection: AzureConnection, resource: Resource, progress=None) -> None:
        ids, desired = resource.ids, resource.desired
        account = connection.clients.storage.storage_accounts.get_properties(ids["resource_group"], ids["account"])
        owned = connection.observed[resource.address].owned
        parameters = storage_models.StorageAccountUpdateParameters(
            sku=storage_models.Sku(name=desired["sku"]),
            tags=merged_tags(desired["tags"], account.tags, owned, connection.spec_name),
        )
        connection.clients.storage.storage_accounts.update(ids["resource_group"], ids["account"], parameters)

    def delete(self, connection: AzureConnection, live: Observed) -> None:
        connection.clients.storage.storage_accounts.delete(live.ids["resource_group"], live.ids["account"])
        connection.clients.forget_account(live.ids["account"])


STORAGE_ACCOUNT = StorageAccount()
