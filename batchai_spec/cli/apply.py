"""`batchai-spec apply` and `destroy`: show the plan, confirm, execute it, follow the training jobs to their end."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from typing import TYPE_CHECKING

from batchai_spec.cli.app import app, console, console_err, examples
from batchai_spec.cli.common import EndpointOption, ParallelismOption, ServiceOption, StateDirOption, open_session
from batchai_spec.cli.options import (
    ClusterTimeoutOption, Duration, FormatOption, JobTimeoutOption, JsonOption, LockTimeoutOption, SpecArgument,
    SpecOrPlanArgument, VarFileOption, VarOption, wants_json,
)
from batchai_spec.durations import elapsed, format_duration
from batchai_spec.errors import UserError

if TYPE_CHECKING:  # imported when a command runs, not when the CLI starts
    from batchai_spec.engine.executor import Executor
    from batchai_spec.engine.waits import Waits
    from batchai_spec.graph import Resource
    from batchai_spec.plan.model import Plan
    from batchai_spec.session import Session
    from batchai_spec.ui.reporters import Reporter

EXIT_JOB_FAILED = 3

AutoApproveOption = Annotated[bool, typer.Option("--auto-approve", "-y", help="Go ahead without asking for confirmation.")]


def _confirm(plan: Plan, reporter: Reporter, auto_approve: bool, json_lines: bool) -> None:
    """Terraform's question: what will happen, what it stops or deletes, then `Enter a value:`; only yes/y goes on.
    Asked on stderr when stdout carries JSON lines or goes to a file or a pipe: the question is for a person."""
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise UserError("refusing to change anything without confirmation: no terminal to ask on; pass -y to approve")
    reporter.close()  # a live display, had one started, would draw over the question
    if plan.operation == "destroy":
        question = f"Do you really want to destroy the resources of {plan.spec_name}?"
        consequence = "batchai-spec will destroy the resources described above. There is no undo."
    else:
        question = "Do you want to perform these actions?"
        consequence = f"batchai-spec will perform the actions described above on {plan.where}."
    lines = [question, f"  {consequence}", *(f"  Note: {note}." for note in plan.notes()), "  Only 'yes' or 'y' will be accepted to approve.", ""]
    asking = console if console.is_terminal and not json_lines else console_err
    asking.print("\n".join(lines), markup=False, highlight=False)
    try:
        answer = asking.input("  Enter a value: ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("yes", "y"):
        verb = "Destroy" if plan.operation == "destroy" else "Apply"
        raise UserError(f"{verb} cancelled; nothing was changed")


def _show_plan(plan: Plan, reporter: Reporter, json_lines: bool) -> None:
    from batchai_spec.plan.render_text import render_text

    if json_lines:
        reporter.emit("plan", plan=plan.to_json())
    else:
        console.print(render_text(plan))


@app.command(epilog=examples(
    ("Apply without asking, with a template variable:", "batchai-spec apply specs/mnist-cntk.yaml -y --var epochs=2"),
    ("Apply a plan saved and reviewed before:", "batchai-spec plan spec.yaml --out plan.json && batchai-spec apply plan.json"),
    ("Re-run one job, following it for at most 2 hours:", "batchai-spec apply spec.yaml -y --replace job.quickstart/myjob --job-timeout 2h"),
    ("Submit the jobs and return; JSON-lines events for a program:", "batchai-spec apply spec.yaml -y --no-wait --format json"),
))
def apply(
    spec: SpecOrPlanArgument,
    var: VarOption = None,
    var_file: VarFileOption = None,
    auto_approve: AutoApproveOption = False,
    target: Annotated[Optional[list[str]], typer.Option("--target", metavar="ADDRESS", help="Apply only this address and what it needs.")] = None,
    replace: Annotated[Optional[list[str]], typer.Option("--replace", metavar="ADDRESS", help="Replace this resource (re-run a job).")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once the jobs are submitted.")] = False,
    download: Annotated[Optional[Path], typer.Option("--download", metavar="DIR", help="Download the jobs' output files here.")] = None,
    cluster_timeout: ClusterTimeoutOption = Duration(1800),
    job_timeout: JobTimeoutOption = Duration(7 * 24 * 3600),
    lock_timeout: LockTimeoutOption = Duration(0),
    output_format: FormatOption = None,
    json_lines: JsonOption = False,
    endpoint: EndpointOption = "local",
    service: ServiceOption = None,
    state_dir: StateDirOption = None,
    parallelism: ParallelismOption = 10,
) -> None:
    """Make the live state match the spec, then run its training jobs to their end."""
    json_lines = wants_json(json_lines, output_format)
    from batchai_spec.cli.options import parse_vars
    from batchai_spec.spec import read_var_file
    from batchai_spec.plan.saved import (
        check_service, check_still_valid, check_withheld_given, is_saved_plan, load_saved_plan,
    )
    from batchai_spec.ui.reporters import make_reporter

    saved = load_saved_plan(spec) if is_saved_plan(spec) else None
    if saved is not None:
        given = [*parse_vars(var), *(name for file in var_file or () for name in read_var_file(file))]
        check_withheld_given(saved, given, spec)
        spec_path, replace, target = saved.spec_path, list(saved.replace), list(saved.only)
    else:
        spec_path = spec
    if saved is not None:
        check_service(saved, service, spec)
    session = open_session(
        spec_path, var, var_file, endpoint, state_dir, parallelism, saved_variables=saved.variables if saved else None,
        service=service or (saved.service if saved else None),
    )
    reporter = make_reporter(console, json_lines=json_lines)
    try:
        # The lock covers following the jobs too: a second apply or destroy must not delete a job someone follows.
        with _locked(session, "apply", lock_timeout) as lock:
            plan, observed = session.plan(replace=replace or (), only=target or ())
            if saved is not None:
                check_still_valid(saved, plan, spec)
            _show_plan(plan, reporter, json_lines)
            executor = _executor(session, plan, observed, reporter, cluster_timeout, job_timeout, parallelism)
            if plan.has_changes:
                _confirm(plan, reporter, auto_approve or saved is not None, json_lines)
                executor.run()
            jobs = [session.graph.resources[address] for address in executor.created_runs]
            earlier = [session.graph.resources[address] for address in _left_running(plan, observed)]
            if jobs or earlier:
                lock.note(f"following {', '.join(job.address for job in [*jobs, *earlier])}")
            for job in earlier:
                started = observed[job.address].run.started
                ago = f", started {elapsed(time.time() - started)} ago" if started else ""
                reporter.emit("message", text=f"{job.address}: following the run an earlier apply submitted{ago}")
            failed = _follow_jobs(
                session, executor.waits, [*jobs, *earlier], reporter, no_wait=no_wait, download=download, var_files=var_file
            )
    finally:
        reporter.close()
    if failed:
        # Terraform's way: the changes were made, but the apply is not complete; no success line before the error.
        done = f"; the changes were applied ({_resources(plan)})" if plan.has_changes else ""
        raise UserError(f"{'; '.join(failed)}{done}", exit_code=EXIT_JOB_FAILED)
    if not json_lines and plan.has_changes:
        console.print(f"Apply complete! Resources: {_resources(plan)}.", style="bold green")


def _resources(plan: Plan) -> str:
    from batchai_spec.plan.model import Action

    return (
        f"{plan.count(Action.CREATE)} added, {plan.count(Action.UPDATE)} changed, "
        f"{plan.count(Action.REPLACE)} replaced, {plan.count(Action.DELETE)} destroyed"
    )


@app.command(epilog=examples(
    ("Show what would be deleted, then ask:", "batchai-spec destroy specs/mnist-cntk.yaml"),
    ("Without asking, waiting up to 5 minutes for a running apply:", "batchai-spec destroy spec.yaml -y --lock-timeout 5m"),
    ("JSON-lines events for a program:", "batchai-spec destroy spec.yaml -y --format json"),
))
def destroy(
    spec: SpecArgument,
    var: VarOption = None,
    var_file: VarFileOption = None,
    auto_approve: AutoApproveOption = False,
    lock_timeout: LockTimeoutOption = Duration(0),
    output_format: FormatOption = None,
    json_lines: JsonOption = False,
    endpoint: EndpointOption = "local",
    service: ServiceOption = None,
    state_dir: StateDirOption = None,
    parallelism: ParallelismOption = 10,
) -> None:
    """Delete what the spec created, children first; nothing it did not create."""
    json_lines = wants_json(json_lines, output_format)
    from batchai_spec.plan.model import Action
    from batchai_spec.ui.reporters import make_reporter

    session = open_session(spec, var, var_file, endpoint, state_dir, parallelism, require_sources=False, service=service)
    reporter = make_reporter(console, json_lines=json_lines)
    try:
        with _locked(session, "destroy", lock_timeout):
            plan, observed = session.destroy_plan()
            for change in plan.changes:
                if change.action is Action.NO_OP:
                    reporter.emit("message", text=f"{change.address}: {'; '.join(change.reasons)}")
            if not plan.has_changes:
                if json_lines:
                    reporter.emit("message", text="Nothing to destroy.")
                else:
                    console.print("Nothing to destroy.")
                return
            _show_plan(plan, reporter, json_lines)
            _confirm(plan, reporter, auto_approve, json_lines)
            _executor(session, plan, observed, reporter, 1800, 3600, parallelism).run()
    finally:
        reporter.close()
    if not json_lines:
        console.print(f"Destroy complete! Resources: {plan.count(Action.DELETE)} destroyed.", style="bold green")


def _locked(session: Session, command: str, timeout: float):
    """The spec's lock for this command, taken on entering `with` (waiting up to `timeout` seconds, and saying so)."""
    from batchai_spec.engine.lock import SpecLock

    def say_waiting(holder: str) -> None:
        console_err.print(f"Waiting up to {format_duration(timeout)} for the lock held by {holder}…", soft_wrap=True, markup=False)

    return SpecLock(session.choice.lock_dir, session.loaded.spec.name, command, timeout=timeout, on_wait=say_waiting)


