"""One command's view of the world: the loaded spec, its target, the SDK clients and the desired graph."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterable

from batchai_spec.azure.clients import Clients
from batchai_spec.azure.live import read_live
from batchai_spec.azure.target import Target, TargetChoice
from batchai_spec.file_hashes import FileHashes
from batchai_spec.graph import Graph, build_graph
from batchai_spec.observed import Observed
from batchai_spec.plan import Plan, build_destroy_plan, build_plan
from batchai_spec.spec import LoadedSpec


@dataclass
class Session:
    loaded: LoadedSpec
    choice: TargetChoice
    parallelism: int = 16
    # False for commands that only read or delete (destroy, status, logs...): a missing upload source is no error.
    require_sources: bool = True

    @cached_property
    def target(self) -> Target:
        """Connected on first use, so that a lock can be taken before an embedded emulator is started."""
        return self.choice.connect()

    @cached_property
    def clients(self) -> Clients:
        return Clients(self.target)

    @cached_property
    def graph(self) -> Graph:
        hashes = FileHashes()
        graph = build_graph(self.loaded, self.target.subscription_id, hashes.sha256, require_sources=self.require_sources)
        hashes.save()
        return graph

    def observe(self) -> dict[str, Observed]:
        return read_live(self.clients, self.graph, parallelism=self.parallelism)

    def plan(self, *, replace: Iterable[str] = (), only: Iterable[str] = ()) -> tuple[Plan, dict[str, Observed]]:
        observed = self.observe()
        plan = build_plan(
            self.graph,
            observed,
            spec_path=str(self.loaded.path.resolve()),
            target=self.target.description,
            replace=replace,
            only=only,
        )
        return plan, observed

    def destroy_plan(self) -> tuple[Plan, dict[str, Observed]]:
        observed = self.observe()
        plan = build_destroy_plan(self.graph, observed, spec_path=str(self.loaded.path.resolve()), target=self.target.description)
        return plan, observed
