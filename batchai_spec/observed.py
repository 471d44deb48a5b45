"""What a live read found for one address, normalised to the shape of the desired bodies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Observed:
    address: str
    kind: str
    ids: dict[str, str]
    # Normalised body, or None when the resource does not exist.
    state: dict[str, Any] | None
    # True when this spec created it (ownership tags / metadata / environment).
    owned: bool = False
    # Facts that are not compared field by field: stored fingerprints, execution state, node counts...
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.state is not None
