"""desired x observed -> Plan. Pure: no I/O, no SDK."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Iterable

from batchai_spec.durations import elapsed
from batchai_spec.errors import UserError
from batchai_spec.graph import Graph, Resource, prune
from batchai_spec.kinds import Kind, Policy, Registry
from batchai_spec.observed import Observed
from batchai_spec.plan.model import Action, FieldChange, Plan, ResourceChange
from batchai_spec.sensitive import MASK, changed_sensitive_paths, masked, without_write_only


def field_changes(kind: Kind, before: Any, after: Any, path: str = "") -> list[FieldChange]:
    """Leaf-level differences between two normalised bodies, with nested paths like a.b[0].c."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[FieldChange] = []
        for key in sorted(set(before) | set(after)):
            sub = f"{path}.{key}" if path else key
            changes += field_changes(kind, before.get(key), after.get(key), sub)
        return changes
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        changes = []
        for index, (old, new) in enumerate(zip(before, after)):
            changes += field_changes(kind, old, new, f"{path}[{index}]")
        return changes
    if before == after:
        return []
    return [FieldChange(path, before, after, kind.policy(path) is Policy.REPLACE)]


def _sensitive_changes(kind: Kind, resource: Resource, observed: Observed) -> list[FieldChange]:
    # Nothing is known of the write-only values of a resource this spec did not create.
    salt = observed.stored.salt
    if not kind.stores_fingerprints or salt is None or not observed.owned:
        return []
    return [
        FieldChange(path, MASK, MASK, kind.policy(path) is Policy.REPLACE, sensitive=True)
        for path in changed_sensitive_paths(resource.desired, salt, observed.stored.fingerprint)
    ]


def _change_for(kind: Kind, resource: Resource, observed: Observed) -> ResourceChange:
    after = masked(resource.desired)
    if not observed.exists:
        return ResourceChange(resource.address, resource.kind, Action.CREATE, ["not found"], after=after)
    before = observed.state
    fields = field_changes(kind, before, prune(without_write_only(resource.desired)))
    fields += _sensitive_changes(kind, resource, observed)
    change = ResourceChange(resource.address, resource.kind, Action.NO_OP, before=before, after=after, fields=fields)
    replace_paths = [f.path for f in fields if f.forces_replacement]
    if replace_paths:
        change.action = Action.REPLACE
        change.replace_paths = replace_paths
        change.reasons.append(f"{', '.join(replace_paths)} cannot be changed in place")
    elif fields:
        change.action = Action.UPDATE
        change.reasons.append(f"{', '.join(f.path for f in fields)} changed")
    return change


def _order(changes: Iterable[ResourceChange], registry: Registry) -> list[ResourceChange]:
    order = registry.order
    return sorted(changes, key=lambda c: (order[c.kind], c.address))


def _live_fingerprint(observed: dict[str, Observed], registry: Registry) -> str:
    """Stable facts of the live state (not the moving ones: job execution, node counts). The salt of what stores
    fingerprints is where it is kept (the workspace's, counted there; the fingerprints change with it anyway), so
    plans saved before kinds had adapters still hold."""
    stable = {
        address: [
            o.state, o.owned, o.stored.fingerprint, o.stored.inputs_digest,
            None if registry[o.kind].stores_fingerprints else o.stored.salt,
            o.run.run_id if o.run else None,  # a saved plan that re-ran a job is stale once it has: plans are single-use
        ]
        for address, o in sorted(observed.items())
    }
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _note_active_runs(changes: Iterable[ResourceChange], observed: dict[str, Observed], now: float) -> None:
    """A replaced or deleted run that is still queued or running is stopped: the plan says so plainly."""
    for change in changes:
        live = observed.get(change.address)
        if change.action not in (Action.REPLACE, Action.DELETE) or live is None or live.run is None:
            continue
        if not live.run.active:
            continue
        state, started = live.run.state, live.run.started
        since = f" ({elapsed(now - started)})" if started and state != "queued" else ""
        verb = "replacing" if change.action is Action.REPLACE else "deleting"
        change.notes.append(f"{change.address} is {state}{since}: {verb} it stops the run")


