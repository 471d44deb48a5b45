"""The kinds every service realises its own way (the workspace, experiments, jobs), as the spec declares them: their
addresses, spec walks and the parts of their reads that do not depend on the service. Each service's adapter
subclasses one of these and adds its I/O, so that a spec's addresses, edges and plans read the same on every service."""

from __future__ import annotations

import secrets as random_tokens
from typing import Any, Iterable

import isodate

from batchai_spec.graph import Resource, SpecWalk
from batchai_spec.job_inputs import by_share, input_files, inputs_digest, job_mounts, run_outputs
from batchai_spec.kinds import Declaration, Kind, Policy
from batchai_spec.observed import Observed, Stored
from batchai_spec.services.azure.bodies import plain
from batchai_spec.statuses import node_counts
from batchai_spec.services.azure.ownership import (
    SALT_TAG,
    SERVICE_TAG,
    SPEC_TAG,
    canonical_location,
    merged_tags,
    owned_by,
    user_tags,
)


def workspace_ids(spec) -> dict[str, str]:
    """The ids every resource of the spec's workspace carries (its own, and its children's with their name)."""
    return {"resource_group": spec.resource_group.name, "workspace": spec.workspace.name}


class SpecWorkspace(Kind):
    """The spec's workspace: a Batch AI workspace, or the Batch account of Azure Batch. Its tags say which spec
    owns it and hold the salt of the fingerprints of what it holds; it belongs to one spec."""

    name = "workspace"
    address_keys = ("workspace",)
    parent = "resource_group"
    fields = {"location": Policy.REPLACE, "tags": Policy.UPDATE}
    one_spec_only = True

    def declared(self, walk: SpecWalk):
        spec = walk.spec
        yield Declaration(
            workspace_ids(spec), ("workspace",), spec.workspace, depends_on=(f"resource_group.{spec.resource_group.name}",)
        )

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        return {"location": canonical_location(walk.spec.workspace_location), "tags": dict(declaration.node.tags or {})}

    def new_tags(self, resource: Resource, spec_name: str, service: str) -> dict[str, str]:
        """The tags it is created with: the declared ones, the owner's, a new salt, the service."""
        tags = merged_tags(resource.desired["tags"], None, True, spec_name)
        tags[SALT_TAG] = random_tokens.token_hex(8)
        tags[SERVICE_TAG] = service
        return tags

    def found(
        self, resource: Resource, spec_name: str, location: str, tags: dict[str, str], status: dict[str, Any] | None = None
    ) -> Observed:
        """What a live read found, from the service's location and tags."""
        owner = tags.get(SPEC_TAG)
        return Observed(
            resource.address,
            self.name,
            resource.ids,
            {"location": canonical_location(location), "tags": user_tags(tags, resource.desired["tags"])},
            owned=owned_by(tags, spec_name),
            stored=Stored(salt=tags.get(SALT_TAG)),
            other_owner=owner if owner and owner != spec_name else None,
            status=status or {},
        )


class SpecCluster(Kind):
    """A cluster of the spec (a Batch AI cluster, an Azure Batch pool): in its workspace, after the shares it mounts
    and what else the service says it needs (`needs`); its status is its allocation and nodes."""

    name = "cluster"
    address_keys = ("cluster",)
    parent = "workspace"
    read_under = "workspace"
    stores_fingerprints = True

    def needs(self, walk: SpecWalk, cluster) -> Iterable[str]:
        return ()

    def facts(self, walk: SpecWalk, cluster) -> dict[str, Any]:
        return {}

    def declared(self, walk: SpecWalk):
        spec = walk.spec
        for index, cluster in enumerate(spec.clusters):
            volumes = cluster.node_setup.mount_volumes if cluster.node_setup else None
            shares = sorted({mount.share for mount in volumes.azure_file_shares if mount.share}) if volumes else []
            yield Declaration(
                {**workspace_ids(spec), "cluster": cluster.name},
                ("clusters", index),
                cluster,
                depends_on=(
                    f"workspace.{spec.workspace.name}",
                    *(f"file_share.{share}" for share in shares),
                    *self.needs(walk, cluster),
                ),
                extra=self.facts(walk, cluster),
            )

    def status(self, live: Observed) -> tuple[str, str]:
        counts = node_counts(live.status.get("node_state_counts", {}))
        nodes = f"{live.status.get('current_node_count', 0)} nodes" + (f" ({counts})" if counts else "")
        return live.status.get("allocation_state") or "?", nodes


