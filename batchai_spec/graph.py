"""The desired state: a spec becomes a graph of resources with addresses, dependencies and desired bodies.

The walk is the registry's: each kind's adapter says which resources of its kind the spec declares, with their
edges and spec locations (`Kind.declared`), and then their desired bodies (`Kind.desired`), in the service's shape
with server defaults filled in, so that a live read normalised the same way compares equal. Write-only values are
`Sensitive`. This module knows neither the SDKs nor any service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from batchai_spec.file_hashes import sha256_of
from batchai_spec.spec import LoadedSpec, resolve_uploads

if TYPE_CHECKING:
    from batchai_spec.kinds import Registry
    from batchai_spec.spec.uploads import ResolvedUpload


@dataclass(frozen=True)
class Resource:
    kind: str
    address: str
    # Identifiers the adapters need: resource_group, account, share, path, workspace, cluster, experiment, job.
    ids: dict[str, str]
    # None for a resource the spec only references (an existing storage account): read, never changed.
    desired: dict[str, Any] | None
    depends_on: tuple[str, ...] = ()
    # Key path of the declaration in the spec file, for error locations.
    spec_path: tuple[Any, ...] = ()
    # Kind-specific facts that are not part of the body: a file's local source, a job's input files.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def managed(self) -> bool:
        return self.desired is not None


@dataclass
class Graph:
    spec_name: str
    resources: dict[str, Resource]
    # The service's kinds the graph was built with: what the plan and the engine know of each kind.
    registry: Registry
    # file:line:column of a key path of the spec, for errors found at plan time.
    locate: Callable[[tuple[Any, ...]], str] = lambda path: "spec"

    def declared_at(self, address: str) -> str:
        return self.locate(self.resources[address].spec_path)

    def __iter__(self):
        return iter(self.resources.values())

    def by_kind(self, kind: str) -> list[Resource]:
        return [resource for resource in self.resources.values() if resource.kind == kind]


def prune(tree: Any) -> Any:
    """Drop None values and empty collections: the service omits unset properties instead of sending null."""
    if isinstance(tree, dict):
        pruned = {key: prune(value) for key, value in tree.items()}
        return {key: value for key, value in pruned.items() if value not in (None, {}, [])}
    if isinstance(tree, list):
        return [prune(value) for value in tree]
    return tree


class SpecWalk:
    """What the adapters read while the graph is built: the spec, the resources declared so far (kinds earlier in
    the registry), the uploads and their hashes, and the subscription (for ids the bodies hold)."""

    def __init__(self, loaded: LoadedSpec, subscription_id: str, sha256: Callable[[Path], str], require_sources: bool):
        self.loaded = loaded
        self.spec = loaded.spec
        self.subscription_id = subscription_id
        self.sha256 = sha256
        self.require_sources = require_sources
        self.resources: dict[str, Resource] = {}

    @cached_property
    def uploads(self) -> list[ResolvedUpload]:
        # Commands that only read or delete what exists need no upload source on this machine.
        skip_missing = None if self.require_sources else (lambda missing: None)
        return resolve_uploads(self.spec, self.loaded.spec_dir, error_at=self.loaded.error, on_missing=skip_missing)

    def of_kind(self, kind: str) -> list[Resource]:
        return [resource for resource in self.resources.values() if resource.kind == kind]


def build_graph(
    loaded: LoadedSpec,
    registry: Registry,
    subscription_id: str,
    sha256: Callable[[Path], str] = sha256_of,
    *,
    require_sources: bool = True,
) -> Graph:
    """The spec's desired resources in apply order (parents before children); `sha256` hashes upload sources.
    Without `require_sources`, uploads whose source is missing are left out instead of failing."""
    walk = SpecWalk(loaded, subscription_id, sha256, require_sources)
    for kind in registry:
        for declaration in kind.declared(walk):
            resource = Resource(
                kind.name,
                kind.address(declaration.ids),
                declaration.ids,
                kind.desired(declaration, walk) if declaration.managed else None,
                depends_on=declaration.depends_on,
                spec_path=declaration.spec_path,
                extra=declaration.extra,
            )
            walk.resources[resource.address] = resource
    return Graph(loaded.spec.name, walk.resources, registry, loaded.location)
