"""One command's link to Azure Batch on an endpoint: the Azure clients (ARM, the accounts' data planes, Azure Files),
the Batch accounts' tags (the fingerprints' salt), each account's jobs listed once, and the reads that follow
running work."""

from __future__ import annotations

import threading
from typing import Any

from batchai_spec.graph import Resource
from batchai_spec.observed import Observed
from batchai_spec.sensitive import fingerprints
from batchai_spec.services.azure.connection import AzureConnection
from batchai_spec.services.azure.errors import service_call
from batchai_spec.services.batch.ownership import AccountTags
from batchai_spec.services.batch.watch import Watch


class BatchConnection(AzureConnection):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Made here, not on first use: the first use is in the live read's threads.
        self.accounts = AccountTags(self.clients)
        self.watch = Watch(self)
        self._jobs: dict[tuple[str, str], list[Any]] = {}
        self._jobs_lock = threading.Lock()

    def data(self, ids: dict[str, str]):
        """The data-plane client of the Batch account `ids` names (its workspace)."""
        return self.clients.batch_account(ids["resource_group"], ids["workspace"])

    def fingerprints(self, resource: Resource) -> str:
        """The fingerprints of a resource's write-only values, under its account's salt, to record with it."""
        return fingerprints(resource.desired, self.accounts.salt(resource.ids))

    def account_jobs(self, account: Observed) -> list[Any]:
        """Every job of a live Batch account, listed once per command (experiments and jobs are both read from it)."""
        key = (account.ids["resource_group"], account.ids["workspace"])
        with self._jobs_lock:  # one listing, even when several readers ask at once
            if key not in self._jobs:
                with service_call(account.address, "listing the jobs of"):
                    self._jobs[key] = list(self.data(account.ids).list_jobs())
            return self._jobs[key]