def _executor(session, plan, observed, reporter, cluster_timeout, job_timeout, parallelism) -> Executor:
    from batchai_spec.engine.executor import Executor
    from batchai_spec.engine.waits import Timeouts, Waits

    waits = Waits(session.connection, reporter, Timeouts(cluster=cluster_timeout, job=job_timeout))
    return Executor(plan, session.graph, observed, session.connection, waits, reporter, parallelism=parallelism)


def _left_running(plan: Plan, observed: dict) -> list[str]:
    """The runs of the plan an earlier apply (interrupted, or --no-wait) left queued or running: applying again
    follows them to their end instead of saying nothing."""
    from batchai_spec.plan.model import Action

    return [
        change.address
        for change in plan.changes
        if change.action is Action.NO_OP
        and observed[change.address].run is not None
        and observed[change.address].run.in_flight
    ]


def _follow_jobs(
    session: Session,
    waits: Waits,
    jobs: list[Resource],
    reporter: Reporter,
    *,
    no_wait: bool,
    download: Path | None,
    var_files: list[Path] | None,
) -> list[str]:
    """Each job to its end: its logs (one job) or states (several), its output files and where they are; what
    failed, said once."""
    if not jobs:
        return []
    spec = _same_spec(session, var_files)
    if no_wait:
        for job in jobs:
            reporter.emit("message", text=f"{job.address}: submitted; follow it with `batchai-spec logs {spec} {_name(job)} -f`")
        return []
    from batchai_spec.services.azure.errors import service_call
    from batchai_spec.ui.reporters import service_errors

    stream_logs = len(jobs) == 1
    failed = []
    for job in jobs:
        with service_call(job.address, "following"):
            status = waits.follow_job(job, stream_logs=stream_logs)
            files = waits.outputs(job, status.output_directory_ids)
            for file in files:
                reporter.emit("message", text=f"  {job.address}: {file.directory_id}/{file.path} ({file.size:,} bytes)")
            for line in _where_outputs_are(session, job, status.run_id):
                reporter.emit("message", text=line)
            if download is not None:
                waits.watch.download(files, download / job.ids["experiment"] / job.ids["job"])
                reporter.emit("message", text=f"{job.address}: {len(files)} output files downloaded to {download / job.ids['experiment'] / job.ids['job']}")
            else:
                reporter.emit("message", text=f"Download them with: batchai-spec outputs {spec} {_name(job)} --download DIR")
            if status.execution_state != "succeeded":
                errors = service_errors(status.errors)
                if any(error.get("code") == "JobTerminated" for error in status.errors):
                    failed.append(f"{job.address} was cancelled ({errors})")
                    continue
                exit_code = "" if status.exit_code is None else f" with exit code {status.exit_code}"
                summary = f"{job.address} failed{exit_code}" + (f" ({errors})" if errors else "")
                stderr = status.failure_stderr  # another node's, when that node's process failed the job
                if stream_logs and stderr == status.log_files[1]:  # it was shown as it was written
                    failed.append(f"{summary}; its stderr is above")
                else:
                    tail = waits.watch.tail(job.ids, stderr) or ""
                    named = "stderr" if stderr == "stderr.txt" else stderr
                    reporter.emit("message", text=f"{summary}; end of {named}:\n{tail}")
                    failed.append(f"{summary}; the end of its {named} is above")
    return failed


