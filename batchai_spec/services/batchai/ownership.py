"""Batch AI's ownership: only workspaces (besides resource groups and accounts) carry tags in this API, so the
workspace's tags record the clusters, experiments and file servers a spec created, each with the fingerprints of its
write-only values, and the salt of those fingerprints; jobs carry environment variables instead (what the spec
recorded with a run: owner, fingerprints, the digest of the inputs it read)."""

from __future__ import annotations

from azure.mgmt.batchai import models as batchai_models

from batchai_spec.graph import Resource
from batchai_spec.kinds import Ownership
from batchai_spec.observed import Stored
from batchai_spec.sensitive import fingerprints
from batchai_spec.services.azure.clients import Clients
from batchai_spec.services.azure.ownership import INTERNAL_TAG_PREFIX, SPEC_TAG, HolderTags

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


class WorkspaceRecords(HolderTags, Ownership):
    """Batch AI's Ownership for what a workspace holds (clusters, experiments, file servers): the records of the
    spec's workspaces, read with each workspace, updated as children are created and deleted; the workspace's own
    tags besides."""

    def __init__(self, clients: Clients, spec_name: str):
        super().__init__()
        self.clients = clients
        self.spec_name = spec_name

    def write(self, key: tuple[str, str], tags: dict[str, str]) -> None:
        self.clients.batchai.workspaces.update(*key, batchai_models.WorkspaceUpdateParameters(tags=tags))

    def owner(self, ids: dict[str, str]) -> str | None:
        return self.tag(ids, SPEC_TAG)

    def read(self, kind: str, ids: dict[str, str]) -> tuple[bool, Stored]:
        """(owned by this spec, what it stored) of a child of the workspace `ids` names."""
        owned, fingerprint = read_child_record(self.tag(ids, child_tag(kind, ids[kind])), self.spec_name)
        return owned, Stored(fingerprint, self.stored_salt(ids))

    def fingerprints(self, resource: Resource) -> str:
        """The fingerprints of a resource's write-only values, under its workspace's salt, to record with it."""
        return fingerprints(resource.desired, self.salt(resource.ids))

    def record(self, kind: str, ids: dict[str, str], fingerprints: str = "") -> None:
        """Before a child is created: a run interrupted after the create still knows the child is its own."""
        self.change(ids, lambda tags: tags.update({child_tag(kind, ids[kind]): child_record(self.spec_name, fingerprints)}))

    def forget(self, kind: str, ids: dict[str, str]) -> None:
        self.change(ids, lambda tags: tags.pop(child_tag(kind, ids[kind]), None))
