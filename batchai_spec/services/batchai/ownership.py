"""Batch AI's ownership: only workspaces (besides resource groups and accounts) carry tags in this API, so the
workspace's tags record the clusters, experiments and file servers a spec created, each with the fingerprints of its
write-only values, and the salt of those fingerprints; jobs carry environment variables instead (what the spec
recorded with a run: owner, fingerprints, the digest of the inputs it read)."""

from __future__ import annotations

import secrets as random_tokens
import threading
from typing import Callable

from azure.mgmt.batchai import models as batchai_models

from batchai_spec.graph import Resource
from batchai_spec.kinds import Ownership
from batchai_spec.observed import Stored
from batchai_spec.sensitive import fingerprints
from batchai_spec.services.azure.clients import Clients
from batchai_spec.services.azure.ownership import INTERNAL_TAG_PREFIX, SPEC_TAG

# A random salt for the fingerprints of write-only values, created with the workspace.
SALT_TAG = "batchai-spec.salt"

JOB_OWNER_ENV = "BATCHAI_SPEC_OWNER"
JOB_FINGERPRINT_ENV = "BATCHAI_SPEC_FINGERPRINT"
JOB_INPUTS_ENV = "BATCHAI_SPEC_INPUTS"
JOB_INTERNAL_ENV = (JOB_OWNER_ENV, JOB_FINGERPRINT_ENV, JOB_INPUTS_ENV)


def child_tag(kind: str, name: str) -> str:
    return f"{INTERNAL_TAG_PREFIX}{kind}.{name}"


def child_record(spec_name: str, fingerprints: str = "") -> str:
    """The value of a child's tag: which spec created it (a workspace may hold several specs' children), and the
    fingerprints of its write-only values."""
    return f"{spec_name}:{fingerprints}"


def read_child_record(value: str | None, spec_name: str) -> tuple[bool, str | None]:
    """(owned by this spec, stored fingerprints) from a child's tag value."""
    if value is None:
        return False, None
    owner, _, stored = value.partition(":")
    return owner == spec_name, stored if owner == spec_name else None


def job_environment(spec_name: str, fingerprints: str, inputs_digest: str) -> list[dict[str, str]]:
    """The environment variables a job carries its record in."""
    return [
        {"name": JOB_OWNER_ENV, "value": spec_name},
        {"name": JOB_FINGERPRINT_ENV, "value": fingerprints},
        {"name": JOB_INPUTS_ENV, "value": inputs_digest},
    ]


def read_job_environment(internal: dict[str, str], spec_name: str, salt: str | None) -> tuple[bool, Stored]:
    """(owned by this spec, what it stored) from the internal environment variables of a job."""
    stored = Stored(internal.get(JOB_FINGERPRINT_ENV), salt, internal.get(JOB_INPUTS_ENV))
    return internal.get(JOB_OWNER_ENV) == spec_name, stored


class WorkspaceRecords(Ownership):
    """Batch AI's Ownership for what a workspace holds (clusters, experiments, file servers): the records of the
    spec's workspaces, read with each workspace, updated (read-modify-write, serialised: clusters and experiments
    are created in parallel) as children are created and deleted; the workspace's own tags besides."""

    def __init__(self, clients: Clients, spec_name: str):
        self.clients = clients
        self.spec_name = spec_name
        self._lock = threading.Lock()
        self._tags: dict[tuple[str, str], dict[str, str]] = {}

    @staticmethod
    def _key(ids: dict[str, str]) -> tuple[str, str]:
        return ids["resource_group"], ids["workspace"]

    def seen(self, ids: dict[str, str], tags: dict[str, str]) -> None:
        """A workspace's tags as read or created."""
        with self._lock:
            self._tags[self._key(ids)] = dict(tags)

    def gone(self, ids: dict[str, str]) -> None:
        with self._lock:
            self._tags.pop(self._key(ids), None)

    def owner(self, ids: dict[str, str]) -> str | None:
        with self._lock:
            return self._tags.get(self._key(ids), {}).get(SPEC_TAG)

    def stored_salt(self, ids: dict[str, str]) -> str | None:
        with self._lock:
            return self._tags.get(self._key(ids), {}).get(SALT_TAG)

    def read(self, kind: str, ids: dict[str, str]) -> tuple[bool, Stored]:
        """(owned by this spec, what it stored) of a child of the workspace `ids` names."""
        with self._lock:
            value = self._tags.get(self._key(ids), {}).get(child_tag(kind, ids[kind]))
        owned, fingerprint = read_child_record(value, self.spec_name)
        return owned, Stored(fingerprint, self.stored_salt(ids))

    def salt(self, ids: dict[str, str]) -> str:
        """The workspace's fingerprint salt; an adopted workspace (created without this tool) gets one now."""
        self.change(ids, lambda tags: tags.setdefault(SALT_TAG, random_tokens.token_hex(8)))
        return self.stored_salt(ids)

    def fingerprints(self, resource: Resource) -> str:
        """The fingerprints of a resource's write-only values, under its workspace's salt, to record with it."""
        return fingerprints(resource.desired, self.salt(resource.ids))

    def record(self, kind: str, ids: dict[str, str], fingerprints: str = "") -> None:
        """Before a child is created: a run interrupted after the create still knows the child is its own."""
        self.change(ids, lambda tags: tags.update({child_tag(kind, ids[kind]): child_record(self.spec_name, fingerprints)}))

    def forget(self, kind: str, ids: dict[str, str]) -> None:
        self.change(ids, lambda tags: tags.pop(child_tag(kind, ids[kind]), None))

    def change(self, ids: dict[str, str], change: Callable[[dict[str, str]], object]) -> None:
        """Read-modify-write of the workspace's tags, written only when they changed."""
        key = self._key(ids)
        with self._lock:
            tags = dict(self._tags[key])
            change(tags)
            if tags != self._tags[key]:
                self.clients.batchai.workspaces.update(*key, batchai_models.WorkspaceUpdateParameters(tags=tags))
                self._tags[key] = tags
