"""One command's link to Batch AI on an endpoint: the Azure clients, the workspaces' ownership records, the reads
that follow running work."""

from __future__ import annotations

from functools import cached_property

from batchai_spec.services.azure.connection import AzureConnection
from batchai_spec.services.batchai.ownership import WorkspaceRecords
from batchai_spec.services.batchai.watch import Watch


class BatchAIConnection(AzureConnection):
    @cached_property
    def ownership(self) -> WorkspaceRecords:
        return WorkspaceRecords(self.clients, self.spec_name)

    @cached_property
    def watch(self) -> Watch:
        return Watch(self.clients)
