"""Day-2 commands: `status`, `logs`, `outputs`, `cancel`, `force-unlock`."""

from __future__ import annotations

import json
import time
from datetime import timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from typing import TYPE_CHECKING

from batchai_spec.cli.app import app, console
from batchai_spec.cli.common import EndpointOption, ServiceOption, StateDirOption, open_session
from batchai_spec.cli.options import FormatOption, JsonOption, SpecArgument, VarFileOption, VarOption, wants_json
from batchai_spec.cli.options import Duration, parse_duration
from batchai_spec.errors import UserError

if TYPE_CHECKING:  # imported when a command runs, not when the CLI starts
    from batchai_spec.services.azure.runs import JobRun
    from batchai_spec.statuses import JobStatus
    from batchai_spec.engine.waits import Waits
    from batchai_spec.graph import Resource
    from batchai_spec.observed import Observed
    from batchai_spec.session import Session

JobArgument = Annotated[str, typer.Argument(metavar="JOB", help="The job: EXPERIMENT/JOB, or JOB when its name is unique.", show_default=False)]


def _job(session: Session, name: str) -> Resource:
    jobs = session.graph.by_kind("job")
    matches = [job for job in jobs if f"{job.ids['experiment']}/{job.ids['job']}" == name or job.ids["job"] == name]
    if len(matches) != 1:
        known = ", ".join(f"{j.ids['experiment']}/{j.ids['job']}" for j in jobs[:10]) or "none"
        reason = "is ambiguous" if matches else "is not a job of this spec"
        raise UserError(f"{name!r} {reason} (jobs: {known})")
    return matches[0]


def _open_job(spec, job, var, var_file, endpoint, state_dir, service=None) -> tuple[Session, Resource, Waits]:
    """The session of a day-2 command, the job it names, and the reads that follow that job."""
    from batchai_spec.engine.waits import Waits
    from batchai_spec.ui.reporters import PlainReporter

    session = open_session(spec, var, var_file, endpoint, state_dir, require_sources=False, service=service)
    return session, _job(session, job), Waits(session.connection, PlainReporter())


