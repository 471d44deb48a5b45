"""Saved plans (`plan --out`): what was reviewed, applied later only while the live state still matches it.

The file holds no secret: apply re-reads the spec with the template variables saved in it (a variable whose value
feeds a secret is withheld, and must be given again), plans again and compares. A plan is single-use: applying it
changes the live state it was computed from (a re-run job is another run), so a second apply finds it stale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from batchai_spec.errors import UserError
from batchai_spec.plan.model import FORMAT_VERSION, SERVICE_TITLES, Plan

KIND = "batchai-spec-plan"


@dataclass(frozen=True)
class SavedPlan:
    spec_path: Path
    replace: tuple[str, ...]
    only: tuple[str, ...]
    live_fingerprint: str
    content_fingerprint: str
    variables: Mapping[str, Any]
    # Variables whose values were not saved because they feed a secret: `apply FILE --var NAME=...` gives them.
    withheld: tuple[str, ...]
    service: str = "batchai"  # the service it was planned for (plans saved before services had none: Batch AI)


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    else:
        yield str(value)


def feeds_a_secret(value: Any, secrets: Iterable[str]) -> bool:
    """Whether any part of a variable (a var file's value may be a mapping or a list) is, or is inside, a secret."""
    # A short value (an epoch count) found inside a password is chance, not the password.
    return any(text == secret or (len(text) >= 4 and text in secret) for text in _leaves(value) for secret in secrets)


def save_plan(
    plan: Plan,
    path: Path,
    *,
    replace: Iterable[str],
    only: Iterable[str],
    variables: Mapping[str, Any] | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """`secrets`: the secret values of the spec, so that no variable holding one is written."""
    secrets = [secret for secret in secrets if secret]
    variables = dict(variables or {})
    withheld = sorted(name for name, value in variables.items() if feeds_a_secret(value, secrets))
    document = {
        "kind": KIND,
        # The spec's path in it is absolute: `apply FILE` may run in another directory than `plan --out FILE` did.
        "plan": plan.to_json(),
        "options": {"replace": sorted(replace), "target": sorted(only)},
        "variables": {name: value for name, value in variables.items() if name not in withheld},
        "withheld_variables": withheld,
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
            variables=dict(document.get("variables", {})),
            withheld=tuple(document.get("withheld_variables", ())),
            service=str(plan.get("service", "batchai")),
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path} is not a saved plan of batchai-spec {FORMAT_VERSION}: {error}") from error


def check_withheld_given(saved: SavedPlan, given: Iterable[str], path: Path) -> None:
    """`given`: the names of the variables the command line gives (--var and the keys of --var-file files)."""
    missing = [name for name in saved.withheld if name not in set(given)]
    if missing:
        flags = " ".join(f"--var {name}=..." for name in missing)
        raise UserError(
            f"{path} was saved without the values that feed secrets: apply it with {flags} (or a --var-file with them)"
        )


def check_service(saved: SavedPlan, service: str | None, path: Path) -> None:
    """`service`: --service (or BATCHAI_SPEC_SERVICE), None when not given. A plan is applied on the service it was
    planned for, and on no other."""
    if service is not None and service != saved.service:
        raise UserError(
            f"{path} was planned for {SERVICE_TITLES.get(saved.service, saved.service)} (--service {saved.service}); it cannot "
            f"be applied with --service {service}: apply it without --service, or plan again with --service {service}"
        )


def check_still_valid(saved: SavedPlan, fresh: Plan, path: Path) -> None:
    if fresh.live_fingerprint != saved.live_fingerprint or fresh.content_fingerprint() != saved.content_fingerprint:
        raise UserError(
            f"plan is stale: it was applied already, or the live state, the spec or its variables changed since "
            f"{path} was saved; run `batchai-spec plan` again"
        )
