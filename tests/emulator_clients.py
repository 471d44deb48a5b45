"""Helpers for tests that talk to the emulator through the official SDK clients (fixtures are in conftest.py)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from azure.core.credentials import AccessToken
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient
from azure.storage.fileshare import ShareServiceClient

from batchai_spec.emulator.endpoint import Endpoint

LOCATION = "westeurope"


class StaticTokenCredential:
    """The one TokenCredential the emulator needs: its fixed bearer token (azure-identity would go online)."""

    def __init__(self, token: str):
        self._token = token

    def get_token(self, *scopes: str, **options) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)


def unique_name(prefix: str) -> str:
    """Lower-case alphanumerics, valid for resource groups, storage accounts (<= 24) and shares alike."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def arm_clients_options(endpoint: Endpoint) -> dict:
    return {"base_url": endpoint.arm_url, "connection_verify": endpoint.ca_cert, "polling_interval": 0.05}


def resource_client_for(endpoint: Endpoint, token: str | None = None, **options) -> ResourceManagementClient:
    credential = StaticTokenCredential(token or endpoint.token)
    return ResourceManagementClient(credential, endpoint.subscription_id, **arm_clients_options(endpoint), **options)


def storage_client_for(endpoint: Endpoint, **options) -> StorageManagementClient:
    credential = StaticTokenCredential(endpoint.token)
    return StorageManagementClient(credential, endpoint.subscription_id, **arm_clients_options(endpoint), **options)


def share_service_for(endpoint: Endpoint, account: str, credential, **options) -> ShareServiceClient:
    """Files clients never retry in tests: the storage SDK backs off 15 s and more between attempts."""
    return ShareServiceClient(
        endpoint.file_endpoint(account), credential=credential, connection_verify=endpoint.ca_cert,
        retry_total=options.pop("retry_total", 0), **options,
    )


@dataclass(frozen=True)
class StorageAccount:
    resource_group: str
    name: str
    keys: tuple[str, str] = field(repr=False)  # secrets stay out of test reports
    endpoint: Endpoint

    @property
    def url(self) -> str:
        return self.endpoint.file_endpoint(self.name)

    def service(self, credential=None, **options) -> ShareServiceClient:
        return share_service_for(self.endpoint, self.name, credential or self.keys[0], **options)




def new_storage_account(endpoint: Endpoint) -> StorageAccount:
    """A storage account in a new resource group, made through ARM with the SDKs, with its keys."""
    group, name = unique_name("rg"), unique_name("sa")
    resource_client_for(endpoint).resource_groups.create_or_update(group, {"location": LOCATION})
    storage = storage_client_for(endpoint)
    storage.storage_accounts.begin_create(
        group, name, {"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": LOCATION}
    ).result()
    keys = storage.storage_accounts.list_keys(group, name).keys
    return StorageAccount(group, name, (keys[0].value, keys[1].value), endpoint)