def _check_addresses(graph: Graph, observed: dict[str, Observed], addresses: Iterable[str], flag: str) -> None:
    # Besides the declared addresses, only those this spec owns and plans to delete: never someone else's.
    owned = {address for address, live in observed.items() if live.exists and live.owned}
    unknown = sorted(a for a in addresses if a not in graph.resources and a not in owned)
    if unknown:
        known = ", ".join(sorted(graph.resources)[:8])
        raise UserError(f"{flag} {unknown[0]}: no such address in this spec (addresses look like: {known}, ...)")


def _with_dependencies(graph: Graph, addresses: Iterable[str]) -> set[str]:
    selected: set[str] = set()
    pending = list(addresses)
    while pending:
        address = pending.pop()
        if address in selected:
            continue
        selected.add(address)
        if address in graph.resources:
            pending.extend(graph.resources[address].depends_on)
    return selected


def _cascade(
    graph: Graph, observed: dict[str, Observed], changes: dict[str, ResourceChange], registry: Registry
) -> None:
    """A replaced dependency takes what depends on it along, but for a kind's loose dependencies: a replaced
    cluster takes only the jobs still active on it, and changed input files are the inputs digest's to judge."""
    for resource in graph:  # parents come first, so a cascade runs down the whole tree in one pass
        change = changes.get(resource.address)
        if change is None or change.action not in (Action.NO_OP, Action.UPDATE):
            continue
        loose = registry[resource.kind].loose_dependencies
        for dependency in resource.depends_on:
            parent = changes.get(dependency)
            if parent is None or parent.action is not Action.REPLACE:
                continue
            relation = loose.get(parent.kind)
            if relation == "inputs":
                continue
            if relation == "while-active":
                run = observed[resource.address].run
                if run is None or not run.active:
                    continue
                reason = f"{dependency} is replaced while this {resource.kind} is {run.state}"
            else:
                reason = f"{dependency} is replaced"
            change.action = Action.REPLACE
            change.reasons.append(reason)
            break


def build_plan(
    graph: Graph,
    observed: dict[str, Observed],
    *,
    spec_path: str,
    endpoint: str,
    replace: Iterable[str] = (),
    only: Iterable[str] = (),
    now: float | None = None,
    service: str = "batchai",
    warnings: Iterable[str] = (),
) -> Plan:
    replace, only, registry = set(replace), set(only), graph.registry
    _check_addresses(graph, observed, replace, "--replace")
    _check_addresses(graph, observed, only, "--target")
    _check_one_spec_only(graph, observed, registry)

    changes: dict[str, ResourceChange] = {}
    for resource in graph:
        live = observed[resource.address]
        if not resource.managed:
            if not live.exists:
                raise UserError(
                    f"{graph.declared_at(resource.address)}: {resource.address} is declared as existing but was not "
                    "found; create it first or set existing: false"
                )
            continue
        change = _change_for(registry[resource.kind], resource, live)
        if "input_files" in resource.extra and live.exists:
            _changed_inputs(resource, live, change, changes)
        if resource.address in replace and change.action is not Action.CREATE:
            change.action = Action.REPLACE
            change.reasons.append("requested with --replace")
        changes[resource.address] = change
    _cascade(graph, observed, changes, registry)
    _refuse_replacing_what_others_created(graph, observed, changes)

    for address, live in observed.items():
        if address not in graph.resources and live.exists and live.owned:
            changes[address] = ResourceChange(
                address, live.kind, Action.DELETE, ["owned by this spec but no longer declared"], before=live.state
            )
    if only:
        selected = _with_dependencies(graph, only)
        changes = {address: change for address, change in changes.items() if address in selected}
    _note_active_runs(changes.values(), observed, time.time() if now is None else now)
    return Plan(
        graph.spec_name, spec_path, endpoint, "apply", _order(changes.values(), registry), _live_fingerprint(observed, registry),
        service=service, warnings=list(warnings),
    )


