"""How a spec marks what it created, so that destroy and pruning touch only that.

Only resource groups, storage accounts and workspaces have tags in this API; shares, directories and files carry
metadata; clusters and experiments are recorded in their workspace's tags; jobs carry environment variables.
"""

from __future__ import annotations

MANAGED_BY_TAG = "managed-by"
MANAGED_BY_VALUE = "batchai-spec"
SPEC_TAG = "batchai-spec.name"
# A random salt for the fingerprints of write-only values, created with the workspace.
SALT_TAG = "batchai-spec.salt"
CHILD_TAG_PREFIX = "batchai-spec."  # + "cluster.NAME" / "experiment.NAME"

OWNER_METADATA = "batchaispec_owner"
SHA256_METADATA = "batchaispec_sha256"

JOB_OWNER_ENV = "BATCHAI_SPEC_OWNER"
JOB_FINGERPRINT_ENV = "BATCHAI_SPEC_FINGERPRINT"
JOB_INPUTS_ENV = "BATCHAI_SPEC_INPUTS"
JOB_INTERNAL_ENV = (JOB_OWNER_ENV, JOB_FINGERPRINT_ENV, JOB_INPUTS_ENV)


def owner_tags(spec_name: str) -> dict[str, str]:
    return {MANAGED_BY_TAG: MANAGED_BY_VALUE, SPEC_TAG: spec_name}


def is_internal_tag(name: str) -> bool:
    return name == MANAGED_BY_TAG or name.startswith(CHILD_TAG_PREFIX)


def owned_by(tags: dict[str, str] | None, spec_name: str) -> bool:
    tags = tags or {}
    return tags.get(MANAGED_BY_TAG) == MANAGED_BY_VALUE and tags.get(SPEC_TAG) == spec_name


def child_tag(kind: str, name: str) -> str:
    return f"{CHILD_TAG_PREFIX}{kind}.{name}"


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
