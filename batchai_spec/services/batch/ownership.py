"""Azure Batch's ownership: pools and jobs carry metadata naming the spec that created them and the fingerprints of
their write-only values (no ledger is needed: unlike Batch AI's clusters, they hold metadata); the Batch account's
tags hold the owner of the account and the salt of those fingerprints."""

from __future__ import annotations

from typing import Any, Iterable

from batchai_spec.observed import Stored
from batchai_spec.services.azure.clients import Clients
from batchai_spec.services.azure.ownership import INTERNAL_TAG_PREFIX, OWNER_METADATA, HolderTags

# An experiment of the spec, in its Batch account's tags (`batchai-spec.experiment.NAME`).
EXPERIMENT_TAG = f"{INTERNAL_TAG_PREFIX}experiment."
FINGERPRINTS_METADATA = "batchaispec_fingerprints"
SERVICE_METADATA = "batchaispec_service"  # the service it was made by (pools and jobs name it, as accounts do)
INPUTS_METADATA = "batchaispec_inputs"  # a job: the digest of the input files its run reads
EXPERIMENT_METADATA = "batchaispec_experiment"  # a job: the spec's names of it (its Batch id is shortened)
JOB_METADATA = "batchaispec_job"
RUN_METADATA = "batchaispec_run"  # a job: the uuid of its run's output directories
BODY_METADATA = "batchaispec_body"  # a job: what it runs, as the spec asked (JSON, no secrets)
SECRETS_METADATA = "batchaispec_secrets"  # a job: where its secrets file lies on its share (JSON), to delete it


def metadata_of(items: Iterable[Any] | None) -> dict[str, str]:
    """Batch's metadata list (SDK models or wire dicts) as a dict."""
    return {item["name"]: item["value"] for item in items or ()}


def as_metadata(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in sorted(values.items())]


def owner_metadata(spec_name: str, fingerprints: str) -> dict[str, str]:
    return {OWNER_METADATA: spec_name, SERVICE_METADATA: "batch", FINGERPRINTS_METADATA: fingerprints}


def read_metadata(metadata: dict[str, str], spec_name: str, salt: str | None) -> tuple[bool, Stored]:
    """(owned by this spec, what it stored) from a pool's or job's metadata."""
    owned = metadata.get(OWNER_METADATA) == spec_name
    if not owned:
        return False, Stored()
    return True, Stored(metadata.get(FINGERPRINTS_METADATA), salt, metadata.get(INPUTS_METADATA))


class AccountTags(HolderTags):
    """The tags of the spec's Batch accounts: the owner and the salt of its pools' and jobs' fingerprints."""

    def __init__(self, clients: Clients):
        super().__init__()
        self.clients = clients

    def write(self, key: tuple[str, str], tags: dict[str, str]) -> None:
        self.clients.batch.batch_account.update(*key, {"tags": tags})

    def experiments(self, ids: dict[str, str]) -> list[str]:
        """The experiments this spec made in the account (Batch has no experiment object)."""
        with self._lock:
            tags = self._tags.get(self._key(ids), {})
        return [name[len(EXPERIMENT_TAG):] for name in tags if name.startswith(EXPERIMENT_TAG)]

    def record_experiment(self, ids: dict[str, str]) -> None:
        self.change(ids, lambda tags: tags.update({EXPERIMENT_TAG + ids["experiment"]: ""}))

    def forget_experiment(self, ids: dict[str, str]) -> None:
        self.change(ids, lambda tags: tags.pop(EXPERIMENT_TAG + ids["experiment"], None))

    def update(self, ids: dict[str, str], declared: dict[str, str]) -> None:
        """The declared tags over the live ones (the salt and others' tags kept)."""
        self.change(ids, lambda tags: tags.update(declared))
