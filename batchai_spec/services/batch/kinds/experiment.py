"""experiment.NAME on Azure Batch: a name its jobs carry (Batch has no experiment object). The spec's Batch account
records the experiments the spec made in its tags (so that one without jobs is there too); an experiment is found
through that record or through the jobs of this spec that carry its name, and goes with them."""

from __future__ import annotations

from batchai_spec.graph import Graph, Resource
from batchai_spec.kinds import Cannot
from batchai_spec.observed import Observed
from batchai_spec.services.azure.ownership import OWNER_METADATA
from batchai_spec.services.batch.connection import BatchConnection
from batchai_spec.services.batch.ownership import EXPERIMENT_METADATA, JOB_METADATA, metadata_of
from batchai_spec.services.declarations import SpecExperiment


class Experiment(SpecExperiment):
    def list_under(self, connection: BatchConnection, account: Observed, graph: Graph) -> list[Observed]:
        """This spec's experiments: recorded in the account's tags or carried by its jobs. Others' jobs keep what
        holds them (Batch has no experiment object: someone else's job is what deleting the account would delete):
        one that carries an experiment's name is listed under it (the job adapter lists every job carrying the name,
        whoever made it); one that carries none stands for an experiment of its own, `(job ID)`, a name no spec can
        give, held by nobody of this spec."""
        names = set(connection.accounts.experiments(account.ids))
        others = set()
        for job in connection.account_jobs(account):
            metadata = metadata_of(job.metadata)
            if metadata.get(OWNER_METADATA) == connection.spec_name and EXPERIMENT_METADATA in metadata:
                names.add(metadata[EXPERIMENT_METADATA])
            elif EXPERIMENT_METADATA in metadata and JOB_METADATA in metadata:
                others.add(metadata[EXPERIMENT_METADATA])
            else:
                others.add(f"(job {job.id})")
        return [
            Observed(self.address(ids), self.name, ids, {}, owned=ids["experiment"] in names)
            for ids in ({**account.ids, "experiment": name} for name in sorted(names | others))
        ]

    def create(self, connection: BatchConnection, resource: Resource, progress=None) -> None:
        """Recorded in the account's tags: its jobs carry its name."""
        connection.accounts.record_experiment(resource.ids)

    update = Cannot("an experiment has no properties to change")

    def delete(self, connection: BatchConnection, live: Observed) -> None:
        """Only its record: its jobs are deleted before it."""
        connection.accounts.forget_experiment(live.ids)

    def deletion_notes(self, connection: BatchConnection, live: Observed) -> list[str]:
        return ["(Azure Batch has no experiment object: its jobs are what is deleted)"]


EXPERIMENT = Experiment()
