"""One command's view of the world: the loaded spec, its target, the SDK clients and the desired graph."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterable

from rich.filesize import decimal

from batchai_spec.azure.clients import Clients
from batchai_spec.azure.live import read_live
from batchai_spec.azure.target import Target, TargetChoice
from batchai_spec.file_hashes import FileHashes
from batchai_spec.graph import Graph, build_graph
from batchai_spec.observed import Observed
from batchai_spec.plan import Action, Plan, build_destroy_plan, build_plan
from batchai_spec.sensitive import sensitive_paths
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
        """Connected on first use, so that a lock can be taken before a local emulator is started."""
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

    def secret_values(self) -> list[str]:
        """The spec's own secret values, to keep them out of what is written (a saved plan's variables)."""
        return [secret.value for resource in self.graph for secret in sensitive_paths(resource.desired).values() if secret.value]

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
        self._note_outputs_deleted(plan, observed)
        return plan, observed

    def destroy_plan(self) -> tuple[Plan, dict[str, Observed]]:
        observed = self.observe()
        plan = build_destroy_plan(self.graph, observed, spec_path=str(self.loaded.path.resolve()), target=self.target.description)
        self._note_outputs_deleted(plan, observed)
        return plan, observed

    def _note_outputs_deleted(self, plan: Plan, observed: dict[str, Observed]) -> None:
        """A file share that the plan deletes (or replaces) takes the job outputs on it along: the plan says how
        many runs' and how many bytes. Read only for such shares, so a converged plan costs nothing more."""
        for change in plan.changes:
            live = observed.get(change.address)
            if change.kind != "file_share" or change.action not in (Action.DELETE, Action.REPLACE) or not live.exists:
                continue
            from batchai_spec.azure.runs import share_outputs  # only for such a plan: it is not light to import

            ids = live.ids
            count, size = share_outputs(self.clients, ids["resource_group"], ids["account"], ids["share"], self.target.subscription_id)
            if count:
                verb = "deleting" if change.action is Action.DELETE else "replacing"
                runs = f"{count} job run{'s' if count != 1 else ''}"
                change.notes.append(f"{change.address}: {verb} it deletes the outputs of {runs}, {decimal(size)}")
