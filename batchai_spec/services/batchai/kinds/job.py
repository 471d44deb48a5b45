"""job.EXPERIMENT/NAME: a Batch AI job, a run to completion. Any change means a new run (delete, create: a new
output uuid); it depends on the files it reads (batchai_spec/job_inputs.py), so changed inputs re-run it. It carries
its ownership record in its environment; deleting it first writes its run's end on the run's directory."""

from __future__ import annotations

import contextlib
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.batchai import models as batchai_models

from batchai_spec.graph import Graph, Resource, SpecWalk, prune
from batchai_spec.kinds import Cannot, Declaration, Policy
from batchai_spec.observed import Observed, Run
from batchai_spec.services.azure.errors import already_gone, service_call
from batchai_spec.services.azure import runs as share_runs
from batchai_spec.services.batchai import normalize, runs
from batchai_spec.services.azure.bodies import named_list, plain, secret_list
from batchai_spec.services.batchai.bodies import (
    file_server_dependencies,
    in_workspace,
    mount_volumes,
    mounted_file_servers,
    workspace_child_id,
)
from batchai_spec.services.batchai.connection import BatchAIConnection
from batchai_spec.services.batchai.ownership import job_environment, read_job_environment
from batchai_spec.services.batchai.watch import job_status, run_id_of
from batchai_spec.services.declarations import SpecJob

TOOLKIT_ATTRIBUTES = {
    "cntk": "cntk_settings",
    "pytorch": "py_torch_settings",
    "tensorflow": "tensor_flow_settings",
    "caffe": "caffe_settings",
    "caffe2": "caffe2_settings",
    "chainer": "chainer_settings",
    "custom_toolkit": "custom_toolkit_settings",
    "custom_mpi": "custom_mpi_settings",
    "horovod": "horovod_settings",
}


