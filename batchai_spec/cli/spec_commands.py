"""`validate` and `schema`: check a spec and summarise what it declares; print the spec files' JSON Schema."""

from __future__ import annotations

import sys

from rich.markup import escape

from batchai_spec.cli.app import app, console, console_err
from batchai_spec.cli.common import ServiceOption, check_service_name
from batchai_spec.cli.options import SpecArgument, VarFileOption, VarOption, load_spec_from_cli
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batchai_spec.spec import Cluster, FileServer, FileShare, Job, LoadedSpec, SpecError


@app.command()
def validate(spec: SpecArgument, var: VarOption = None, var_file: VarFileOption = None, service: ServiceOption = None) -> None:
    """Check a spec (syntax, types, names, references, what its service can realise) and summarise what it declares.

    Upload sources that do not exist yet are warnings here (they may be produced later) and errors at plan time.
    --service checks the spec for that service instead of the one its `service:` names.
    """
    from batchai_spec.spec import resolve_uploads
    from batchai_spec.spec.services import check

    check_service_name(service)
    loaded = load_spec_from_cli(spec, var, var_file)
    service = service or loaded.spec.service
    service_warnings = check(loaded, service)
    missing: list[SpecError] = []
    resolve_uploads(loaded.spec, loaded.spec_dir, error_at=loaded.error, on_missing=missing.append)
    console.print(escape(f"{spec}: valid"), soft_wrap=True)
    for line in summary(loaded, service):
        console.print(escape(line), soft_wrap=True)
    for warning in missing:
        console_err.print(f"[yellow]Warning:[/] {escape(warning.message)} (needed by plan and apply)", soft_wrap=True)
    for warning in service_warnings:
        console_err.print(f"[yellow]Warning:[/] {escape(warning)}", soft_wrap=True)


@app.command()
def schema() -> None:
    """Print the JSON Schema of spec files (the content of schemas/batchai-spec.schema.json)."""
    from batchai_spec.spec.schema import spec_schema_json

    sys.stdout.write(spec_schema_json())


def summary(loaded: LoadedSpec, service: str | None = None) -> list[str]:
    """What the spec declares, one line per resource; names and settings only, never a secret. `service`: the one it
    is checked for (default: the spec's)."""
    from batchai_spec.services import TITLES

    spec = loaded.spec
    group = spec.resource_group
    service = service or spec.service
    lines = [
        f"  spec             {spec.name} (version {spec.version})",
        f"  service          {TITLES[service]} ({service})",
        f"  resource group   {group.name} in {group.location}"
        + (", deleted by destroy" if group.delete_on_destroy else ", kept by destroy"),
    ]
    if spec.storage:
        account = spec.storage.account
        origin = "existing, referenced" if account.existing else "created by the spec"
        lines.append(f"  storage account  {account.name}: {account.sku} {account.kind} in {spec.storage_location}, {origin}")
        lines += [f"  file share       {_share(share)}" for share in spec.storage.file_shares]
    on_batch = service == "batch"
    lines.append(f"  workspace        {spec.workspace.name} in {spec.workspace_location}" + (" (a Batch account)" if on_batch else ""))
    lines += [f"  file server      {_file_server(server)}" for server in spec.file_servers]
    lines += [f"  cluster          {_cluster(cluster)}" + (" (a pool)" if on_batch else "") for cluster in spec.clusters]
    for experiment in spec.experiments:
        lines.append(f"  experiment       {experiment.name}: {_count(len(experiment.jobs), 'job')}")
        lines += [f"    job            {_job(job)}" for job in experiment.jobs]
    return lines


def _share(share: FileShare) -> str:
    return (
        f"{share.name}: {share.quota_gb} GiB, {_count(len(share.implied_directories()), 'directory', 'directories')}, "
        f"{_count(len(share.uploads), 'upload')}"
    )


def _file_server(server: FileServer) -> str:
    disks = server.data_disks
    return f"{server.name}: {server.vm_size}, {_count(disks.disk_count, 'disk')} of {disks.disk_size_in_gb} GB {disks.storage_account_type}"


def _cluster(cluster: Cluster) -> str:
    scale = cluster.scale
    if scale.manual:
        nodes = f"manual {_count(scale.manual.target_node_count, 'node')}"
    else:
        nodes = f"auto {scale.auto.minimum_node_count}-{scale.auto.maximum_node_count} nodes"
    return f"{cluster.name}: {cluster.vm_size} {cluster.vm_priority}, {nodes}"


def _job(job: Job) -> str:
    toolkit, _ = job.toolkit
    where = f" in {job.container.image}" if job.container else ""
    return f"{job.name}: {toolkit} on {job.cluster}, {_count(job.node_count, 'node')}{where}"


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"
