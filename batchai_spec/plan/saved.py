"""Saved plans (`plan --out`): what was reviewed, applied later only while the live state still matches it.

The file holds no secret: apply re-reads the spec (with the same --var/--var-file), plans again and compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from batchai_spec.errors import UserError
from batchai_spec.plan.model import FORMAT_VERSION, Plan

KIND = "batchai-spec-plan"


@dataclass(frozen=True)
class SavedPlan:
    spec_path: Path
    replace: tuple[str, ...]
    only: tuple[str, ...]
    live_fingerprint: str
    content_fingerprint: str


def save_plan(plan: Plan, path: Path, *, replace: Iterable[str], only: Iterable[str]) -> None:
    document = {
        "kind": KIND,
        # The spec's path in it is absolute: `apply FILE` may run in another directory than `plan --out FILE` did.
        "plan": plan.to_json(),
        "options": {"replace": sorted(replace), "target": sorted(only)},
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def is_saved_plan(path: Path) -> bool:
    try:
        with path.open() as handle:
            head = handle.read(200)
    except OSError:
        return False
    return head.lstrip().startswith("{") and KIND in head


def load_saved_plan(path: Path) -> SavedPlan:
    try:
        document = json.loads(path.read_text())
        plan = document["plan"]
        if document.get("kind") != KIND or plan["format_version"] != FORMAT_VERSION:
            raise ValueError("not a plan of this version")
        return SavedPlan(
            spec_path=Path(plan["spec"]["path"]),
            replace=tuple(document["options"]["replace"]),
            only=tuple(document["options"]["target"]),
            live_fingerprint=plan["live_fingerprint"],
            content_fingerprint=plan["content_fingerprint"],
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path} is not a saved plan of batchai-spec {FORMAT_VERSION}: {error}") from error


def check_still_valid(saved: SavedPlan, fresh: Plan, path: Path) -> None:
    if fresh.live_fingerprint != saved.live_fingerprint or fresh.content_fingerprint() != saved.content_fingerprint:
        raise UserError(
            f"plan is stale: the live state, the spec or its --var values changed since {path} was saved; "
            "run `batchai-spec plan` again"
        )
