"""One command's view of the world: the loaded spec, its endpoint, the service that realises it (its registry and
its connection), the desired graph, and the plans."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Iterable

from batchai_spec.file_hashes import FileHashes
from batchai_spec.graph import Graph, build_graph
from batchai_spec.live import read_live
from batchai_spec.observed import Observed
from batchai_spec.plan import Action, Plan, build_destroy_plan, build_plan
from batchai_spec.sensitive import sensitive_paths
from batchai_spec.services import DEFAULT_SERVICE, service_named
from batchai_spec.spec import LoadedSpec

if TYPE_CHECKING:
    from types import ModuleType

    from batchai_spec.services.azure.endpoint import Endpoint, EndpointChoice
    from batchai_spec.services.azure.connection import AzureConnection


@dataclass
class Session:
    loaded: LoadedSpec
    choice: EndpointChoice
    parallelism: int = 16
    # False for commands that only read or delete (destroy, status, logs...): a missing upload source is no error.
    require_sources: bool = True
    # The service that realises the spec: --service, else the spec's `service:` (None here), else DEFAULT_SERVICE.
    service_name: str | None = None

    def __post_init__(self) -> None:
        self.service_name = self.service_name or self.loaded.spec.service or DEFAULT_SERVICE

    @cached_property
    def service_warnings(self) -> list[str]:
        """The spec's warnings on this service, located (`file:line:column: key: message`); its errors are raised
        here as one SpecError, before anything is connected."""
        from batchai_spec.spec.services import check

        return check(self.loaded, self.service_name)

    @cached_property
    def endpoint(self) -> Endpoint:
        """Connected on first use, so that a lock can be taken before a local emulator is started."""
        return self.choice.connect()

    @cached_property
    def service(self) -> ModuleType:
        return service_named(self.service_name)

    @cached_property
    def connection(self) -> AzureConnection:
        return self.service.connect(self.endpoint, self.loaded.spec.name, parallelism=self.parallelism)

    @property
    def clients(self):
        return self.connection.clients

    @cached_property
    def graph(self) -> Graph:
        self.service_warnings  # a spec the service cannot realise stops here, with its located errors
        hashes = FileHashes()
        graph = build_graph(
            self.loaded, self.service.REGISTRY, self.endpoint.subscription_id, hashes.sha256,
            require_sources=self.require_sources,
        )
        hashes.save()
        return graph

    def secret_values(self) -> list[str]:
        """The spec's own secret values, to keep them out of what is written (a saved plan's variables)."""
        return [secret.value for resource in self.graph for secret in sensitive_paths(resource.desired).values() if secret.value]

    def observe(self) -> dict[str, Observed]:
        return read_live(self.connection, self.graph, parallelism=self.parallelism)

    def plan(self, *, replace: Iterable[str] = (), only: Iterable[str] = ()) -> tuple[Plan, dict[str, Observed]]:
        observed = self.observe()
        plan = build_plan(
            self.graph,
            observed,
            spec_path=str(self.loaded.path.resolve()),
            endpoint=self.endpoint.description,
            replace=replace,
            only=only,
            service=self.service_name,
            warnings=self.service_warnings,
        )
        self._note_deletions(plan, observed)
        return plan, observed

    def destroy_plan(self) -> tuple[Plan, dict[str, Observed]]:
        observed = self.observe()
        plan = build_destroy_plan(
            self.graph, observed, spec_path=str(self.loaded.path.resolve()), endpoint=self.endpoint.description,
            service=self.service_name, warnings=self.service_warnings,
        )
        self._note_deletions(plan, observed)
        return plan, observed

    def _note_deletions(self, plan: Plan, observed: dict[str, Observed]) -> None:
        """What a deleted (or replaced) resource takes along, in the kind's words (a share: the outputs of job runs).
        Read only for such resources, so a converged plan costs nothing more."""
        for change in plan.changes:
            live = observed.get(change.address)
            if change.action not in (Action.DELETE, Action.REPLACE) or live is None or not live.exists:
                continue
            verb = "deleting" if change.action is Action.DELETE else "replacing"
            for note in self.graph.registry[change.kind].deletion_notes(self.connection, live):
                change.notes.append(f"{change.address}: {verb} it {note}")
