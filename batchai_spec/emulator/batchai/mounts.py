"""Mounting `mountVolumes` on a node: each mount becomes a symlink under the node's mount root.

- Azure File shares link to the share's directory in the emulator's Files store, so whatever a job writes there is
  in the share (and downloadable) at once. `azureFileUrl` may be Azure's `https://ACCOUNT.file.core.windows.net/SHARE`
  or the emulator's own `https://127.0.0.1:PORT/ACCOUNT/SHARE`. As on Azure, a missing account or share, or an
  account key that is not one of the account's keys, fails the mount.
- Blob containers (blobfuse) and file servers (NFS) link to local directories under the emulator's state, since the
  emulator has no Blob service and no file server VMs: their contents are visible to jobs, not to storage clients.
- Unmanaged file systems (an arbitrary `mount` command, run as root on Azure) cannot be mounted here.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from batchai_spec.emulator.arm.storage_accounts import account_keys
from batchai_spec.emulator.batchai import ids
from batchai_spec.emulator.files.store import share_directory
from batchai_spec.emulator.state import State

_AZURE_FILE_HOST = re.compile(r"^(?P<account>[a-z0-9]+)\.file\.core\.windows\.net$", re.IGNORECASE)
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost"}


class MountError(Exception):
    """A mount that cannot be made; the message says which and why (never the key)."""


@dataclass(frozen=True)
class ShareLocation:
    """Where a host directory lives in an Azure File share (to mint download URLs for files inside it)."""

    account: str
    share: str
    directory: Path  # the share's root directory on disk (resolved)


@dataclass(frozen=True)
class Mounted:
    relative_mount_path: str
    target: Path
    share: ShareLocation | None


def parse_azure_file_url(url: str) -> tuple[str, str]:
    """(account, share) from either accepted form of `azureFileUrl`."""
    parts = urlsplit(url)
    segments = [segment for segment in parts.path.split("/") if segment]
    host = parts.hostname or ""
    azure = _AZURE_FILE_HOST.match(host)
    if azure and len(segments) == 1:
        return azure.group("account").lower(), segments[0]
    if host in _LOOPBACK_HOSTS and len(segments) == 2:
        return segments[0].lower(), segments[1]
    raise MountError(
        f"azureFileUrl {url!r} is neither https://ACCOUNT.file.core.windows.net/SHARE nor the emulator's"
        " https://127.0.0.1:PORT/ACCOUNT/SHARE"
    )


def check_account_key(state: State, account: str, credentials: dict[str, Any], what: str) -> None:
    keys = account_keys(state, account)
    if keys is None:
        raise MountError(f"{what}: the storage account {account} does not exist")
    if "accountKeySecretReference" in credentials:
        raise MountError(f"{what}: Key Vault secret references cannot be resolved by the emulator; give accountKey")
    if credentials.get("accountKey") not in keys:
        raise MountError(f"{what}: the account key is not a key of the storage account {account} (access denied)")


def resolve(state: State, volumes: dict[str, Any], local_root: Path) -> list[Mounted]:
    """The directory behind every mount of a `mountVolumes` body; raises MountError for the first bad one."""
    mounted = []
    for share in volumes.get("azureFileShares") or []:
        path = share["relativeMountPath"]
        account, share_name = parse_azure_file_url(share["azureFileUrl"])
        what = f"Azure File share {share['azureFileUrl']} at {path}"
        if share["accountName"].lower() != account:
            raise MountError(f"{what}: accountName {share['accountName']} does not match the URL's account")
        check_account_key(state, account, share["credentials"], what)
        try:
            directory = share_directory(state, account, share_name).resolve()
        except LookupError:
            raise MountError(f"{what}: the share {share_name} does not exist in the storage account {account}") from None
        mounted.append(Mounted(path, directory, ShareLocation(account, share_name, directory)))
    for container in volumes.get("azureBlobFileSystems") or []:
        path = container["relativeMountPath"]
        account = container["accountName"].lower()
        check_account_key(state, account, container["credentials"], f"Blob container {container['containerName']}")
        mounted.append(Mounted(path, _local(local_root / "blob" / account / container["containerName"]), None))
    for reference in volumes.get("fileServers") or []:
        path = reference["relativeMountPath"]
        server_id = reference["fileServer"]["id"]
        exists = state.connection().execute(
            "SELECT 1 FROM batchai_resources WHERE key = ? AND kind = 'fileserver'", (ids.key(server_id),)
        ).fetchone()
        if not exists:
            raise MountError(f"file server {server_id} at {path}: no such file server")
        source = (reference.get("sourceDirectory") or "").strip("/")
        mounted.append(Mounted(path, _local(file_server_data(local_root, server_id) / source), None))
    for system in volumes.get("unmanagedFileSystems") or []:
        raise MountError(
            f"unmanaged file system at {system['relativeMountPath']}: the emulator cannot run mount commands"
        )
    return mounted


def file_server_data(local_root: Path, server_id: str) -> Path:
    return local_root / "fileservers" / hashlib.sha256(ids.key(server_id).encode()).hexdigest()[:16]


def _local(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory.resolve()


def link(mount_root: Path, mounts: list[Mounted]) -> None:
    """Make `mount_root/<relativeMountPath>` point at each mount's directory (replacing stale links)."""
    mount_root.mkdir(parents=True, exist_ok=True)
    for mount in mounts:
        entry = mount_root / mount.relative_mount_path.strip("/")
        if entry.is_symlink():
            entry.unlink()
        os.symlink(mount.target, entry, target_is_directory=True)


def share_of(path: Path, mounts: list[Mounted]) -> tuple[ShareLocation, str] | None:
    """The share holding `path` (resolved) and the path inside it, if `path` lies in a mounted Azure File share."""
    for mount in mounts:
        if mount.share is not None and path.is_relative_to(mount.share.directory):
            return mount.share, path.relative_to(mount.share.directory).as_posix()
    return None