def _print_table(title: str | None, headers: tuple[str, ...], rows: list[list[str]]) -> None:
    """A table with a box on a terminal; piped, plain columns two spaces apart (no box, no wrapped cells), for
    grep and awk. The first column folds on a narrow terminal."""
    if console.is_terminal:
        table = Table(title=Text(title) if title else None)  # Text: names with [brackets] are not markup
        for index, header in enumerate(headers):
            table.add_column(header, overflow="fold" if index == 0 else "ellipsis")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        console.print(table)
        return
    if title:
        console.out(title, highlight=False)
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    for line in (headers, *rows):
        console.out("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip(), highlight=False)


@app.command()
def status(
    spec: SpecArgument,
    var: VarOption = None,
    var_file: VarFileOption = None,
    endpoint: EndpointOption = "local",
    service: ServiceOption = None,
    state_dir: StateDirOption = None,
    output_format: FormatOption = None,
    json_lines: JsonOption = False,
) -> None:
    """A live table of every resource of the spec: its state, node counts, job states and exit codes.

    With --format json: one JSON object per resource and line instead of the table.
    """
    json_lines = wants_json(json_lines, output_format)
    session = open_session(spec, var, var_file, endpoint, state_dir, require_sources=False, service=service)
    observed = session.observe()
    addresses = list(session.graph.resources) + sorted(a for a in observed if a not in session.graph.resources)
    rows = []
    for address in addresses:
        live = observed[address]
        if address not in session.graph.resources and not (live.exists and live.owned):
            continue
        state, details = session.graph.registry[live.kind].status(live) if live.exists else ("missing", "")
        rows.append({"address": address, "state": state, "details": details, "exists": live.exists, "owned": live.owned})
    if json_lines:
        for row in rows:
            console.out(json.dumps(row), highlight=False)
        return
    cells = [
        [row["address"], row["state"], row["details"], "yes" if row["owned"] else ("no" if row["exists"] else "")]
        for row in rows
    ]
    from batchai_spec.services import TITLES

    where = f"{session.endpoint.description} ({TITLES[session.service_name]})"
    _print_table(f"{session.graph.spec_name} on {where}", ("Address", "State", "Details", "Owned"), cells)


@app.command()
def logs(
    spec: SpecArgument,
    job: JobArgument,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming until the job ends.")] = False,
    var: VarOption = None,
    var_file: VarFileOption = None,
    endpoint: EndpointOption = "local",
    service: ServiceOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Print a job's stdout.txt and stderr.txt (with -f, as they grow, until the job ends).

    A job that runs one process per node (PyTorch, TensorFlow, Caffe2 on several nodes) shows its first node's."""
    from batchai_spec.services.azure.errors import service_call
    from batchai_spec.statuses import STDOUTERR

    _, resource, waits = _open_job(spec, job, var, var_file, endpoint, state_dir, service)
    watch = waits.watch
    with service_call(resource.address, "reading the logs of"):
        if follow:
            waits.follow_job(resource, stream_logs=True)
            return
        status = watch.job(resource.ids)
        files = {f.path: f for f in watch.output_files(resource.ids, STDOUTERR)}
        for name in status.log_files:
            if name in files:
                console.out(watch.read_from(files[name].url, 0).decode(errors="replace"), end="", highlight=False)


@app.command()
def outputs(
    spec: SpecArgument,
    job: JobArgument,
    download: Annotated[Optional[Path], typer.Option("--download", metavar="DIR", help="Download the files into this directory.")] = None,
    var: VarOption = None,
    var_file: VarFileOption = None,
    endpoint: EndpointOption = "local",
    service: ServiceOption = None,
    state_dir: StateDirOption = None,
    run: Annotated[
        Optional[str],
        typer.Option("--run", metavar="ID", help="The run to list and download: its id (a uuid) or a unique prefix of it. Default: the newest."),
    ] = None,
) -> None:
    """A job's runs, newest first, and the files of one of them (--download copies them).

    Every run still on the share is listed: a replaced job's earlier runs stay there, each in its own directory.
    The files are those of the newest run (the live job's), or of --run: its output directories and stdouterr.
    """
    from batchai_spec.services.azure.errors import service_call
    from azure.core.exceptions import ResourceNotFoundError

    from batchai_spec.services.azure import runs as job_runs

    session, resource, waits = _open_job(spec, job, var, var_file, endpoint, state_dir, service)
    clients, watch = session.clients, waits.watch
    layout = job_runs.spec_layout(session.graph, resource, session.endpoint.subscription_id)
    with service_call(resource.address, "reading the outputs of"):
        try:
            live, missing = watch.job(resource.ids), None
        except ResourceNotFoundError as error:  # the service's answer, if no run is left on the shares either
            live, missing = None, error
        found = job_runs.list_runs(clients, layout, live)
        if not found and missing is not None:
            raise missing
        selected = job_runs.select_run(found, run, resource.address)
        if selected.live:
            listed = waits.outputs(resource, live.output_directory_ids)
        else:
            shared = job_runs.run_files(clients, layout, selected.run_id)
    files = listed if selected.live else shared
    _print_table(
        f"Runs of {resource.address}, newest first",
        ("Run", "Started", "State", "Exit code", "Bytes"),
        [[r.run_id, _when(r), _run_state(r), _exit_code(r), f"{r.size:,}"] for r in found],
    )
    if layout.elsewhere:
        console.out(f"(Runs are looked for on the spec's shares only: {', '.join(layout.elsewhere)} is on none.)", highlight=False)
    console.out("", highlight=False)
    ended = f", exit code {selected.exit_code}" if selected.exit_code is not None else ""
    _print_table(
        f"Files of run {selected.run_id} ({_run_state(selected)}{ended})",
        ("Directory", "File", "Bytes"),
        [[file.directory_id, file.path, f"{file.size:,}"] for file in files],
    )
    if download is not None:
        with service_call(resource.address, "downloading the outputs of"):
            if selected.live:
                watch.download(listed, download)
            else:
                job_runs.download_run(clients, shared, download)
        console.out(f"Downloaded {len(files)} files to {download}", highlight=False)


def _when(run: JobRun) -> str:
    """When a run started; for a run the tool has no record of, when its directory was made."""
    moment = run.start if run.known else run.directory_time
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def _run_state(run: JobRun) -> str:
    if not run.known:
        return "unknown"
    return (run.state or "?") + (f" ({', '.join(run.errors)})" if run.errors else "")


def _exit_code(run: JobRun) -> str:
    if not run.known:
        return "unknown"
    return "-" if run.exit_code is None else str(run.exit_code)


def _ended(status: JobStatus) -> str:
    from batchai_spec.ui.reporters import service_errors

    exit_code = f", exit code {status.exit_code}" if status.exit_code is not None else ""
    errors = f" ({service_errors(status.errors)})" if status.errors else ""
    return f"{status.execution_state}{exit_code}{errors}"


@app.command()
def cancel(
    spec: SpecArgument,
    job: JobArgument,
    timeout: Annotated[
        float,
        typer.Option("--timeout", metavar="DURATION", parser=parse_duration, help="How long to wait for the job to stop: 90s, 5m... or seconds."),
    ] = Duration(300),
    var: VarOption = None,
    var_file: VarFileOption = None,
    endpoint: EndpointOption = "local",
    service: ServiceOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Stop a queued or running job; its logs and outputs are kept.

    The service terminates the run; the end of its stdout and stderr and its final state are printed. The job
    stays declared: the next apply takes the run as finished. Takes no lock, so it can stop the job that an apply
    is following.
    """
    from batchai_spec.engine.retry import with_retries
    from batchai_spec.engine.waits import FINISHED, Backoff
    from batchai_spec.services.azure.errors import service_call

    session, resource, waits = _open_job(spec, job, var, var_file, endpoint, state_dir, service)
    watch, ids, address = waits.watch, resource.ids, resource.address

    def retried(call):
        return with_retries(call, session.connection)

    with service_call(address, "cancelling"):
        status = retried(lambda: watch.job_or_none(ids))
        if status is None:
            raise UserError(f"{address} does not exist: nothing to cancel")
        if status.execution_state in FINISHED:
            console.out(f"{address} already ended: {_ended(status)}. Nothing to cancel.", highlight=False)
            return
        console.out(f"Cancelling {address} ({status.execution_state})...", highlight=False)
        deadline = time.monotonic() + timeout
        poller = retried(lambda: watch.begin_terminate(ids))
        poller.result(timeout=max(0.1, deadline - time.monotonic()))  # the operation ends once the job has stopped
        backoff = Backoff(first=0.1, most=2.0)
        while (status := retried(lambda: watch.job_or_none(ids))) is not None and status.execution_state not in FINISHED:
            if time.monotonic() > deadline:
                raise UserError(
                    f"{address} is still {status.execution_state} after {timeout:.0f}s; the service goes on stopping it: "
                    f"see `batchai-spec status {spec}`"
                )
            backoff.wait()
        if status is None:
            raise UserError(f"{address} was deleted while it was being cancelled")
        for name in status.log_files:
            tail = retried(lambda n=name: watch.tail(ids, n))
            if tail is not None:
                console.out(f"==> {name} (last lines) <==", highlight=False)
                console.out(tail or "(empty)", highlight=False)
    cancelled = status.execution_state != "succeeded" and (
        status.exit_code is None or any(error.get("code") == "JobTerminated" for error in status.errors)
    )
    if cancelled:
        console.out(f"{address} was cancelled: {_ended(status)}.", highlight=False)
    else:
        console.out(f"{address} ended before it was cancelled: {_ended(status)}.", highlight=False)
    console.out(f"Its logs and output files are kept: `batchai-spec outputs {spec} {ids['experiment']}/{ids['job']}`", highlight=False)


@app.command("force-unlock")
def force_unlock(
    spec: SpecArgument,
    var: VarOption = None,
    var_file: VarFileOption = None,
    endpoint: EndpointOption = "local",
    service: ServiceOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Remove the apply lock of a spec whose holder is gone."""
    from batchai_spec.engine.lock import force_unlock as remove_lock

    session = open_session(spec, var, var_file, endpoint, state_dir, require_sources=False, service=service)
    holder = remove_lock(session.choice.lock_dir, session.loaded.spec.name)
    console.print("No lock to remove." if holder is None else f"Removed the lock held by {holder}.")
