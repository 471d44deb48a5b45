"""How a spec marks what it created on Azure, so that destroy and pruning touch only that: resource groups,
storage accounts (and other ARM resources with tags) carry owner tags; shares, directories and files carry
metadata. Each service records the rest its own way (Batch AI: batchai_spec/services/batchai/ownership.py).
"""

from __future__ import annotations

MANAGED_BY_TAG = "managed-by"
MANAGED_BY_VALUE = "batchai-spec"
SPEC_TAG = "batchai-spec.name"
INTERNAL_TAG_PREFIX = "batchai-spec."  # the spec's name, a service's records (batchai-spec.cluster.NAME, ...)

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


def merged_tags(declared: dict[str, str], live: dict[str, str] | None, owned: bool, spec_name: str) -> dict[str, str]:
    """The tags to write: the live ones (others' included), the declared ones over them, and the owner's if ours."""
    tags = dict(live or {})
    tags.update(declared)
    if owned:
        tags.update(owner_tags(spec_name))
    return tags


def canonical_location(value: str | None) -> str | None:
    """ARM locations compare without case or spaces ('East US' is 'eastus')."""
    return value.replace(" ", "").lower() if value else value
