"""Spec models -> parts of Batch AI bodies, in the shape of the SDK models' attributes (snake_case, as
`Model.as_dict()` returns them), with server defaults filled in; secrets stay `Sensitive`."""

from __future__ import annotations

from typing import Any, Iterable

from batchai_spec.sensitive import Sensitive
from batchai_spec.services.azure.bodies import plain
from batchai_spec.services.azure.endpoint import azure_file_url

DEFAULT_IMAGE = {"publisher": "Canonical", "offer": "UbuntuServer", "sku": "16.04-LTS", "version": "latest"}
# A file server's sshConfiguration.publicIPsToAllow when none is given: SSH from anywhere.
ALL_IPS = ("*",)


def user_account_settings(user) -> dict[str, Any]:
    """A cluster's or file server's administrator account (UserAccountSettings)."""
    return {
        "admin_user_name": user.admin_user_name,
        "admin_user_ssh_public_key": user.ssh_public_key,
        "admin_user_password": plain(user.admin_user_password),
    }


def workspace_child_id(subscription_id: str, resource_group: str, workspace: str, kind: str, name: str) -> str:
    """The ARM id of a cluster or file server ("clusters", "fileServers") of a workspace."""
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.BatchAI"
        f"/workspaces/{workspace}/{kind}/{name}"
    )


def in_workspace(arm_ids: Iterable[str], ids: dict[str, str], collection: str, kind: str) -> set[str]:
    """The addresses (`kind`.NAME) of those ARM ids that name a `collection` child ("clusters", "fileServers") of
    the workspace `ids` names; ARM ids compare without case, from the resource group on."""
    prefix = f"/resourcegroups/{ids['resource_group']}/providers/microsoft.batchai/workspaces/{ids['workspace']}/{collection}/"
    found = set()
    for arm_id in arm_ids:
        arm_id = arm_id.rstrip("/")
        at = arm_id.lower().find("/resourcegroups/")
        if at >= 0 and arm_id.lower().startswith(prefix.lower(), at):
            found.add(f"{kind}.{arm_id[at + len(prefix):]}")
    return found


def mounted_file_servers(mount_volumes: dict[str, Any] | None, ids: dict[str, str]) -> set[str]:
    """The addresses of the file servers of the workspace `ids` names that a (normalised) MountVolumes body mounts."""
    servers = [(mount.get("file_server") or {}).get("id") or "" for mount in (mount_volumes or {}).get("file_servers", [])]
    return in_workspace(servers, ids, "fileServers", "file_server")


def mount_volumes(volumes, account: str | None, subscription_id: str, ids: dict[str, str]) -> dict[str, Any] | None:
    """A spec's mount list as Batch AI's MountVolumes; a share of the spec is mounted with its account's key, read
    at apply time (`Sensitive` derived from the account), and a file server of the spec by its id in the workspace
    that `ids` (resource_group, workspace) names."""
    if volumes is None:
        return None
    shares = []
    for mount in volumes.azure_file_shares:
        if mount.share is not None:
            url = azure_file_url(account, mount.share)
            key = Sensitive(None, derived_from=f"storage_account_key:{account}")
            name = account
        else:
            name, url, key = mount.account_name, mount.azure_file_url, plain(mount.account_key)
        shares.append(
            {
                "account_name": name,
                "azure_file_url": url,
                "credentials": {"account_key": key},
                "relative_mount_path": mount.relative_mount_path,
                "file_mode": mount.file_mode,
                "directory_mode": mount.directory_mode,
            }
        )
    blobs = [
        {
            "account_name": mount.account_name,
            "container_name": mount.container_name,
            "credentials": {"account_key": plain(mount.account_key)},
            "relative_mount_path": mount.relative_mount_path,
            "mount_options": mount.mount_options,
        }
        for mount in volumes.azure_blob_file_systems
    ]
    servers = [
        {
            "file_server": {
                "id": mount.file_server_id
                or workspace_child_id(subscription_id, ids["resource_group"], ids["workspace"], "fileServers", mount.file_server)
            },
            "relative_mount_path": mount.relative_mount_path,
            "source_directory": mount.source_directory,
            "mount_options": mount.mount_options,
        }
        for mount in volumes.file_servers
    ]
    unmanaged = [
        {"mount_command": mount.mount_command, "relative_mount_path": mount.relative_mount_path}
        for mount in volumes.unmanaged_file_systems
    ]
    return {
        "azure_file_shares": shares,
        "azure_blob_file_systems": blobs,
        "file_servers": servers,
        "unmanaged_file_systems": unmanaged,
    }


def file_server_dependencies(volumes) -> tuple[str, ...]:
    """The addresses of the spec's file servers a mount list mounts: created before, deleted after what mounts them."""
    if volumes is None:
        return ()
    return tuple(f"file_server.{name}" for name in sorted({m.file_server for m in volumes.file_servers if m.file_server}))
