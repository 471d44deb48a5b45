"""file_share.NAME: an Azure Files share of the spec's storage account, listed under the account."""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceExistsError
from rich.filesize import decimal

from batchai_spec.graph import Graph, Resource, SpecWalk
from batchai_spec.kinds import Declaration, Kind, Policy
from batchai_spec.observed import Observed
from batchai_spec.services.azure.connection import AzureConnection
from batchai_spec.services.azure.errors import already_gone, service_call
from batchai_spec.services.azure.ownership import OWNER_METADATA


class FileShare(Kind):
    name = "file_share"
    address_keys = ("share",)
    parent = "storage_account"
    fields = {"quota": Policy.UPDATE}
    read_under = "storage_account"

    def parent_address(self, ids: dict[str, str], known: set[str]) -> str | None:
        return f"storage_account.{ids['account']}"

    def declared(self, walk: SpecWalk):
        storage = walk.spec.storage
        if storage is None:
            return
        for index, share in enumerate(storage.file_shares):
            yield Declaration(
                {"resource_group": walk.spec.resource_group.name, "account": storage.account.name, "share": share.name},
                ("storage", "file_shares", index),
                share,
                depends_on=(f"storage_account.{storage.account.name}",),
            )

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        return {"quota": declaration.node.quota_gb}

    def list_under(self, connection: AzureConnection, account: Observed, graph: Graph) -> list[Observed]:
        ids = account.ids
        with service_call(account.address, "listing the keys of"):
            share_service = connection.clients.share_service(ids["resource_group"], ids["account"])
        with service_call(account.address, "listing file shares of"):
            shares = list(share_service.list_shares(include_metadata=True))
        return [
            Observed(
                f"file_share.{share.name}",
                self.name,
                {**ids, "share": share.name},
                {"quota": share.quota},
                owned=(share.metadata or {}).get(OWNER_METADATA) == connection.spec_name,
            )
            for share in shares
        ]

    def create(self, connection: AzureConnection, resource: Resource, progress=None) -> None:
        share = connection.share(resource.ids)
        try:
            share.create_share(quota=resource.desired["quota"], metadata={OWNER_METADATA: connection.spec_name})
        except ResourceExistsError:
            # Created by an interrupted run (its owner metadata set in the same call): only the quota may differ.
            share.set_share_quota(resource.desired["quota"])

    def update(self, connection: AzureConnection, resource: Resource, progress=None) -> None:
        connection.share(resource.ids).set_share_quota(resource.desired["quota"])

    def delete(self, connection: AzureConnection, live: Observed) -> None:
        with already_gone():
            connection.share(live.ids).delete_share(delete_snapshots=True)

    def deletion_notes(self, connection: AzureConnection, live: Observed) -> list[str]:
        """A share takes the job outputs on it along: how many runs' and how many bytes."""
        from batchai_spec.services.azure.runs import share_outputs  # only for such a plan: not light to import

        ids = live.ids
        count, size = share_outputs(
            connection.clients, ids["resource_group"], ids["account"], ids["share"], connection.endpoint.subscription_id
        )
        if not count:
            return []
        return [f"deletes the outputs of {count} job run{'s' if count != 1 else ''}, {decimal(size)}"]


FILE_SHARE = FileShare()
