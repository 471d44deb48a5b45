"""Azure Batch (ARM 2025-06-01 through azure-mgmt-batch, the data plane through azure-batch): the service Batch AI
was built on, alive today. Its registry: the kinds every service on Azure shares (the share's with the launcher
added), then its own, in apply order. The mapping from Batch AI is README.md's "Two services"."""

from __future__ import annotations

from batchai_spec.kinds import Registry
from batchai_spec.services.azure.endpoint import Endpoint
from batchai_spec.services.azure.kinds.file_share import FILE_SHARE
from batchai_spec.services.azure.kinds.resource_group import RESOURCE_GROUP
from batchai_spec.services.azure.kinds.storage_account import STORAGE_ACCOUNT
from batchai_spec.services.batch.connection import BatchConnection
from batchai_spec.services.batch.kinds.account import ACCOUNT
from batchai_spec.services.batch.kinds.experiment import EXPERIMENT
from batchai_spec.services.batch.kinds.job import JOB
from batchai_spec.services.batch.kinds.launcher import DIRECTORY, FILE
from batchai_spec.services.batch.kinds.pool import POOL

NAME = "batch"
REGISTRY = Registry(NAME, [RESOURCE_GROUP, STORAGE_ACCOUNT, FILE_SHARE, DIRECTORY, FILE, ACCOUNT, POOL, EXPERIMENT, JOB])


def connect(endpoint: Endpoint, spec_name: str, *, parallelism: int = 16) -> BatchConnection:
    return BatchConnection(REGISTRY, endpoint, spec_name, parallelism=parallelism)