def _same_spec(session: Session, var_files: list[Path] | None) -> str:
    """`SPEC` and the options that reach what this command reached, for the commands a hint names, so that they
    work as they are copied: its variables (`--var NAME=...` for one that feeds a secret: the value is not shown),
    its var files, its state dir or endpoint, its service when the spec's `service:` does not say it."""
    import shlex

    from batchai_spec.services.azure.endpoint import DEFAULT_STATE_DIR
    from batchai_spec.plan.saved import feeds_a_secret
    from batchai_spec.spec import read_var_file

    secrets = session.secret_values()
    words = [str(session.loaded.path)]
    for file in var_files or ():
        words += ["--var-file", str(file)]
    from_files = {name for file in var_files or () for name in read_var_file(file)}
    for name, value in session.loaded.variables.items():
        if name not in from_files:
            words += ["--var", f"{name}={'...' if feeds_a_secret(value, secrets) else value}"]
    if session.service_name != session.loaded.spec.service:  # --service (or a saved plan's) chose another
        words += ["--service", session.service_name]
    choice = session.choice
    if choice.kind != "local":
        words += ["--endpoint", choice.kind]
    elif choice.state_dir != Path(DEFAULT_STATE_DIR).resolve():
        words += ["--state-dir", str(choice.state_dir)]
    return shlex.join(words)


def _name(job: Resource) -> str:
    return f"{job.ids['experiment']}/{job.ids['job']}"


def _where_outputs_are(session: Session, job: Resource, run_id: str | None) -> list[str]:
    """Each output directory of the run (and its stdout/stderr) as a place on a file share."""
    from batchai_spec.services.azure.runs import spec_layout
    from batchai_spec.statuses import STDOUTERR

    layout = spec_layout(session.graph, job, session.endpoint.subscription_id)
    if run_id is None or not layout.directories:
        return []
    lines = [f"{job.address}: outputs of run {run_id} on the file share:"]
    for directory in sorted(layout.directories, key=lambda directory: directory.directory_id == STDOUTERR):  # models first
        location = directory.prefix.join(layout.segment, run_id, directory.inside)
        lines.append(f"  {directory.directory_id}: {location.share}/{location.path}")
    return lines
