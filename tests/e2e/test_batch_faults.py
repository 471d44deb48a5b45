"""Faults injected at the calls that realise the spec on Azure Batch, as test_faults.py does on Batch AI: the Batch
account and its pool through ARM (Microsoft.Batch: fault rules of service `arm`), the job, its task, their reads and
the task's files on the Batch data plane (service `batch`), the launcher and the secrets file on the share. A
transient fault is retried (a 429 after its Retry-After) and the apply succeeds; a lasting one stops it with one
message naming the address (exit 1), and the next apply converges."""

from __future__ import annotations

import time

import pytest

from tests.e2e.project import JOB_NAME, Project, read_until

pytestmark = pytest.mark.parametrize("service", ["batch"])

# step -> (service, method, regular expression searched in the request's path)
WRITES = {
    "account": ("arm", "PUT", r"(?i)/batchAccounts/e2ews$"),
    "launcher_upload": ("storage", "PUT", r"^/e2estore/e2eshare/\.batchai-spec/launcher\.py$"),
    "pool_create": ("arm", "PUT", r"(?i)/batchAccounts/e2ews/pools/gpu$"),
    "job_create": ("batch", "POST", r"/jobs$"),
    "secrets_file": ("storage", "PUT", r"^/e2estore/e2eshare/\.batchai-spec/secrets/[^/]+\.json$"),
    "task_create": ("batch", "POST", r"/jobs/[^/]+/tasks$"),
    "job_update": ("batch", "PATCH", r"/jobs/[^/]+$"),  # onAllTasksComplete, once the task is there
}
READS = {
    "account_read": ("arm", "GET", r"(?i)/batchAccounts/e2ews$"),
    "account_keys": ("arm", "POST", r"(?i)/batchAccounts/e2ews/listKeys$"),
    "pool_read": ("arm", "GET", r"(?i)/batchAccounts/e2ews/pools/gpu$"),
    "node_list": ("batch", "GET", r"/pools/gpu/nodes$"),
    "job_read": ("batch", "GET", r"/jobs/[^/]+$"),
    "task_read": ("batch", "GET", r"/jobs/[^/]+/tasks/run$"),
    "task_file_read": ("batch", "GET", r"/jobs/[^/]+/tasks/run/files/stdout\.txt$"),
}
# Steps of an apply from nothing that wait for each other: a throttled one each adds its Retry-After at least.
SEQUENTIAL = ("account", "pool_create", "job_create", "task_create", "job_update", "task_file_read")
RETRY_AFTER_S = 1
TRANSIENT = {
    "throttled": {"action": "status", "status": 429, "retry_after": RETRY_AFTER_S},
    "unavailable": {"action": "status", "status": 503},
    "dropped_connection": {"action": "drop"},
}


@pytest.mark.parametrize("fault", TRANSIENT)
def test_a_transient_fault_at_every_batch_call_is_retried(project: Project, fault: str):
    for service, method, path in (*WRITES.values(), *READS.values()):
        project.admin.add_fault(path, service=service, method=method, **TRANSIENT[fault])
    started = time.monotonic()
    run = project.cli("apply", "-y")
    elapsed = time.monotonic() - started
    assert "job.exp/train: succeeded" in run.stdout and "Finished Epoch[3 of 3]" in run.stdout
    assert project.admin.faults() == [], "every call met its fault"
    if fault == "throttled":
        assert elapsed >= len(SEQUENTIAL) * RETRY_AFTER_S, f"Retry-After not honoured: {elapsed:.1f}s"
    project.assert_converged()
    # One job, one task: a create retried after a dropped connection made no second one.
    (job,) = project.jobs()
    assert [task.id for task in project.batch.list_tasks(job.id)] == ["run"]


def test_a_failed_account_creation_stops_apply_with_one_message_and_the_next_apply_finishes(project: Project):
    service, method, path = WRITES["account"]
    project.admin.add_fault(path, service=service, method=method, action="fail_operation", code="InternalError",
                            message="Injected failure of the operation.")
    failed = project.cli("apply", "-y", expect=1)
    (error,) = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
    assert "create workspace.e2ews failed: " in error and "Injected failure of the operation. Already done: " in error
    assert error.endswith("Run the same command again to finish: completed changes are not repeated.")
    project.cli("apply", "-y")
    project.assert_converged()


@pytest.mark.parametrize("step", ["pool_create", "job_create", "task_create"])
def test_a_persistent_fault_stops_apply_with_one_message_and_apply_finishes_once_it_is_gone(project: Project, step: str):
    service, method, path = WRITES[step]
    project.admin.add_fault(path, service=service, method=method, action="status", status=409, count=None,
                            code="Conflict", message="Injected conflict.")
    failed = project.cli("apply", "-y", expect=1)
    (error,) = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
    address = "cluster.gpu" if step == "pool_create" else f"job.{JOB_NAME}"
    assert error.startswith(f"Error: create {address} failed: Conflict (HTTP 409): Injected conflict."), error
    assert "Already done: " in error and "create workspace.e2ews" in error
    project.admin.clear_faults()
    project.cli("apply", "-y")
    project.assert_converged()


def test_destroy_through_faults_is_finished_by_the_next_destroy(project: Project):
    project.cli("apply", "-y")
    project.admin.add_fault(r"(?i)/batchAccounts/e2ews/pools/gpu$", service="arm", method="DELETE",
                            action="fail_operation", code="InternalError", message="Injected failure of the deletion.")
    project.admin.add_fault(r"/jobs/[^/]+$", service="batch", method="DELETE", action="drop")
    project.admin.add_fault(r"/\.batchai-spec/launcher\.py$", service="storage", method="DELETE", action="status", status=500)
    failed = project.cli("destroy", "-y", expect=1)
    (error,) = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
    assert "delete cluster.gpu failed" in error and "Injected failure of the deletion." in error
    project.cli("destroy", "-y")
    assert project.cli("destroy", "-y").stdout.strip() == "Nothing to destroy."
    assert project.workspaces() == []


def test_a_job_deleted_while_followed_ends_apply_with_one_message(project: Project):
    gate = project.gate("job")
    apply = project.start("apply", "-y", "--json", "--var", f"job_gate={gate}")
    read, event = read_until(apply, lambda e: e["event"] == "job.state")
    assert event is not None, read
    service, method, path = READS["job_read"]
    project.admin.add_fault(path, service=service, method=method, action="status", status=404, count=None,
                            code="JobNotFound", message="The specified job does not exist.")
    failed = project.finish(apply, read, expect=1)
    assert failed.stderr.strip() == (
        f"Error: following job.{JOB_NAME} failed: JobNotFound (HTTP 404): The specified job does not exist."
    )