class Job(SpecJob):
    # Jobs run to completion: any change means a new run.
    fields = {
        name: Policy.REPLACE
        for name in (
            "scheduling_priority", "cluster", "mount_volumes", "node_count", "container_settings", "job_preparation",
            "std_out_err_path_prefix", "input_directories", "output_directories", "environment_variables", "secrets",
            "constraints", *TOOLKIT_ATTRIBUTES.values(),
        )
    }
    # A replaced cluster or file server takes only the runs still active on it (a finished run is not run again
    # for it); changed input files are the inputs digest's.
    loose_dependencies = {"cluster": "while-active", "file_server": "while-active", "file": "inputs"}

    def needs(self, walk: SpecWalk, job, cluster):
        return file_server_dependencies(job.mount_volumes)

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        job, spec = declaration.node, walk.spec
        account = spec.storage.account.name if spec.storage else None
        toolkit_name, settings = self.toolkit_settings(job)
        container = None
        if job.container is not None:
            registry = job.container.registry
            container = {
                "image_source_registry": {
                    "image": job.container.image,
                    "server_url": registry.server_url if registry else None,
                    "credentials": {"username": registry.username, "password": plain(registry.password)}
                    if registry and registry.username
                    else None,
                },
                "shm_size": job.container.shm_size,
            }
        ids = declaration.ids
        # The cluster's own name: a job may name it in another case (spec.cluster matches without case).
        cluster_name = spec.cluster(job.cluster).name
        cluster = workspace_child_id(walk.subscription_id, ids["resource_group"], ids["workspace"], "clusters", cluster_name)
        body = {
            "scheduling_priority": job.scheduling_priority,
            "cluster": {"id": cluster},
            "mount_volumes": mount_volumes(job.mount_volumes, account, walk.subscription_id, ids),
            "node_count": job.node_count,
            "container_settings": container,
            TOOLKIT_ATTRIBUTES[toolkit_name]: settings,
            "job_preparation": {"command_line": job.job_preparation.command_line} if job.job_preparation else None,
            "std_out_err_path_prefix": job.std_out_err_path_prefix,
            "input_directories": [{"id": key, "path": path} for key, path in sorted(job.input_directories.items())],
            "output_directories": sorted((plain(directory) for directory in job.output_directories), key=lambda d: d["id"]),
            "environment_variables": named_list(job.environment_variables),
            "secrets": secret_list(job.secrets),
            "constraints": {"max_wall_clock_time": self.wall_clock(job)},
        }
        return prune(body)

    def live_dependencies(self, live: Observed) -> set[str]:
        """The cluster it runs on and the file servers it mounts."""
        cluster = (live.state.get("cluster") or {}).get("id") or ""
        return in_workspace([cluster], live.ids, "clusters", "cluster") | mounted_file_servers(
            live.state.get("mount_volumes"), live.ids
        )

    def list_under(self, connection: BatchAIConnection, experiment: Observed, graph: Graph) -> list[Observed]:
        ids = experiment.ids
        with service_call(experiment.address, "listing jobs of"):
            jobs = list(
                connection.clients.batchai.jobs.list_by_experiment(ids["resource_group"], ids["workspace"], ids["experiment"])
            )
        found = []
        for job in jobs:
            body, internal = normalize.job_body(job)
            owned, stored = read_job_environment(internal, connection.spec_name, connection.ownership.stored_salt(ids))
            info = job.execution_info
            found.append(
                Observed(
                    f"job.{ids['experiment']}/{job.name}",
                    self.name,
                    {**ids, "job": job.name},
                    body,
                    owned=owned,
                    stored=stored,
                    run=Run(
                        job.execution_state,
                        info.exit_code if info else None,
                        run_id_of(job),
                        info.start_time.timestamp() if info and info.start_time else None,
                    ),
                )
            )
        return found

    def create(self, connection: BatchAIConnection, resource: Resource, progress=None) -> None:
        ids = resource.ids
        body = connection.revealed(resource)
        body["environment_variables"] = list(body.get("environment_variables", [])) + job_environment(
            connection.spec_name, connection.ownership.fingerprints(resource), resource.extra["inputs_digest"]
        )
        parameters = batchai_models.JobCreateParameters.from_dict(body)
        connection.clients.batchai.jobs.begin_create(
            ids["resource_group"], ids["workspace"], ids["experiment"], ids["job"], parameters
        ).result()

    update = Cannot("a job runs to completion: a change means a new run")

    def terminate(self, connection: BatchAIConnection, live: Observed) -> None:
        ids = live.ids
        with already_gone():
            connection.clients.batchai.jobs.begin_terminate(
                ids["resource_group"], ids["workspace"], ids["experiment"], ids["job"]
            ).result()

    def delete(self, connection: BatchAIConnection, live: Observed) -> None:
        """Deletes the job; first its run's end (state, exit code, start, end) is written on the run's directory on
        the share, which outlives the job, for `outputs` to show. A retry records the same again."""
        ids = live.ids
        try:
            job = connection.clients.batchai.jobs.get(ids["resource_group"], ids["workspace"], ids["experiment"], ids["job"])
        except ResourceNotFoundError:
            return  # already gone
        _record_run(connection, job, live.address)
        with already_gone():
            connection.clients.batchai.jobs.begin_delete(
                ids["resource_group"], ids["workspace"], ids["experiment"], ids["job"]
            ).result()


def _record_run(connection: BatchAIConnection, job: batchai_models.Job, address: str) -> None:
    """A run directory, share, account or cluster that is gone leaves nothing to record on, and a record the share
    refuses is not worth keeping the job for: the delete goes on either way."""
    with contextlib.suppress(HttpResponseError):  # ResourceNotFoundError included
        layout, run_id = runs.live_layout(connection.clients, job, address, connection.resource_group_of_account)
        if run_id:
            share_runs.record_run(connection.clients, layout, run_id, share_runs.run_record(job_status(job)))


JOB = Job()
