"""The plan: what apply (or destroy) will do, address by address. It never holds a secret value."""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT_VERSION = "1.0"
# The services' names in words (batchai_spec.services.TITLES, which this pure module does not import).
SERVICE_TITLES = {"batchai": "Batch AI", "batch": "Azure Batch"}


class Action(str, enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NO_OP = "no-op"


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any
    forces_replacement: bool = False
    sensitive: bool = False


@dataclass
class ResourceChange:
    address: str
    kind: str
    action: Action
    reasons: list[str] = field(default_factory=list)
    replace_paths: list[str] = field(default_factory=list)
    # Masked bodies (secrets shown as "(sensitive)"); None where the resource does not exist before / after.
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    fields: list[FieldChange] = field(default_factory=list)
    # What a person must know before approving (a running job stopped, outputs deleted). Facts of the moment, not
    # of what the plan does: left out of the content fingerprint.
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"] = self.action.value
        return data


@dataclass
class Plan:
    spec_name: str
    spec_path: str
    endpoint: str  # where it applies, in words ("emulator serving DIR", "Azure subscription ID")
    operation: str  # "apply" or "destroy"
    changes: list[ResourceChange]
    # Fingerprint of the live state the plan was computed from: a saved plan is applied only while it still holds.
    live_fingerprint: str = ""
    service: str = "batchai"  # which service realises it ("batchai", "batch"); saved plans apply on that one only
    # What the service realises differently than the spec reads, located: "file:line:column: key.path: message".
    warnings: list[str] = field(default_factory=list)

    @property
    def service_title(self) -> str:
        """The service in words: "Batch AI", "Azure Batch"."""
        return SERVICE_TITLES.get(self.service, self.service)

    @property
    def where(self) -> str:
        """"emulator serving DIR (Azure Batch)": the endpoint and the service."""
        return f"{self.endpoint} ({self.service_title})"

    @property
    def has_changes(self) -> bool:
        return any(change.action is not Action.NO_OP for change in self.changes)

    def count(self, action: Action) -> int:
        return sum(1 for change in self.changes if change.action is action)

    def notes(self) -> list[str]:
        return [note for change in self.changes for note in change.notes]

    def summary(self) -> str:
        if not self.has_changes:
            return "No changes."
        return (
            f"Plan: {self.count(Action.CREATE)} to add, {self.count(Action.UPDATE)} to change, "
            f"{self.count(Action.REPLACE)} to replace, {self.count(Action.DELETE)} to destroy."
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "spec": {"name": self.spec_name, "path": self.spec_path},
            "target": self.endpoint,  # the format's name for it since 1.0
            "service": self.service,  # new keys of 1.0: readers of 1.0 without them read "batchai" and []
            "warnings": list(self.warnings),
            "operation": self.operation,
            "has_changes": self.has_changes,
            "summary": {
                "add": self.count(Action.CREATE),
                "change": self.count(Action.UPDATE),
                "replace": self.count(Action.REPLACE),
                "destroy": self.count(Action.DELETE),
            },
            "changes": [change.to_json() for change in self.changes],
            "live_fingerprint": self.live_fingerprint,
            "content_fingerprint": self.content_fingerprint(),
        }

    def content_fingerprint(self) -> str:
        """What the plan does, independent of when it was computed: equal plans have equal fingerprints."""
        changes = [{**change.to_json(), "notes": None} for change in self.changes]
        encoded = json.dumps(changes, sort_keys=True, default=str).encode()
        return hashlib.sha256(encoded).hexdigest()[:32]
