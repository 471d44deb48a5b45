"""Day-2 commands: `status`, `logs`, `outputs`, `force-unlock`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from typing import TYPE_CHECKING

from batchai_spec.cli.app import app, console
from batchai_spec.cli.common import BackendOption, StateDirOption, open_session
from batchai_spec.cli.options import SpecArgument, VarFileOption, VarOption
from batchai_spec.errors import UserError

if TYPE_CHECKING:  # imported when a command runs, not when the CLI starts
    from batchai_spec.engine.waits import Waits
    from batchai_spec.graph import Resource
    from batchai_spec.observed import Observed
    from batchai_spec.session import Session

JobArgument = Annotated[str, typer.Argument(help="The job: EXPERIMENT/JOB, or JOB when its name is unique.", show_default=False)]


def _job(session: Session, name: str) -> Resource:
    jobs = session.graph.by_kind("job")
    matches = [job for job in jobs if f"{job.ids['experiment']}/{job.ids['job']}" == name or job.ids["job"] == name]
    if len(matches) != 1:
        known = ", ".join(f"{j.ids['experiment']}/{j.ids['job']}" for j in jobs[:10]) or "none"
        reason = "is ambiguous" if matches else "is not a job of this spec"
        raise UserError(f"{name!r} {reason} (jobs: {known})")
    return matches[0]


def _job_waits(spec, job, var, var_file, backend, state_dir) -> tuple[Resource, Waits]:
    """The job a day-2 command names, and the reads that follow it."""
    from batchai_spec.azure.watch import Watch
    from batchai_spec.engine.waits import Waits
    from batchai_spec.ui.reporters import PlainReporter

    session = open_session(spec, var, var_file, backend, state_dir, require_sources=False)
    return _job(session, job), Waits(Watch(session.clients), PlainReporter())


def _details(live: Observed) -> tuple[str, str]:
    if not live.exists:
        return "missing", ""
    meta = live.meta
    if live.kind == "cluster":
        from batchai_spec.ui.reporters import node_counts

        counts = node_counts(meta.get("node_state_counts", {}))
        return meta.get("allocation_state") or "?", f"{meta.get('current_node_count', 0)} nodes" + (f" ({counts})" if counts else "")
    if live.kind == "job":
        exit_code = meta.get("exit_code")
        return meta.get("execution_state") or "?", "" if exit_code is None else f"exit code {exit_code}"
    if live.kind == "file":
        return "present", f"{live.state.get('size', 0):,} bytes"
    return "present", ""


@app.command()
def status(
    spec: SpecArgument,
    var: VarOption = None,
    var_file: VarFileOption = None,
    backend: BackendOption = "local",
    state_dir: StateDirOption = None,
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON object per resource instead of a table.")] = False,
) -> None:
    """A live table of every resource of the spec: its state, node counts, job states and exit codes."""
    session = open_session(spec, var, var_file, backend, state_dir, require_sources=False)
    observed = session.observe()
    addresses = list(session.graph.resources) + sorted(a for a in observed if a not in session.graph.resources)
    rows = []
    for address in addresses:
        live = observed[address]
        if address not in session.graph.resources and not (live.exists and live.owned):
            continue
        state, details = _details(live)
        rows.append({"address": address, "state": state, "details": details, "exists": live.exists, "owned": live.owned})
    if json_lines:
        for row in rows:
            console.out(json.dumps(row), highlight=False)
        return
    table = Table(title=f"{session.graph.spec_name} on {session.target.description}")
    table.add_column("Address", overflow="fold")
    for column in ("State", "Details", "Owned"):
        table.add_column(column)
    for row in rows:
        owned = "yes" if row["owned"] else ("no" if row["exists"] else "")
        table.add_row(row["address"], row["state"], row["details"], owned)
    console.print(table)


@app.command()
def logs(
    spec: SpecArgument,
    job: JobArgument,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming until the job ends.")] = False,
    var: VarOption = None,
    var_file: VarFileOption = None,
    backend: BackendOption = "local",
    state_dir: StateDirOption = None,
) -> None:
    """Print a job's stdout.txt and stderr.txt (with -f, as they grow, until the job ends)."""
    from batchai_spec.azure.errors import service_call
    from batchai_spec.azure.watch import STDOUTERR
    from batchai_spec.engine.waits import LOG_FILES

    resource, waits = _job_waits(spec, job, var, var_file, backend, state_dir)
    watch = waits.watch
    with service_call(resource.address, "reading the logs of"):
        if follow:
            waits.follow_job(resource, stream_logs=True)
            return
        files = {f.path: f for f in watch.output_files(resource.ids, STDOUTERR)}
        for name in LOG_FILES:
            if name in files:
                console.out(watch.read_from(files[name].url, 0).decode(errors="replace"), end="", highlight=False)


@app.command()
def outputs(
    spec: SpecArgument,
    job: JobArgument,
    download: Annotated[Optional[Path], typer.Option("--download", help="Download the files into this directory.")] = None,
    var: VarOption = None,
    var_file: VarFileOption = None,
    backend: BackendOption = "local",
    state_dir: StateDirOption = None,
) -> None:
    """List (and download) the files of a job's output directories and of its stdouterr directory."""
    from batchai_spec.azure.errors import service_call

    resource, waits = _job_waits(spec, job, var, var_file, backend, state_dir)
    watch = waits.watch
    with service_call(resource.address, "reading the outputs of"):
        status = watch.job(resource.ids)
        files = waits.outputs(resource, status.output_directory_ids)
    table = Table(title=f"{resource.address} ({status.execution_state})")
    for column in ("Directory", "File", "Bytes"):
        table.add_column(column)
    for file in files:
        table.add_row(file.directory_id, file.path, f"{file.size:,}")
    console.print(table)
    if download is not None:
        with service_call(resource.address, "downloading the outputs of"):
            watch.download(files, download)
        console.print(f"Downloaded {len(files)} files to {download}")


@app.command("force-unlock")
def force_unlock(
    spec: SpecArgument,
    var: VarOption = None,
    var_file: VarFileOption = None,
    backend: BackendOption = "local",
    state_dir: StateDirOption = None,
) -> None:
    """Remove the apply lock of a spec whose holder is gone."""
    from batchai_spec.engine.lock import force_unlock as remove_lock

    session = open_session(spec, var, var_file, backend, state_dir, require_sources=False)
    holder = remove_lock(session.choice.lock_dir, session.loaded.spec.name)
    console.print("No lock to remove." if holder is None else f"Removed the lock held by {holder}.")
