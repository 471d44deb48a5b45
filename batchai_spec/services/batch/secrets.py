"""Secrets of jobs and setup tasks on Azure Batch: Batch returns environment settings in clear to anyone who can read
the job or pool, so secrets go to a JSON file on the launcher's share (`.batchai-spec/secrets/`), which the launcher
reads on the node; the file is replaced with each run and deleted with its job or pool. Its readers are those
holding the storage account's key, as for the job's data."""

from __future__ import annotations

import json

from azure.core.exceptions import ResourceNotFoundError

from batchai_spec.services.azure.connection import AzureConnection
from batchai_spec.services.azure.errors import already_gone


def _file(connection: AzureConnection, location: dict[str, str]):
    return connection.share(location).get_file_client(location["path"])


def write_secrets(connection: AzureConnection, location: dict[str, str] | None, secrets: dict[str, str]) -> None:
    if location is None or not secrets:
        return
    data = json.dumps(secrets, sort_keys=True).encode()
    _file(connection, location).upload_file(data, length=len(data))


def delete_secrets(connection: AzureConnection, location: dict[str, str] | None) -> None:
    if location is None:
        return
    try:
        with already_gone():
            _file(connection, location).delete_file()
    except (KeyError, ResourceNotFoundError):  # the account or its share is gone already
        return
