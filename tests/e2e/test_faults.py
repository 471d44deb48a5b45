"""Faults injected through the emulator's admin API at every step of an apply from nothing: throttling, server
errors, dropped connections and failed long-running operations. An apply either succeeds after retries or stops
with one message naming the address (exit 1); the next apply converges, with nothing lost and nothing duplicated."""

from __future__ import annotations

import pytest

from tests.e2e.project import JOB_NAME, Project, read_until

# step -> (service, method, regular expression searched in the request's path)
WRITES = {
    "resource_group": ("arm", "PUT", r"(?i)/resourcegroups/e2e-rg$"),
    "storage_account": ("arm", "PUT", r"(?i)/storageAccounts/e2estore$"),
    "file_share": ("storage", "PUT", r"^/e2estore/e2eshare$"),
    "directory": ("storage", "PUT", r"^/e2estore/e2eshare/sample$"),
    "file_upload": ("storage", "PUT", r"^/e2estore/e2eshare/sample/train\.txt$"),
    "workspace": ("arm", "PUT", r"(?i)/workspaces/e2ews$"),
    "cluster": ("arm", "PUT", r"(?i)/clusters/gpu$"),
    "experiment": ("arm", "PUT", r"(?i)/experiments/exp$"),
    "job": ("arm", "PUT", r"(?i)/jobs/train$"),
}
READS = {
    "live_read": ("arm", "GET", r"(?i)/resourcegroups/e2e-rg$"),
    "account_keys": ("arm", "POST", r"(?i)/storageAccounts/e2estore/listKeys$"),
    "operation_poll": ("arm", "GET", r"(?i)/operationresults/"),
    "cluster_wait": ("arm", "GET", r"(?i)/clusters/gpu$"),
    "job_wait": ("arm", "GET", r"(?i)/jobs/train$"),
    "output_listing": ("arm", "POST", r"(?i)/jobs/train/listOutputFiles$"),
    "log_read": ("storage", "GET", r"/stdouterr/stdout\.txt$"),
}
# The requests that start a long-running operation (workspaces and experiments are created at once).
OPERATIONS = ("storage_account", "cluster", "job")
TRANSIENT = {
    "throttled": {"action": "status", "status": 429, "retry_after": 1},
    "server_error": {"action": "status", "status": 500},
    "dropped_connection": {"action": "drop"},
}


@pytest.mark.parametrize("fault", TRANSIENT)
def test_a_transient_fault_at_every_step_is_retried(project: Project, fault: str):
    for service, method, path in (*WRITES.values(), *READS.values()):
        project.admin.add_fault(path, service=service, method=method, **TRANSIENT[fault])
    run = project.cli("apply", "-y")
    assert "job.exp/train: succeeded" in run.stdout
    assert project.admin.faults() == [], "every step met its fault"
    project.assert_converged()


@pytest.mark.parametrize("step", OPERATIONS)
def test_a_failed_operation_stops_apply_with_one_message_and_the_next_apply_finishes(project: Project, step: str):
    service, method, path = WRITES[step]
    project.admin.add_fault(path, service=service, method=method, action="fail_operation", code="InternalError",
                            message="Injected failure of the operation.")
    failed = project.cli("apply", "-y", expect=1)
    address = {"storage_account": "storage_account.e2estore", "workspace": "workspace.e2ews",
               "cluster": "cluster.gpu", "experiment": "experiment.exp", "job": f"job.{JOB_NAME}"}[step]
    (error,) = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
    assert f"create {address} failed: " in error and "Injected failure of the operation. Already done: " in error
    assert error.endswith("Run the same command again to finish: completed changes are not repeated.")
    project.cli("apply", "-y")
    project.assert_converged()


def test_a_persistent_fault_stops_apply_with_one_message_and_apply_finishes_once_it_is_gone(project: Project):
    service, method, path = WRITES["cluster"]
    project.admin.add_fault(path, service=service, method=method, action="status", status=409, count=None,
                            code="Conflict", message="Injected conflict.")
    failed = project.cli("apply", "-y", expect=1)
    (error,) = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
    assert error.startswith("Error: create cluster.gpu failed: Conflict (HTTP 409): Injected conflict.")
    # What the cluster needs is done before it; the uploads beside it may or may not be, by timing.
    assert "Already done: " in error and "create file_share.e2eshare" in error and "create workspace." in error
    project.admin.clear_faults()
    project.cli("apply", "-y")
    project.assert_converged()


def test_destroy_through_faults_is_finished_by_the_next_destroy(project: Project):
    project.cli("apply", "-y")
    project.admin.add_fault(r"(?i)/clusters/gpu$", service="arm", method="DELETE", action="fail_operation",
                            code="InternalError", message="Injected failure of the deletion.")
    project.admin.add_fault(r"(?i)/experiments/exp$", service="arm", method="DELETE", action="drop")
    project.admin.add_fault(r"/sample/train\.py$", service="storage", method="DELETE", action="status", status=500)
    project.admin.add_fault(r"(?i)/operationresults/", service="arm", method="GET", action="status", status=429)
    failed = project.cli("destroy", "-y", expect=1)
    (error,) = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
    assert "delete cluster.gpu failed" in error and "Injected failure of the deletion." in error
    project.cli("destroy", "-y")
    assert project.cli("destroy", "-y").stdout.strip() == "Nothing to destroy."
    assert list(project.batchai.workspaces.list_by_resource_group("e2e-rg")) == []


def test_a_job_deleted_while_followed_ends_apply_with_one_message(project: Project):
    gate = project.gate("job")
    apply = project.start("apply", "-y", "--json", "--var", f"job_gate={gate}")
    read, event = read_until(apply, lambda e: e["event"] == "job.state")
    assert event is not None, read
    service, method, path = READS["job_wait"]
    project.admin.add_fault(path, service=service, method=method, action="status", status=404, count=None,
                            code="JobNotFound", message="The specified job is not found.")
    failed = project.finish(apply, read, expect=1)
    assert failed.stderr.strip() == (
        f"Error: following job.{JOB_NAME} failed: JobNotFound (HTTP 404): The specified job is not found."
    )
