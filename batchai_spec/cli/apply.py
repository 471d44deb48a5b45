"""`batchai-spec apply` and `destroy`: show the plan, confirm, execute it, follow the training jobs to their end."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from typing import TYPE_CHECKING

from batchai_spec.cli.app import app, console, console_err
from batchai_spec.cli.common import BackendOption, ParallelismOption, StateDirOption, open_session
from batchai_spec.cli.options import VarFileOption, VarOption
from batchai_spec.errors import UserError

if TYPE_CHECKING:  # imported when a command runs, not when the CLI starts
    from batchai_spec.engine.executor import Executor
    from batchai_spec.engine.waits import Waits
    from batchai_spec.graph import Resource
    from batchai_spec.plan.model import Plan
    from batchai_spec.session import Session
    from batchai_spec.ui.reporters import Reporter

EXIT_JOB_FAILED = 3

AutoApproveOption = Annotated[bool, typer.Option("--auto-approve", "-y", help="Apply without asking for confirmation.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Emit JSON-lines events instead of human output.")]
LockTimeoutOption = Annotated[
    float, typer.Option("--lock-timeout", help="Seconds to wait for another apply or destroy of this spec.")
]


def _confirm(question: str, auto_approve: bool) -> None:
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise UserError("refusing to change anything without confirmation: no terminal to ask on; pass -y to approve")
    if not typer.confirm(question, default=False):
        raise UserError("cancelled; nothing was changed")


def _show_plan(plan: Plan, reporter: Reporter, json_lines: bool) -> None:
    from batchai_spec.plan.render_text import render_text

    if json_lines:
        reporter.emit("plan", plan=plan.to_json())
    else:
        console.print(render_text(plan))


@app.command()
def apply(
    spec: Annotated[Path, typer.Argument(help="The spec file, or a plan saved with `plan --out`.", show_default=False)],
    var: VarOption = None,
    var_file: VarFileOption = None,
    auto_approve: AutoApproveOption = False,
    target: Annotated[Optional[list[str]], typer.Option("--target", metavar="ADDRESS", help="Apply only this address and what it needs.")] = None,
    replace: Annotated[Optional[list[str]], typer.Option("--replace", metavar="ADDRESS", help="Replace this resource (re-run a job).")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once the jobs are submitted.")] = False,
    download: Annotated[Optional[Path], typer.Option("--download", help="Download the jobs' output files here.")] = None,
    cluster_timeout: Annotated[float, typer.Option("--cluster-timeout", help="Seconds to wait for a cluster's nodes.")] = 1800,
    job_timeout: Annotated[float, typer.Option("--job-timeout", help="Seconds to follow a job before returning.")] = 7 * 24 * 3600,
    lock_timeout: LockTimeoutOption = 0,
    json_lines: JsonOption = False,
    backend: BackendOption = "local",
    state_dir: StateDirOption = None,
    parallelism: ParallelismOption = 10,
) -> None:
    """Make the live state match the spec, then run its training jobs to their end."""
    from batchai_spec.plan.saved import check_still_valid, is_saved_plan, load_saved_plan
    from batchai_spec.ui.reporters import make_reporter

    saved = load_saved_plan(spec) if is_saved_plan(spec) else None
    if saved is not None:
        spec_path, replace, target = saved.spec_path, list(saved.replace), list(saved.only)
    else:
        spec_path = spec
    session = open_session(spec_path, var, var_file, backend, state_dir, parallelism)
    reporter = make_reporter(console, json_lines=json_lines)
    try:
        with _locked(session, "apply", lock_timeout):
            plan, observed = session.plan(replace=replace or (), only=target or ())
            if saved is not None:
                check_still_valid(saved, plan, spec)
            _show_plan(plan, reporter, json_lines)
            executor = _executor(session, plan, observed, reporter, cluster_timeout, job_timeout, parallelism)
            if plan.has_changes:
                _confirm("Apply these changes?", auto_approve or saved is not None)
                executor.run()
        jobs = [session.graph.resources[address] for address in _jobs_to_follow(plan, observed, executor.created_jobs)]
        failed = _follow_jobs(executor.waits, jobs, reporter, no_wait=no_wait, download=download, spec=spec_path)
    finally:
        reporter.close()
    if not json_lines and plan.has_changes:
        console.print(f"Apply complete: {plan.summary().removeprefix('Plan: ')}")
    if failed:
        raise UserError(f"{', '.join(failed)} failed (see the end of stderr above)", exit_code=EXIT_JOB_FAILED)


@app.command()
def destroy(
    spec: Annotated[Path, typer.Argument(help="The spec file.", show_default=False)],
    var: VarOption = None,
    var_file: VarFileOption = None,
    auto_approve: AutoApproveOption = False,
    lock_timeout: LockTimeoutOption = 0,
    json_lines: JsonOption = False,
    backend: BackendOption = "local",
    state_dir: StateDirOption = None,
    parallelism: ParallelismOption = 10,
) -> None:
    """Delete what the spec created, children first; nothing it did not create."""
    from batchai_spec.plan.model import Action
    from batchai_spec.ui.reporters import make_reporter

    session = open_session(spec, var, var_file, backend, state_dir, parallelism, require_sources=False)
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
            _confirm("Destroy these resources?", auto_approve)
            _executor(session, plan, observed, reporter, 1800, 3600, parallelism).run()
    finally:
        reporter.close()
    if not json_lines:
        console.print(f"Destroy complete: {plan.count(Action.DELETE)} destroyed.")


def _locked(session: Session, command: str, timeout: float):
    """The spec's lock for this command, taken on entering `with` (waiting up to `timeout` seconds, and saying so)."""
    from batchai_spec.engine.lock import SpecLock

    def say_waiting(holder: str) -> None:
        console_err.print(f"Waiting up to {timeout:.0f}s for the lock held by {holder}…", soft_wrap=True, markup=False)

    return SpecLock(session.choice.lock_dir, session.loaded.spec.name, command, timeout=timeout, on_wait=say_waiting)


