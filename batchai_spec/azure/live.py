"""Read the live state of a graph: in parallel, one round of requests per dependency level.

Besides the declared resources it finds the ones this spec created and no longer declares (they are planned for
deletion), and nothing else is ever reported as owned.
"""

from __future__ import annotations

import functools
import posixpath
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from azure.core.exceptions import ResourceNotFoundError

from batchai_spec.azure import normalize
from batchai_spec.azure.clients import Clients
from batchai_spec.azure.errors import service_call
from batchai_spec.azure.watch import run_id_of
from batchai_spec.graph import Graph, Resource, canonical_location, prune
from batchai_spec.observed import Observed
from batchai_spec.ownership import (
    JOB_FINGERPRINT_ENV,
    JOB_INPUTS_ENV,
    JOB_OWNER_ENV,
    OWNER_METADATA,
    SALT_TAG,
    SHA256_METADATA,
    child_tag,
    owned_by,
    read_child_record,
)


# A read that returns the reads it makes possible (listing a directory makes the reads of its entries possible).
Task = Callable[[], "list[Task]"]


def _absent(address: str, kind: str, ids: dict[str, str]) -> Observed:
    return Observed(address, kind, ids, None)


class LiveReader:
    def __init__(self, clients: Clients, graph: Graph, *, parallelism: int = 16):
        self.clients = clients
        self.graph = graph
        self.spec_name = graph.spec_name
        self.parallelism = parallelism
        self.observed: dict[str, Observed] = {}

    def _parallel(self, calls: list[Callable[[], Any]]) -> None:
        if not calls:
            return
        with ThreadPoolExecutor(max_workers=min(self.parallelism, len(calls))) as pool:
            for future in [pool.submit(call) for call in calls]:
                future.result()

    def _record(self, observed: Observed) -> None:
        if observed.state is not None:
            observed.state = prune(observed.state)
        self.observed[observed.address] = observed

    def read(self) -> dict[str, Observed]:
        graph = self.graph
        groups = graph.by_kind("resource_group")
        accounts = graph.by_kind("storage_account")
        workspaces = graph.by_kind("workspace")
        self._parallel(
            [lambda r=r: self._resource_group(r) for r in groups]
            + [lambda r=r: self._storage_account(r) for r in accounts]
            + [lambda r=r: self._workspace(r) for r in workspaces]
        )
        round_two: list[Callable[[], Any]] = []
        for account in accounts:
            if self.observed[account.address].exists:
                round_two.append(lambda a=account: self._shares(a))
        for workspace in workspaces:
            if self.observed[workspace.address].exists:
                round_two += [lambda w=workspace: self._clusters(w), lambda w=workspace: self._experiments(w)]
        self._parallel(round_two)
        # Only the spec's shares are walked: someone else's may hold any number of files, none of them ours.
        shares = [s for s in self._existing("file_share") if s.owned or s.address in graph.resources]
        self._parallel(
            [lambda e=e: self._jobs(e) for e in self._existing("experiment")]
            + [lambda s=s: self._walk_share(s) for s in shares]
        )
        for resource in graph:
            self.observed.setdefault(resource.address, _absent(resource.address, resource.kind, resource.ids))
        return self.observed

    def _existing(self, kind: str) -> list[Observed]:
        return [o for o in list(self.observed.values()) if o.kind == kind and o.exists]

    # -- ARM ------------------------------------------------------------------------------------------------------

    def _resource_group(self, resource: Resource) -> None:
        name = resource.ids["resource_group"]
        with service_call(resource.address, "reading"):
            try:
                group = self.clients.resource.resource_groups.get(name)
            except ResourceNotFoundError:
                return self._record(_absent(resource.address, resource.kind, resource.ids))
        self._record(
            Observed(
                resource.address,
                resource.kind,
                resource.ids,
                {
                    "location": canonical_location(group.location),
                    "tags": normalize.user_tags(group.tags, resource.desired["tags"]),
                },
                owned=owned_by(group.tags, self.spec_name),
            )
        )

    def _storage_account(self, resource: Resource) -> None:
        with service_call(resource.address, "reading"):
            try:
                account = self.clients.storage.storage_accounts.get_properties(
                    resource.ids["resource_group"], resource.ids["account"]
                )
            except ResourceNotFoundError:
                return self._record(_absent(resource.address, resource.kind, resource.ids))
        declared_tags = (resource.desired or {}).get("tags")
        self._record(
            Observed(
                resource.address,
                resource.kind,
                resource.ids,
                {
                    "location": canonical_location(account.location),
                    "sku": account.sku.name if account.sku else None,
                    "kind": account.kind,
                    "tags": normalize.user_tags(account.tags, declared_tags),
                },
                owned=owned_by(account.tags, self.spec_name),
            )
        )

    def _workspace(self, resource: Resource) -> None:
        with service_call(resource.address, "reading"):
            try:
                workspace = self.clients.batchai.workspaces.get(
                    resource.ids["resource_group"], resource.ids["workspace"]
                )
            except ResourceNotFoundError:
                return self._record(_absent(resource.address, resource.kind, resource.ids))
        tags = workspace.tags or {}
        self._record(
            Observed(
                resource.address,
                resource.kind,
                resource.ids,
                {
                    "location": canonical_location(workspace.location),
                    "tags": normalize.user_tags(tags, resource.desired["tags"]),
                },
                owned=owned_by(tags, self.spec_name),
                meta={"tags": dict(tags), "salt": tags.get(SALT_TAG)},
            )
        )

    def _clusters(self, workspace: Resource) -> None:
        ids = workspace.ids
        tags = self.observed[workspace.address].meta["tags"]
        with service_call(workspace.address, "listing clusters of"):
            clusters = list(self.clients.batchai.clusters.list_by_workspace(ids["resource_group"], ids["workspace"]))
        for cluster in clusters:
            owned, stored = read_child_record(tags.get(child_tag("cluster", cluster.name)), self.spec_name)
            counts = cluster.node_state_counts
            self._record(
                Observed(
                    f"cluster.{cluster.name}",
                    "cluster",
                    {**ids, "cluster": cluster.name},
                    normalize.cluster_body(cluster),
                    owned=owned,
                    meta={
                        "fingerprint": stored,
                        "allocation_state": cluster.allocation_state,
                        "current_node_count": cluster.current_node_count,
                        "node_state_counts": counts.as_dict() if counts else {},
                    },
                )
            )

    def _experiments(self, workspace: Resource) -> None:
        ids = workspace.ids
        tags = self.observed[workspace.address].meta["tags"]
        with service_call(workspace.address, "listing experiments of"):
            experiments = list(
                self.clients.batchai.experiments.list_by_workspace(ids["resource_group"], ids["workspace"])
            )
        for experiment in experiments:
            self._record(
                Observed(
                    f"experiment.{experiment.name}",
                    "experiment",
                    {**ids, "experiment": experiment.name},
                    {},
                    owned=read_child_record(tags.get(child_tag("experiment", experiment.name)), self.spec_name)[0],
                )
            )

    def _jobs(self, experiment: Observed) -> None:
        ids = experiment.ids
        with service_call(experiment.address, "listing jobs of"):
            jobs = list(
                self.clients.batchai.jobs.list_by_experiment(ids["resource_group"], ids["workspace"], ids["experiment"])
            )
        for job in jobs:
            body, internal = normalize.job_body(job)
            info = job.execution_info
            self._record(
                Observed(
                    f"job.{ids['experiment']}/{job.name}",
                    "job",
                    {**ids, "job": job.name},
                    body,
                    owned=internal.get(JOB_OWNER_ENV) == self.spec_name,
                    meta={
                        "fingerprint": internal.get(JOB_FINGERPRINT_ENV),
                        "inputs_digest": internal.get(JOB_INPUTS_ENV),
                        "execution_state": job.execution_state,
                        "exit_code": info.exit_code if info else None,
                        "run_id": run_id_of(job),
                        "started": info.start_time.timestamp() if info and info.start_time else None,
                    },
                )
            )

    # -- Azure Files ----------------------------------------------------------------------------------------------

    def _shares(self, account: Resource) -> None:
        ids = account.ids
        with service_call(account.address, "listing the keys of"):
            service = self.clients.share_service(ids["resource_group"], ids["account"])
        with service_call(account.address, "listing file shares of"):
            shares = list(service.list_shares(include_metadata=True))
        for share in shares:
            self._record(
                Observed(
                    f"file_share.{share.name}",
                    "file_share",
                    {**ids, "share": share.name},
                    {"quota": share.quota},
                    owned=(share.metadata or {}).get(OWNER_METADATA) == self.spec_name,
                )
            )

    def _walk_share(self, share: Observed) -> None:
        """Read the share's tree, descending only into declared or owned directories.

        Not level by level: a directory is listed as soon as it is known to be ours (a declared one at once, beside
        the read of its metadata) and its entries are read as soon as it is listed, so no read waits for a round.
        """
        declared = {r.ids["path"] for r in self.graph.by_kind("directory") if r.ids["share"] == share.ids["share"]}
        client = self.clients.share_service(share.ids["resource_group"], share.ids["account"]).get_share_client(
            share.ids["share"]
        )

        def list_directory(path: str) -> list[Task]:
            reads: list[Task] = []
            for entry in self._list(client, share, path):
                child = posixpath.join(path, entry["name"]) if path else entry["name"]
                if not entry["is_directory"]:
                    reads.append(functools.partial(read_file, child))
                elif child in declared:
                    reads += [functools.partial(read_directory, child), functools.partial(list_directory, child)]
                else:
                    reads.append(functools.partial(read_directory, child))
            return reads

        def read_directory(path: str) -> list[Task]:
            owned = self._directory(client, share, path, path in declared)
            return [functools.partial(list_directory, path)] if owned and path not in declared else []

        def read_file(path: str) -> list[Task]:
            self._file(client, share, path)
            return []

        self._pipeline(functools.partial(list_directory, ""))

    def _pipeline(self, first: Task) -> None:
        """Run `first` and the tasks each task returns, in parallel, until none is left."""
        pool = ThreadPoolExecutor(max_workers=self.parallelism)
        try:
            pending = {pool.submit(first)}
            while pending:
                done, pending = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    pending |= {pool.submit(task) for task in future.result()}
        finally:
            pool.shutdown(cancel_futures=True)

    def _list(self, client, share: Observed, path: str) -> list[dict[str, Any]]:
        with service_call(f"directory.{share.ids['share']}/{path}", "listing"):
            directory = client.get_directory_client(path)
            return [
                {"name": item["name"], "is_directory": item["is_directory"]}
                for item in directory.list_directories_and_files()
            ]

    def _directory(self, client, share: Observed, path: str, declared: bool) -> bool:
        address = f"directory.{share.ids['share']}/{path}"
        ids = {**share.ids, "path": path}
        with service_call(address, "reading"):
            properties = client.get_directory_client(path).get_directory_properties()
        owned = (properties.metadata or {}).get(OWNER_METADATA) == self.spec_name
        if declared or owned:
            self._record(Observed(address, "directory", ids, {}, owned=owned))
        return owned

    def _file(self, client, share: Observed, path: str) -> None:
        address = f"file.{share.ids['share']}/{path}"
        ids = {**share.ids, "path": path}
        declared = address in self.graph.resources
        with service_call(address, "reading"):
            properties = client.get_file_client(path).get_file_properties()
        metadata = properties.metadata or {}
        owned = metadata.get(OWNER_METADATA) == self.spec_name
        if declared or owned:
            state = {"sha256": metadata.get(SHA256_METADATA), "size": properties.size}
            self._record(Observed(address, "file", ids, state, owned=owned))


def read_live(clients: Clients, graph: Graph, *, parallelism: int = 16) -> dict[str, Observed]:
    return LiveReader(clients, graph, parallelism=parallelism).read()
