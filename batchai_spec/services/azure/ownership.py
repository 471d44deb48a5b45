"""How a spec marks what it created on Azure, so that destroy and pruning touch only that: resource groups,
storage accounts (and other ARM resources with tags) carry owner tags; shares, directories and files carry
metadata. Each service records the rest its own way (Batch AI: batchai_spec/services/batchai/ownership.py).
"""

from __future__ import annotations

import secrets as random_tokens
import threading
from typing import Callable

from batchai_spec.errors import UserError

MANAGED_BY_TAG = "managed-by"
MANAGED_BY_VALUE = "batchai-spec"
SPEC_TAG = "batchai-spec.name"
INTERNAL_TAG_PREFIX = "batchai-spec."  # the spec's name, a service's records (batchai-spec.cluster.NAME, ...)

# A random salt for the fingerprints of write-only values, kept in the tags of what holds them (a workspace, a Batch
# account), created with it.
SALT_TAG = "batchai-spec.salt"
# Which service a workspace (Batch AI) or Batch account (Azure Batch) was made for.
SERVICE_TAG = "batchai-spec.service"

OWNER_METADATA = "batchaispec_owner"
SHA256_METADATA = "batchaispec_sha256"


def owner_tags(spec_name: str) -> dict[str, str]:
    return {MANAGED_BY_TAG: MANAGED_BY_VALUE, SPEC_TAG: spec_name}


def is_internal_tag(name: str) -> bool:
    return name == MANAGED_BY_TAG or name.startswith(INTERNAL_TAG_PREFIX)


def owned_by(tags: dict[str, str] | None, spec_name: str) -> bool:
    tags = tags or {}
    return tags.get(MANAGED_BY_TAG) == MANAGED_BY_VALUE and tags.get(SPEC_TAG) == spec_name


def user_tags(tags: dict[str, str] | None, declared: dict[str, str] | None) -> dict[str, str]:
    """The live tags the spec declares: tags set by others are left alone, and ours are internal."""
    tags = tags or {}
    keys = set(declared or {})
    return {key: value for key, value in tags.items() if key in keys and not is_internal_tag(key)}


def merged_tags(
    declared: dict[str, str], live: dict[str, str] | None, owned: bool, spec_name: str, service: str | None = None
) -> dict[str, str]:
    """The tags to write: the live ones (others' included), the declared ones over them, and the owner's if ours
    (with the service it was made for, where given)."""
    tags = dict(live or {})
    tags.update(declared)
    if owned:
        tags.update(owner_tags(spec_name))
        if service is not None:
            tags[SERVICE_TAG] = service
    return tags


def check_service(address: str, tags: dict[str, str] | None, spec_name: str, service: str) -> None:
    """What this spec created for one service is not planned for another: a destroy without `--service batch` of a
    spec applied with it would delete the shares its pools mount and leave the pools running. The storage account
    says which (the resource group is no witness: destroy keeps it unless told otherwise)."""
    made_for = (tags or {}).get(SERVICE_TAG)
    if owned_by(tags, spec_name) and made_for not in (None, service):
        raise UserError(
            f"{address} was created by this spec for --service {made_for}, and this command runs for --service "
            f"{service}: pass --service {made_for} (or set `service: {made_for}` in the spec); to move the spec to "
            f"{service}, destroy it with --service {made_for} first"
        )


def canonical_location(value: str | None) -> str | None:
    """ARM locations compare without case or spaces ('East US' is 'eastus')."""
    return value.replace(" ", "").lower() if value else value


class HolderTags:
    """The tags of what holds a spec's resources on a service (a Batch AI workspace, a Batch account) as this command
    read or wrote them: the owner, the salt of the fingerprints, and what else the service keeps there. Changed
    read-modify-write under a lock (resources are created in parallel); `write` is the service's call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tags: dict[tuple[str, str], dict[str, str]] = {}

    @staticmethod
    def _key(ids: dict[str, str]) -> tuple[str, str]:
        return ids["resource_group"], ids["workspace"]

    def write(self, key: tuple[str, str], tags: dict[str, str]) -> None:
        raise NotImplementedError

    def seen(self, ids: dict[str, str], tags: dict[str, str]) -> None:
        """Its tags as read or created."""
        with self._lock:
            self._tags[self._key(ids)] = dict(tags)

    def gone(self, ids: dict[str, str]) -> None:
        with self._lock:
            self._tags.pop(self._key(ids), None)

    def tag(self, ids: dict[str, str], name: str) -> str | None:
        with self._lock:
            return self._tags.get(self._key(ids), {}).get(name)

    def stored_salt(self, ids: dict[str, str]) -> str | None:
        return self.tag(ids, SALT_TAG)

    def salt(self, ids: dict[str, str]) -> str:
        """Its fingerprint salt; one adopted (created without this tool) gets one now."""
        self.change(ids, lambda tags: tags.setdefault(SALT_TAG, random_tokens.token_hex(8)))
        return self.stored_salt(ids)

    def change(self, ids: dict[str, str], change: Callable[[dict[str, str]], object]) -> None:
        """Read-modify-write of its tags, written only when they changed."""
        key = self._key(ids)
        with self._lock:
            tags = dict(self._tags.get(key, {}))
            change(tags)
            if tags != self._tags.get(key):
                self.write(key, tags)
                self._tags[key] = tags