class SpecExperiment(Kind):
    """An experiment of the spec: the container of its jobs, with no properties."""

    name = "experiment"
    address_keys = ("experiment",)
    parent = "workspace"
    holds = ("job",)
    read_under = "workspace"

    def declared(self, walk: SpecWalk):
        spec = walk.spec
        for index, experiment in enumerate(spec.experiments):
            yield Declaration(
                {**workspace_ids(spec), "experiment": experiment.name},
                ("experiments", index),
                experiment,
                depends_on=(f"workspace.{spec.workspace.name}",),
            )

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        return {}


class SpecJob(Kind):
    """A job of the spec, a run to completion: any change means a new run. It depends on its experiment, its
    cluster and the files it reads (batchai_spec/job_inputs.py: changed inputs run it again); a service adds what
    else it needs (`needs`) and knows of it (`facts`)."""

    name = "job"
    address_keys = ("experiment", "job")
    parent = "experiment"
    read_under = "experiment"
    stores_fingerprints = True
    runs_to_completion = True

    def needs(self, walk: SpecWalk, job, cluster) -> Iterable[str]:
        """The addresses it depends on besides its experiment, cluster and input files."""
        return ()

    def facts(self, walk: SpecWalk, ids: dict[str, str], job, cluster) -> dict[str, Any]:
        """What the service's adapter knows of it besides its body (Resource.extra)."""
        return {}

    @staticmethod
    def toolkit_settings(job) -> tuple[str, dict[str, Any]]:
        """(toolkit key, its settings with secrets kept Sensitive), with what Batch AI filled in: a CNTK job's
        process count is its node count."""
        name, toolkit = job.toolkit
        settings = plain(toolkit)
        if name == "cntk" and settings.get("process_count") is None:
            settings["process_count"] = job.node_count
        return name, settings

    @staticmethod
    def wall_clock(job) -> str:
        """Its maximum wall clock time as an ISO 8601 duration, as the services answer it (P7D)."""
        return isodate.duration_isoformat(job.constraints.max_wall_clock_time)

    def is_input(self, file: Resource) -> bool:
        """Whether a file of the spec can be an input of a job (the service's own files are not)."""
        return True

    def declared(self, walk: SpecWalk):
        spec = walk.spec
        files = by_share(file for file in walk.of_kind("file") if self.is_input(file))
        for exp_index, experiment in enumerate(spec.experiments):
            for job_index, job in enumerate(experiment.jobs):
                cluster = spec.cluster(job.cluster)
                inputs = input_files(job, cluster, files)
                ids = {**workspace_ids(spec), "experiment": experiment.name, "job": job.name}
                yield Declaration(
                    ids,
                    ("experiments", exp_index, "jobs", job_index),
                    job,
                    depends_on=(
                        f"experiment.{experiment.name}",
                        f"cluster.{cluster.name}",
                        *self.needs(walk, job, cluster),
                        *(f.address for f in inputs),
                    ),
                    extra={
                        "input_files": tuple(f.address for f in inputs),
                        "inputs_digest": inputs_digest(inputs),
                        # Where its runs write, and through which mounts (services/azure/runs.py).
                        "outputs": run_outputs(job),
                        "mounts": job_mounts(cluster, job),
                        **self.facts(walk, ids, job, cluster),
                    },
                )

    def status(self, live: Observed) -> tuple[str, str]:
        run = live.run
        exit_code = run.exit_code if run else None
        return (run.state if run else None) or "?", "" if exit_code is None else f"exit code {exit_code}"
