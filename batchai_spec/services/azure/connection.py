"""What every service on Azure shares for one command: the SDK clients of the endpoint, the spec's name (ownership),
what the live read found, and how Azure's failures are classified and described."""

from __future__ import annotations

import threading
from typing import Any

from batchai_spec.graph import Resource

from batchai_spec.kinds import Connection, Registry
from batchai_spec.observed import Observed
from batchai_spec.sensitive import revealed
from batchai_spec.services.azure import errors
from batchai_spec.services.azure.clients import Clients
from batchai_spec.services.azure.endpoint import Endpoint


class AzureConnection(Connection):
    def __init__(self, registry: Registry, endpoint: Endpoint, spec_name: str, *, parallelism: int = 16):
        self.registry = registry
        self.endpoint = endpoint
        self.spec_name = spec_name
        self.parallelism = parallelism
        # Made here, not on first use: the first use is in the live read's threads.
        self.clients = Clients(endpoint)
        # Filled by the live read (batchai_spec/live.py), read by the writes (a file's account's resource group).
        self.observed: dict[str, Observed] = {}
        self._lock = threading.Lock()
        self._account_groups: dict[str, str] | None = None

    def is_transient(self, error: BaseException) -> bool:
        return errors.is_transient(error)

    def retry_after(self, error: BaseException) -> float | None:
        return errors.retry_after(error)

    def describe(self, error: BaseException) -> str:
        return errors.describe(error)

    def resource_group_of_account(self, account: str, *, look_up: bool = False) -> str | None:
        """The resource group of a storage account, as the live read found it; with `look_up`, else from the
        subscription's accounts (one listing, for commands that read nothing live first)."""
        for live in list(self.observed.values()):
            if live.kind == "storage_account" and live.ids["account"] == account:
                return live.ids["resource_group"]
        if not look_up:
            return None
        with self._lock:
            if self._account_groups is None:
                self._account_groups = {
                    item.name: item.id.split("/")[4] for item in self.clients.storage.storage_accounts.list()
                }
            return self._account_groups.get(account)

    def revealed(self, resource: Resource) -> dict[str, Any]:
        """The desired body with its secrets, storage keys read from ARM, for the call that sends it."""

        def account_key(source: str) -> str:
            _, account = source.split(":", 1)
            return self.clients.account_key(resource.ids["resource_group"], account)

        return revealed(resource.desired, account_key)

    def share(self, ids: dict[str, str]):
        """The share client of a share, directory or file (whose ids name the account, maybe not its group)."""
        resource_group = ids.get("resource_group") or self.resource_group_of_account(ids["account"], look_up=True)
        if resource_group is None:
            raise KeyError(ids["account"])
        return self.clients.share_service(resource_group, ids["account"]).get_share_client(ids["share"])