def _refuse_replacing_what_others_created(
    graph: Graph, observed: dict[str, Observed], changes: dict[str, ResourceChange]
) -> None:
    """A declared resource that exists but was not created by this spec is adopted as it is: updated in place at
    most, never deleted to be created again."""
    for address, change in changes.items():
        live = observed[address]
        if change.action is Action.REPLACE and live.exists and not live.owned:
            raise UserError(
                f"{graph.declared_at(address)}: {address} already exists and was not created by this spec, which would replace it "
                f"({'; '.join(change.reasons)}); make the spec match it, give the spec's resource another name, "
                "or delete the existing one yourself"
            )


def _changed_inputs(resource: Resource, live: Observed, change: ResourceChange, changes: dict[str, ResourceChange]) -> None:
    """A job re-runs when a file it reads is written again: changed here, or edited on the share since."""
    changed = [a for a in resource.extra["input_files"] if changes.get(a) and changes[a].action is not Action.NO_OP]
    if changed:
        reason = f"input files changed: {', '.join(changed)}"
    elif live.stored.inputs_digest != resource.extra["inputs_digest"]:
        reason = "input files differ from those the job ran with"
    else:
        return
    change.action = Action.REPLACE
    change.reasons.append(reason)


def _check_one_spec_only(graph: Graph, observed: dict[str, Observed], registry: Registry) -> None:
    for resource in graph:
        live = observed[resource.address]
        if registry[resource.kind].one_spec_only and live.exists and live.other_owner:
            raise UserError(
                f"{resource.address} is managed by another spec ({live.other_owner!r}); a {resource.kind} belongs to "
                "one spec"
            )


def _kept_containers(observed: dict[str, Observed], registry: Registry) -> dict[str, list[str]]:
    """Containers holding what destroy must not delete (others' resources, or containers kept for that reason),
    with what they hold; inner containers are decided first, so an experiment kept keeps its workspace. What a
    container holds is its kind's `holds` (a workspace its clusters and experiments, an account its shares)."""
    kept: dict[str, list[str]] = {}
    order = registry.order
    for container in sorted(observed.values(), key=lambda live: -order[live.kind]):
        holds = registry[container.kind].holds
        if not holds or not container.exists:
            continue
        held = sorted(
            live.address
            for live in observed.values()
            if live.kind in holds
            and live.exists
            and (not live.owned or live.address in kept)
            and all(live.ids.get(key) == value for key, value in container.ids.items())
        )
        if held:
            kept[container.address] = held
    return kept


def build_destroy_plan(
    graph: Graph,
    observed: dict[str, Observed],
    *,
    spec_path: str,
    endpoint: str,
    now: float | None = None,
    service: str = "batchai",
    warnings: Iterable[str] = (),
) -> Plan:
    """Everything the spec owns, and nothing else; the resource group only if the spec allows it. What the spec
    owns but holds others' resources is kept (a no-op with the reason), since deleting it would delete them."""
    changes, registry = [], graph.registry
    kept = _kept_containers(observed, registry)
    for address, live in observed.items():
        if not live.exists:
            continue
        resource = graph.resources.get(address)
        if resource is not None and not resource.managed:
            continue  # referenced as existing: never deleted
        allowed, reason = registry[live.kind].destroy_allowed(resource, live)
        if allowed and address in kept:
            reason = f"kept: deleting it would delete {', '.join(kept[address])}, which destroy must not delete"
            changes.append(ResourceChange(address, live.kind, Action.NO_OP, [reason], before=live.state))
        elif allowed:
            changes.append(ResourceChange(address, live.kind, Action.DELETE, [reason], before=live.state))
    order = registry.order
    ordered = sorted(changes, key=lambda c: (-order[c.kind], c.address))
    _note_active_runs(ordered, observed, time.time() if now is None else now)
    return Plan(
        graph.spec_name, spec_path, endpoint, "destroy", ordered, _live_fingerprint(observed, registry),
        service=service, warnings=list(warnings),
    )
