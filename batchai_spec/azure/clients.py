"""SDK clients for one target, built once per command and shared by every adapter (they are thread-safe)."""

from __future__ import annotations

import threading
from functools import cached_property

from azure.mgmt.batchai import BatchAI
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient
from azure.storage.fileshare import ShareServiceClient

from batchai_spec.azure.target import Target


class Clients:
    def __init__(self, target: Target):
        self.target = target
        self._keys: dict[str, str] = {}
        self._shares: dict[str, ShareServiceClient] = {}
        self._lock = threading.Lock()

    def _transport_options(self) -> dict:
        """The local emulator is on loopback, where no proxy applies: requests then skips reading the proxy and
        netrc settings of the environment on every request (about a tenth of a request's client time)."""
        return {"use_env_settings": False} if self.target.kind == "local" else {}

    def _arm_options(self) -> dict:
        return {
            "base_url": self.target.arm_url,
            "connection_verify": self.target.connection_verify,
            "polling_interval": self.target.polling_interval,
            # The engine retries whole steps (honouring Retry-After); a few quick SDK retries under it are enough.
            "retry_total": 3,
            "retry_backoff_max": 10,
            **self._transport_options(),
        }

    @cached_property
    def resource(self) -> ResourceManagementClient:
        return ResourceManagementClient(self.target.credential, self.target.subscription_id, **self._arm_options())

    @cached_property
    def storage(self) -> StorageManagementClient:
        return StorageManagementClient(self.target.credential, self.target.subscription_id, **self._arm_options())

    @cached_property
    def batchai(self) -> BatchAI:
        return BatchAI(self.target.credential, self.target.subscription_id, **self._arm_options())

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
                account_url=self.target.file_endpoint(account),
                credential={"account_name": account, "account_key": self.account_key(resource_group, account)},
                connection_verify=self.target.connection_verify,
                **self._transport_options(),
                # The storage SDK's default backoff starts at 15 s; transient faults are retried by the engine.
                retry_total=2,
                initial_backoff=0.5,
                increment_base=2,
            )
            with self._lock:
                self._shares[account] = client
        return client
