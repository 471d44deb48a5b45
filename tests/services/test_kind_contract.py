"""Every kind of every service's registry is complete: each operation implemented or declared impossible
(`Cannot`), a policy for every field its desired bodies hold, a parent its address resolves to, an address that
round-trips, an order in which what a resource needs comes first. A kind that breaks one of these fails here, not
half way through an apply."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest

from batchai_spec.graph import build_graph
from batchai_spec.kinds import Cannot, Kind, Policy, Registry
from batchai_spec.services import SERVICES
from batchai_spec.spec import load_spec
from tests.plan.conftest import FIXTURE, SAMPLE_SPEC, SECRETS

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
REGISTRIES = [importlib.import_module(f"batchai_spec.services.{name}").REGISTRY for name in SERVICES]


# What the core passes each operation (live.py, engine/executor.py, session.py): an operation must take it.
CALLS = {
    "read": ("connection", "resource"),
    "list_under": ("connection", "parent", "graph"),
    "create": ("connection", "resource", "progress"),
    "update": ("connection", "resource", "progress"),
    "delete": ("connection", "live"),
    "terminate": ("connection", "live"),
    "readiness": ("connection", "resource"),
    "deletion_notes": ("connection", "live"),
    "live_dependencies": ("live",),
}


def _implemented(kind: Kind, operation: str) -> bool:
    """Defined by the kind itself (not the base class's NotImplementedError) and not declared impossible."""
    return getattr(type(kind), operation) is not getattr(Kind, operation) and kind.can(operation)


def problems(kind: Kind, registry: Registry) -> list[str]:
    """What makes `kind` incomplete in `registry`."""
    found = []
    known = set(registry.order)
    for attribute in ("parent", "read_under", "found_with"):
        value = getattr(kind, attribute)
        if value is not None and value not in known:
            found.append(f"{attribute} {value!r} is not a kind of {registry.service}")
    found += [f"holds {held!r}, not a kind of {registry.service}" for held in kind.holds if held not in known]
    found += [f"a loose dependency on {name!r}, not a kind" for name in kind.loose_dependencies if name not in known]
    if kind.parent is not None and kind.parent in known and registry.order[kind.parent] >= registry.order[kind.name]:
        found.append(f"comes before its parent {kind.parent}")
    # Read: by name, listed under a parent, or found by another kind's listing; exactly one.
    if kind.found_with is not None:
        if kind.found_with in known and registry[kind.found_with].read_under is None:
            found.append(f"found with {kind.found_with}, which lists nothing")
    elif kind.read_under is not None:
        if not _implemented(kind, "list_under"):
            found.append(f"listed under {kind.read_under} but implements no list_under")
    elif not _implemented(kind, "read"):
        found.append("read by name but implements no read")
    # Every write operation is implemented or declared impossible.
    for operation in ("create", "update", "delete", "terminate"):
        if not _implemented(kind, operation) and not isinstance(getattr(kind, operation), Cannot):
            found.append(f"{operation} is neither implemented nor declared impossible")
    updatable = [name for name, policy in kind.fields.items() if policy is Policy.UPDATE]
    if updatable and not _implemented(kind, "update"):
        found.append(f"{', '.join(updatable)} change in place, but update is not implemented")
    if not updatable and _implemented(kind, "update"):
        found.append("implements update, but no field changes in place")
    if kind.runs_to_completion != _implemented(kind, "terminate"):
        found.append("terminates if and only if it runs to completion")
    for operation, arguments in CALLS.items():
        if _implemented(kind, operation):
            try:
                inspect.signature(getattr(kind, operation)).bind(*arguments)
            except TypeError as error:
                found.append(f"{operation} cannot be called as the core calls it: {error}")
    return found


@pytest.fixture(scope="module")
def sample_graphs() -> list[Any]:
    """The graphs of the sample spec and of the plan fixture (every kind and feature), for each registry. The
    sample's data files are made by training/prepare_mnist.py, which a clean checkout has not run: its uploads are
    left out where missing (the fixture has uploads of its own)."""
    patch = pytest.MonkeyPatch()
    for name, value in SECRETS.items():
        patch.setenv(name, value)
    try:
        specs = [load_spec(SAMPLE_SPEC), load_spec(FIXTURE / "spec.yaml")]
    finally:
        patch.undo()
    return [
        (registry, build_graph(loaded, registry, SUBSCRIPTION, require_sources=False))
        for registry in REGISTRIES
        for loaded in specs
    ]


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda registry: registry.service)
def test_every_kind_is_complete(registry: Registry):
    incomplete = {kind.name: problems(kind, registry) for kind in registry}
    assert {name: found for name, found in incomplete.items() if found} == {}


def test_the_contract_finds_an_incomplete_kind():
    class Half(Kind):
        name = "half"
        address_keys = ("half",)
        parent = "nowhere"
        fields = {"size": Policy.UPDATE}
        read_under = "nowhere"

        def create(self, connection, resource, progress=None):
            pass

        def list_under(self, connection, parent):  # the graph is passed too
            return []

    found = problems(Half(), Registry("test", [Half()]))
    assert "parent 'nowhere' is not a kind of test" in found
    assert "list_under cannot be called as the core calls it: too many positional arguments" in found
    assert "update is neither implemented nor declared impossible" in found
    assert "delete is neither implemented nor declared impossible" in found
    assert "size change in place, but update is not implemented" in found


def test_the_sample_specs_declare_every_kind(sample_graphs):
    for registry in REGISTRIES:
        declared = {resource.kind for graph_registry, graph in sample_graphs if graph_registry is registry for resource in graph}
        assert declared == set(registry.order), "a kind no sample declares has its fields unchecked"


def test_every_desired_field_has_a_policy(sample_graphs):
    missing = {
        (resource.kind, field)
        for registry, graph in sample_graphs
        for resource in graph
        if resource.managed
        for field in resource.desired
        if field not in registry[resource.kind].fields
    }
    assert missing == set()


def test_addresses_round_trip_and_parents_are_dependencies(sample_graphs):
    for registry, graph in sample_graphs:
        known = set(graph.resources)
        for resource in graph:
            kind = registry.of(resource.address)
            assert kind.name == resource.kind
            assert kind.address(resource.ids) == resource.address
            assert kind.ids_in(resource.address) == {key: resource.ids[key] for key in kind.address_keys}
            parent = kind.parent_address(resource.ids, known)
            if kind.parent is None:
                assert parent is None, resource.address
            else:
                assert parent in resource.depends_on, f"{resource.address}: parent {parent} is not a dependency"


def test_what_a_resource_needs_comes_first_in_its_registry(sample_graphs):
    for registry, graph in sample_graphs:
        order = registry.order
        for resource in graph:
            for dependency in resource.depends_on:
                needed = graph.resources[dependency].kind
                assert order[needed] <= order[resource.kind], f"{resource.address} needs {dependency}"


def test_an_address_of_another_kind_is_refused():
    kind = REGISTRIES[0]["job"]
    with pytest.raises(ValueError):
        kind.ids_in("cluster.gpu")
    with pytest.raises(ValueError):
        kind.ids_in("job.only-one-part")
