"""Fixtures for the Azure Batch emulator tests, on the session's `emulator` (tests/conftest.py).

- `batch_context`: the Batch scheduler's context with zero delays (session); `batch_delays(emulator, ...)` changes
  some delays for one test and puts them back.
- `batch_mgmt`: the unmodified azure-mgmt-batch client pointed at the emulator (short polling interval).
- `batch_account`: a new resource group with a Batch account made through the SDK (group, name, keys).
- `batch_share`: an Azure File share in a new storage account, made through the SDKs, with what a pool's
  `azureFileShareConfiguration` needs and the share's directory on disk.

Every test makes its own resource group, so tests share the session's emulator without seeing each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.batch import BatchManagementClient

from batchai_spec.emulator.batch import service, store
from batchai_spec.emulator.batch.service import Context
from batchai_spec.emulator.endpoint import Endpoint
from batchai_spec.emulator.files.store import share_directory
from batchai_spec.emulator.server import RunningEmulator
from tests.emulator.batchai_support import fast_config, wait_for
from tests.emulator_clients import LOCATION, StaticTokenCredential, unique_name

__all__ = ["BatchAccount", "BatchShare", "batch_delays", "batch_mgmt_for", "nodes_of", "pool_body", "wait_for"]

IMAGE = {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204", "version": "latest"}
NODE_AGENT = "batch.node.ubuntu 22.04"


def batch_mgmt_for(endpoint: Endpoint, **options: Any) -> BatchManagementClient:
    """How any client reaches the emulator's Microsoft.Batch: base_url, its CA, a short polling interval."""
    return BatchManagementClient(
        StaticTokenCredential(endpoint.token), endpoint.subscription_id, base_url=endpoint.arm_url,
        connection_verify=endpoint.ca_cert, polling_interval=0.05, **options,
    )


@pytest.fixture(scope="session")
def batch_context(emulator: RunningEmulator) -> Context:
    context = service.context(emulator.state)
    assert context is not None, "the Batch scheduler is not running (server.BACKGROUND_SERVICES)"
    context.config = fast_config()
    return context


@contextmanager
def batch_delays(context: Context, **delays: float) -> Iterator[None]:
    """Some delays (Delays fields) other than zero for the duration of a test."""
    before = context.config
    context.config = replace(before, delays=replace(before.delays, **delays))
    try:
        yield
    finally:
        context.config = before


@pytest.fixture(scope="session")
def batch_mgmt(endpoint: Endpoint, batch_context: Context) -> BatchManagementClient:
    return batch_mgmt_for(endpoint)


@dataclass(frozen=True)
class BatchAccount:
    resource_group: str
    name: str
    keys: tuple[str, str]
    location: str = LOCATION


@pytest.fixture
def batch_account(batch_mgmt: BatchManagementClient, resource_client) -> BatchAccount:
    group, name = unique_name("rg"), unique_name("batch")
    resource_client.resource_groups.create_or_update(group, {"location": LOCATION})
    batch_mgmt.batch_account.begin_create(group, name, {"location": LOCATION}).result()
    keys = batch_mgmt.batch_account.get_keys(group, name)
    return BatchAccount(group, name, (keys.primary, keys.secondary))


@dataclass(frozen=True)
class BatchShare:
    account: str
    key: str
    share: str
    directory: Path

    @property
    def url(self) -> str:
        return f"https://{self.account}.file.core.windows.net/{self.share}"

    def mount(self, path: str = "afs", key: str | None = None, url: str | None = None) -> dict[str, Any]:
        """A pool's `mountConfiguration` entry for this share."""
        return {"azureFileShareConfiguration": {
            "accountName": self.account, "azureFileUrl": url or self.url, "accountKey": key or self.key,
            "relativeMountPath": path,
        }}


@pytest.fixture
def batch_share(emulator: RunningEmulator, make_storage_account) -> BatchShare:
    account = make_storage_account()
    name = unique_name("share")
    account.service().create_share(name)
    return BatchShare(account.name, account.keys[0], name, share_directory(emulator.state, account.name, name))


def pool_body(*, dedicated: int = 0, low_priority: int = 0, formula: str | None = None, **properties: Any
              ) -> dict[str, Any]:
    """An ARM pool body as azure-mgmt-batch sends it (camelCase under `properties`)."""
    if formula is not None:
        scale = {"autoScale": {"formula": formula, "evaluationInterval": "PT5M"}}
    else:
        scale = {"fixedScale": {"targetDedicatedNodes": dedicated, "targetLowPriorityNodes": low_priority}}
    return {"properties": {
        "vmSize": "Standard_D2s_v3",
        "deploymentConfiguration": {"virtualMachineConfiguration": {"imageReference": IMAGE,
                                                                    "nodeAgentSkuId": NODE_AGENT}},
        "scaleSettings": scale,
        **properties,
    }}


def nodes_of(emulator: RunningEmulator, account: str, pool: str) -> list[store.Node]:
    """The pool's nodes as the scheduler keeps them (the data plane shows them to clients)."""
    return store.list_nodes(emulator.state.connection(), account, pool)
