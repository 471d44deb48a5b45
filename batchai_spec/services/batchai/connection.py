"""One command's link to Batch AI on an endpoint: the Azure clients, the workspaces' ownership records, the reads
that follow running work."""

from __future__ import annotations

from typing import Any

from batchai_spec.observed import Observed, Stored
from batchai_spec.services.azure.connection import AzureConnection
from batchai_spec.services.azure.errors import service_call
from batchai_spec.services.batchai.ownership import WorkspaceRecords
from batchai_spec.services.batchai.watch import Watch


class BatchAIConnection(AzureConnection):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Made here, not on first use: the first use is in the live read's threads.
        self.ownership = WorkspaceRecords(self.clients, self.spec_name)
        self.watch = Watch(self.clients)

    def workspace_children(
        self, workspace: Observed, kind: str, operations: Any, plural: str
    ) -> list[tuple[Any, dict[str, str], bool, Stored]]:
        """The clusters (experiments, file servers: `operations` of the SDK) of a live workspace, each with its ids
        and this spec's record of it: (SDK model, ids, owned, stored)."""
        ids = workspace.ids
        with service_call(workspace.address, f"listing {plural} of"):
            items = list(operations.list_by_workspace(ids["resource_group"], ids["workspace"]))
        children = []
        for item in items:
            child_ids = {**ids, kind: item.name}
            children.append((item, child_ids, *self.ownership.read(kind, child_ids)))
        return children