def _executor(session, plan, observed, reporter, cluster_timeout, job_timeout, parallelism) -> Executor:
    from batchai_spec.azure.changes import Changes
    from batchai_spec.azure.watch import Watch
    from batchai_spec.engine.executor import Executor
    from batchai_spec.engine.waits import Timeouts, Waits

    changes = Changes(session.clients, session.graph.spec_name, observed)
    waits = Waits(Watch(session.clients), reporter, Timeouts(cluster=cluster_timeout, job=job_timeout))
    return Executor(plan, session.graph, observed, changes, waits, reporter, parallelism=parallelism)


def _jobs_to_follow(plan: Plan, observed: dict, created: list[str]) -> list[str]:
    """The jobs this apply submitted, and those of the plan an earlier apply (interrupted, or --no-wait) left
    queued or running: applying again follows them to their end instead of saying nothing."""
    from batchai_spec.plan.model import Action

    left_running = [
        change.address
        for change in plan.changes
        if change.kind == "job"
        and change.action is Action.NO_OP
        and observed[change.address].meta.get("execution_state") in ("queued", "running")
    ]
    return [*created, *left_running]


def _follow_jobs(
    waits: Waits, jobs: list[Resource], reporter: Reporter, *, no_wait: bool, download: Path | None, spec: Path
) -> list[str]:
    if not jobs:
        return []
    if no_wait:
        for job in jobs:
            reporter.emit("message", text=f"{job.address}: submitted; follow it with `batchai-spec logs {spec} {job.ids['experiment']}/{job.ids['job']} -f`")
        return []
    from batchai_spec.azure.errors import service_call
    from batchai_spec.ui.reporters import service_errors

    failed = []
    for job in jobs:
        with service_call(job.address, "following"):
            status = waits.follow_job(job, stream_logs=len(jobs) == 1)
            files = waits.outputs(job, status.output_directory_ids)
            for file in files:
                reporter.emit("message", text=f"  {job.address}: {file.directory_id}/{file.path} ({file.size:,} bytes)")
            if download is not None:
                waits.watch.download(files, download / job.ids["experiment"] / job.ids["job"])
                reporter.emit("message", text=f"{job.address}: {len(files)} output files downloaded to {download / job.ids['experiment'] / job.ids['job']}")
            if status.execution_state != "succeeded":
                failed.append(job.address)
                errors = service_errors(status.errors)
                tail = waits.stderr_tail(job)
                reporter.emit("message", text=f"{job.address} failed ({errors or 'no error details'}); end of stderr:\n{tail}")
    return failed
