"""The Batch data plane's clients for tests: the unmodified azure-batch 15.1.0 `BatchClient` on the account's
endpoint (`{endpoint.batch_url}/{account}`), with SharedKey (either account key) or the emulator's bearer token.

Test modules import the fixtures they use by name (`dataplane`, `client`), beside the conftest's `batch_account`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from azure.batch import BatchClient, models
from azure.core.credentials import AzureNamedKeyCredential

from batchai_spec.emulator.endpoint import Endpoint
from tests.emulator.batch.conftest import BatchAccount
from tests.emulator_clients import StaticTokenCredential, unique_name

# A pool that does not exist: the jobs of these tests never run a task unless a test makes the pool.
NO_POOL = "no-such-pool"


@dataclass(frozen=True)
class DataPlane:
    endpoint: Endpoint
    account: BatchAccount

    @property
    def url(self) -> str:
        return self.endpoint.batch_endpoint(self.account.name)

    def client(self, key: str | None = None, **options: Any) -> BatchClient:
        """SharedKey with key1 unless told; no retries, so that tests see every answer."""
        credential = AzureNamedKeyCredential(self.account.name, key or self.account.keys[0])
        return BatchClient(self.url, credential, connection_verify=self.endpoint.ca_cert,
                           retry_total=options.pop("retry_total", 0), **options)

    def token_client(self, token: str | None = None, **options: Any) -> BatchClient:
        return BatchClient(self.url, StaticTokenCredential(token or self.endpoint.token),
                           connection_verify=self.endpoint.ca_cert, retry_total=options.pop("retry_total", 0),
                           **options)


@pytest.fixture
def dataplane(endpoint: Endpoint, batch_account: BatchAccount) -> DataPlane:
    return DataPlane(endpoint, batch_account)


@pytest.fixture
def client(dataplane: DataPlane) -> BatchClient:
    return dataplane.client()


def new_job(client: BatchClient, pool: str = NO_POOL, job_id: str | None = None, **options: Any) -> str:
    job_id = job_id or unique_name("job")
    client.create_job(models.BatchJobCreateOptions(id=job_id, pool_info=models.BatchPoolInfo(pool_id=pool),
                                                   **options))
    return job_id
