"""workspace.NAME on Azure Batch: a Batch account of that name (3-24 lowercase letters and digits, unique in Azure),
which holds the pools and jobs. Its tags say which spec owns it and hold the salt of its pools' and jobs'
fingerprints. It belongs to one spec."""

from __future__ import annotations

from azure.core.exceptions import ResourceNotFoundError

from batchai_spec.graph import Resource
from batchai_spec.observed import Observed
from batchai_spec.services.azure.errors import already_gone, service_call
from batchai_spec.services.batch.connection import BatchConnection
from batchai_spec.services.declarations import SpecWorkspace


class Account(SpecWorkspace):
    holds = ("cluster", "experiment")

    def read(self, connection: BatchConnection, resource: Resource) -> Observed:
        ids = resource.ids
        with service_call(resource.address, "reading"):
            try:
                account = connection.clients.batch.batch_account.get(ids["resource_group"], ids["workspace"])
            except ResourceNotFoundError:
                connection.accounts.gone(ids)
                return Observed(resource.address, self.name, ids, None)
        tags = account.tags or {}
        connection.accounts.seen(ids, tags)
        state = account.properties.provisioning_state if account.properties else None
        return self.found(resource, connection.spec_name, account.location, tags, {"provisioning_state": state})

    def status(self, live: Observed) -> tuple[str, str]:
        return (live.status.get("provisioning_state") or "present").lower(), "Batch account"

    def create(self, connection: BatchConnection, resource: Resource, progress=None) -> None:
        ids, desired = resource.ids, resource.desired
        tags = self.new_tags(resource, connection.spec_name, "batch")
        account = connection.clients.batch.batch_account.begin_create(
            ids["resource_group"], ids["workspace"], {"location": desired["location"], "tags": tags}
        ).result()
        connection.accounts.seen(ids, account.tags or tags)

    def update(self, connection: BatchConnection, resource: Resource, progress=None) -> None:
        connection.accounts.update(resource.ids, resource.desired["tags"])

    def delete(self, connection: BatchConnection, live: Observed) -> None:
        with already_gone():
            connection.clients.batch.batch_account.begin_delete(live.ids["resource_group"], live.ids["workspace"]).result()
        connection.accounts.gone(live.ids)
        connection.clients.forget_batch_account(live.ids["workspace"])


ACCOUNT = Account()
