"""SDK clients for one endpoint, built once per command and shared by every adapter (they are thread-safe)."""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING

from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.mgmt.batchai import BatchAI
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient
from azure.storage.fileshare import ShareServiceClient

from batchai_spec.errors import UserError
from batchai_spec.services.azure.endpoint import Endpoint, LocalEmulator

if TYPE_CHECKING:  # imported by the service that uses them: each costs start-up time
    from azure.batch import BatchClient
    from azure.mgmt.batch import BatchManagementClient

# The local emulator is on loopback: a connection is made at once or refused, and no request it answers takes long.
LOCAL_CONNECTION_TIMEOUT_S = 10
LOCAL_READ_TIMEOUT_S = 120
LOCAL_POOL_SIZE = 64  # connections kept per host: more than the most threads a command runs (--parallelism <= 64)
# How the Azure Batch data plane is authenticated: "entra" (the endpoint's credential, Microsoft Entra ID on Azure)
# or "key" (the account's shared key, read from ARM listKeys). Default: entra on Azure, key on the local emulator.
BATCH_AUTH_VARIABLE = "BATCHAI_SPEC_BATCH_AUTH"


class LocalEmulatorTransport(RequestsTransport):
    """The transport of every client of the local endpoint. A request that fails to connect or is cut off is final
    when the emulator's process is gone (EmulatorStopped, not an AzureError: neither the SDK's retry policy nor
    the engine's retries it); while the emulator lives, the failure is retried as any other."""

    def __init__(self, emulator: LocalEmulator, **kwargs):
        super().__init__(**kwargs)
        self._emulator = emulator

    def _init_session(self, session) -> None:
        super()._init_session(session)
        # Every client and every worker thread shares this pool: room for all their connections (requests keeps
        # 10 per host, and says so on stderr each time it drops one more).
        for prefix, adapter in list(session.adapters.items()):
            bigger = type(adapter)(max_retries=adapter.max_retries, pool_connections=4, pool_maxsize=LOCAL_POOL_SIZE)
            session.mount(prefix, bigger)

    def send(self, request, **kwargs):
        try:
            return super().send(request, **kwargs)
        except (ServiceRequestError, ServiceResponseError):
            self._emulator.check()
            raise


class Clients:
    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self._keys: dict[str, str] = {}
        self._shares: dict[str, ShareServiceClient] = {}
        self._batch_accounts: dict[str, BatchClient] = {}
        self._lock = threading.Lock()

    @cached_property
    def _local_transport(self) -> LocalEmulatorTransport:
        """One transport (one connection pool) for every client of the local endpoint: the management clients share
        connections to ARM instead of each opening its own. The emulator is on loopback, where no proxy applies:
        requests then skips reading the proxy and netrc settings of the environment on every request (about a
        tenth of a request's client time)."""
        return LocalEmulatorTransport(
            self.endpoint.emulator,
            use_env_settings=False,
            connection_verify=self.endpoint.connection_verify,
            connection_timeout=LOCAL_CONNECTION_TIMEOUT_S,
            read_timeout=LOCAL_READ_TIMEOUT_S,
        )

    def _transport_options(self) -> dict:
        return {} if self.endpoint.emulator is None else {"transport": self._local_transport}

    def _arm_options(self) -> dict:
        return {
            "base_url": self.endpoint.arm_url,
            "connection_verify": self.endpoint.connection_verify,
            "polling_interval": self.endpoint.polling_interval,
            # The engine retries whole steps (honouring Retry-After); a few quick SDK retries under it are enough.
            "retry_total": 3,
            "retry_backoff_max": 10,
            **self._transport_options(),
        }

    @cached_property
    def resource(self) -> ResourceManagementClient:
        return ResourceManagementClient(self.endpoint.credential, self.endpoint.subscription_id, **self._arm_options())

    @cached_property
    def storage(self) -> StorageManagementClient:
        return StorageManagementClient(self.endpoint.credential, self.endpoint.subscription_id, **self._arm_options())

    @cached_property
    def batchai(self) -> BatchAI:
        return BatchAI(self.endpoint.credential, self.endpoint.subscription_id, **self._arm_options())

    @cached_property
    def batch(self) -> BatchManagementClient:
        from azure.mgmt.batch import BatchManagementClient

        return BatchManagementClient(self.endpoint.credential, self.endpoint.subscription_id, **self._arm_options())

    def batch_account(self, resource_group: str, account: str) -> BatchClient:
        """The data-plane client of a Batch account (made on first use: on Azure it needs the account's endpoint)."""
        with self._lock:
            client = self._batch_accounts.get(account)
        if client is not None:
            return client
        from azure.batch import BatchClient
        from azure.core.credentials import AzureNamedKeyCredential

        auth = os.environ.get(BATCH_AUTH_VARIABLE) or ("key" if self.endpoint.emulator is not None else "entra")
        if auth not in ("key", "entra"):
            raise UserError(f"{BATCH_AUTH_VARIABLE} must be 'key' or 'entra', not {auth!r}")
        account_endpoint = "" if self.endpoint.batch_url else self.batch.batch_account.get(resource_group, account).account_endpoint
        if auth == "key":
            keys = self.batch.batch_account.get_keys(resource_group, account)
            credential = AzureNamedKeyCredential(account, keys.primary)
        else:
            credential = self.endpoint.credential  # scope https://batch.core.windows.net//.default (the SDK's)
        client = BatchClient(
            endpoint=self.endpoint.batch_endpoint(account, account_endpoint),
            credential=credential,
            connection_verify=self.endpoint.connection_verify,
            polling_interval=self.endpoint.polling_interval,
            retry_total=3,
            retry_backoff_max=10,
            **self._transport_options(),
        )
        with self._lock:
            self._batch_accounts[account] = client
        return client

    def forget_batch_account(self, account: str) -> None:
        with self._lock:
            self._batch_accounts.pop(account, None)

    def forget_account(self, account: str) -> None:
        """A deleted or re-created account has new keys: drop what was cached of the old one."""
        with self._lock:
            self._keys.pop(account, None)
            self._shares.pop(account, None)

    def account_key(self, resource_group: str, account: str) -> str:
        """Storage keys always come from ARM, never from the spec or the environment."""
        with self._lock:
            key = self._keys.get(account)
        if key is None:
            keys = self.storage.storage_accounts.list_keys(resource_group, account).keys
            key = keys[0].value
            with self._lock:
                self._keys[account] = key
        return key

    def share_service(self, resource_group: str, account: str) -> ShareServiceClient:
        with self._lock:
            client = self._shares.get(account)
        if client is None:
            client = ShareServiceClient(
                account_url=self.endpoint.file_endpoint(account),
                credential={"account_name": account, "account_key": self.account_key(resource_group, account)},
                connection_verify=self.endpoint.connection_verify,
                **self._transport_options(),
                # The storage SDK's default backoff starts at 15 s; transient faults are retried by the engine.
                retry_total=2,
                initial_backoff=0.5,
                increment_base=2,
            )
            with self._lock:
                self._shares[account] = client
        return client
