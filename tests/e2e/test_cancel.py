"""`cancel`: stops a running job through the service within seconds, from a second terminal while an apply follows
the job (it takes no lock), keeps the run's logs and outputs, and leaves the spec converged; a job that already
ended, or that is not there, is left alone with one message."""

from __future__ import annotations

import time

from tests.e2e.project import BOTH_SERVICES, JOB_NAME, RESOURCES, Project, read_until

pytestmark = BOTH_SERVICES

# How each service says that a job was stopped at the user's request: Batch AI ends the job; Batch ends its task (the
# launcher's SIGTERM exit code, the task's failure) and says why the job was terminated.
TERMINATED = {
    "batchai": "JobTerminated: The job was terminated by the user",
    "batch": "TaskEnded: Task Was Ended by User Request; JobTerminated: the job was terminated at the user's request",
}
EXIT_CODE = {"batchai": None, "batch": 143}
# A cancelled run as `outputs` names it.
CANCELLED_RUN = {"batchai": "failed (JobTerminated)", "batch": "failed (TaskEnded, JobTerminated), exit code 143"}


def _ended(project: Project) -> str:
    exit_code = EXIT_CODE[project.service]
    return "failed" + ("" if exit_code is None else f", exit code {exit_code}") + f" ({TERMINATED[project.service]})"


def test_cancel_stops_a_running_job_that_an_apply_follows(project: Project):
    gate = project.gate("job")  # the job waits for it (two minutes at most): only a cancel ends it sooner
    gated = ("--var", f"job_gate={gate}")
    following = project.start("apply", "-y", "--json", *gated)
    read, running = read_until(following, lambda event: event["event"] == "job.state" and event["state"] == "running")
    assert running is not None, read
    run_id = project.job().job_output_directory_path_segment.rsplit("/", 1)[1]

    started = time.monotonic()
    cancelled = project.cli("cancel", JOB_NAME, *gated)  # the apply holds the spec's lock all along
    assert time.monotonic() - started < 20, "cancel did not stop the job within seconds"
    job = project.job()
    assert job.execution_state == "failed" and "JobTerminated" in [error.code for error in job.execution_info.errors]
    lines = cancelled.stdout.splitlines()
    assert lines[0] == f"Cancelling job.{JOB_NAME} (running)..."
    assert "==> stdout.txt (last lines) <==" in lines and "==> stderr.txt (last lines) <==" in lines
    terminated = TERMINATED[project.service]
    assert lines[-2] == f"job.{JOB_NAME} was cancelled: {_ended(project)}."
    assert lines[-1] == f"Its logs and output files are kept: `batchai-spec outputs {project.spec} {JOB_NAME}`"

    # The apply that followed the job ends with the job's state: failed (exit code 3), no traceback.
    followed = project.finish(following, read, expect=3)
    (finished,) = followed.events_of("job.finished")
    assert finished["state"] == "failed" and finished["exit_code"] == EXIT_CODE[project.service]
    assert followed.stderr.strip() == (
        f"Error: job.{JOB_NAME} was cancelled ({terminated}); "
        f"the changes were applied ({RESOURCES[project.service]} added, 0 changed, 0 replaced, 0 destroyed)"
    )

    # The run stays on the share, listed by outputs; the job is still declared, and taken as finished.
    outputs = project.cli("outputs", JOB_NAME, *gated).stdout
    assert f"Files of run {run_id} ({CANCELLED_RUN[project.service]})" in outputs
    assert "execution.log" in outputs and "model_0.dnn" not in outputs  # stopped before its first epoch
    plan = project.cli("plan", "--detailed-exitcode", *gated)
    assert "No changes." in plan.stdout
    assert project.job().job_output_directory_path_segment.endswith(run_id)

    again = project.cli("cancel", JOB_NAME, *gated)
    assert again.stdout.strip() == (
        f"job.{JOB_NAME} already ended: {_ended(project)}. Nothing to cancel."
    )


def test_cancel_of_a_finished_job_or_of_one_that_is_not_there_changes_nothing(project: Project):
    missing = project.cli("cancel", JOB_NAME, expect=1)
    assert missing.stdout == ""
    assert missing.stderr.strip() == f"Error: job.{JOB_NAME} does not exist: nothing to cancel"
    unknown = project.cli("cancel", "nosuchjob", expect=1)
    assert unknown.stderr.strip() == "Error: 'nosuchjob' is not a job of this spec (jobs: exp/train)"

    project.cli("apply", "-y")
    before = project.job()
    finished = project.cli("cancel", JOB_NAME)
    assert finished.stdout.strip() == f"job.{JOB_NAME} already ended: succeeded, exit code 0. Nothing to cancel."
    after = project.job()
    assert after.job_output_directory_path_segment == before.job_output_directory_path_segment
    assert after.execution_state == "succeeded" and after.execution_info.exit_code == 0
