"""What a live read found for one address, normalised to the shape of the desired bodies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from batchai_spec.statuses import ACTIVE_RUN_STATES


@dataclass(frozen=True)
class Stored:
    """What this spec recorded with a resource it created (its ownership record), for the diff: the fingerprints of
    its write-only values with the salt they were made with, and the digest of the input files a run read."""

    fingerprint: str | None = None
    salt: str | None = None
    inputs_digest: str | None = None


@dataclass(frozen=True)
class Run:
    """The run of a run-to-completion resource (a job)."""

    state: str | None
    exit_code: int | None = None
    run_id: str | None = None  # a resource created again under the same name is another run
    started: float | None = None  # epoch seconds

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_RUN_STATES

    @property
    def in_flight(self) -> bool:
        """Queued or running (terminating is on its way to an end already)."""
        return self.state in ("queued", "running")


@dataclass
class Observed:
    address: str
    kind: str
    ids: dict[str, str]
    # Normalised body, or None when the resource does not exist.
    state: dict[str, Any] | None
    # True when this spec created it (ownership tags / metadata / environment).
    owned: bool = False
    stored: Stored = field(default_factory=Stored)
    # The spec recorded as the owner, when it is another one (a workspace belongs to one spec).
    other_owner: str | None = None
    run: Run | None = None
    # Moving facts shown by `status` (allocation state, node counts): never compared.
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.state is not None
