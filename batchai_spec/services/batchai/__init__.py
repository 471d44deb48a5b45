"""Batch AI (2018-05-01): the quickstart's own service. Its registry: the kinds every service on Azure shares, then
its own, in apply order."""

from __future__ import annotations

from batchai_spec.kinds import Registry
from batchai_spec.services.azure.endpoint import Endpoint
from batchai_spec.services.azure.kinds.directory import DIRECTORY
from batchai_spec.services.azure.kinds.file import FILE
from batchai_spec.services.azure.kinds.file_share import FILE_SHARE
from batchai_spec.services.azure.kinds.resource_group import RESOURCE_GROUP
from batchai_spec.services.azure.kinds.storage_account import STORAGE_ACCOUNT
from batchai_spec.services.batchai.connection import BatchAIConnection
from batchai_spec.services.batchai.kinds.cluster import CLUSTER
from batchai_spec.services.batchai.kinds.experiment import EXPERIMENT
from batchai_spec.services.batchai.kinds.file_server import FILE_SERVER
from batchai_spec.services.batchai.kinds.job import JOB
from batchai_spec.services.batchai.kinds.workspace import WORKSPACE

NAME = "batchai"
REGISTRY = Registry(
    NAME,
    [
        RESOURCE_GROUP,
        STORAGE_ACCOUNT,
        FILE_SHARE,
        DIRECTORY,
        FILE,
        WORKSPACE,
        FILE_SERVER,
        CLUSTER,
        EXPERIMENT,
        JOB,
    ],
)


def connect(endpoint: Endpoint, spec_name: str, *, parallelism: int = 16) -> BatchAIConnection:
    return BatchAIConnection(REGISTRY, endpoint, spec_name, parallelism=parallelism)
