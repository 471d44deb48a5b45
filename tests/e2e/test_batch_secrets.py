"""Secrets on Azure Batch: the job's secrets and the setup task's reach the job and the start task, and none is in
what the service returns (azure-mgmt-batch and azure-batch: the account, the pool through ARM and the data plane, the
job, its task and its environment, the nodes), where Batch would show them to anyone who can read the account."""

from __future__ import annotations

import json

import pytest

from tests.e2e.project import RESOURCE_GROUP, SECRETS, WORKSPACE, Project

pytestmark = pytest.mark.parametrize("service", ["batch"])


def _everything_batch_returns(project: Project) -> str:
    """Every answer of the service about the spec's account, its pools, jobs, tasks and nodes, as JSON text."""
    mgmt, batch = project.batch_mgmt, project.batch
    answers = [
        mgmt.batch_account.get(RESOURCE_GROUP, WORKSPACE).as_dict(),
        *(pool.as_dict() for pool in mgmt.pool.list_by_batch_account(RESOURCE_GROUP, WORKSPACE)),
        mgmt.pool.get(RESOURCE_GROUP, WORKSPACE, "gpu").as_dict(),
        *(pool.as_dict() for pool in batch.list_pools()),
        batch.get_pool("gpu").as_dict(),
        *(node.as_dict() for node in batch.list_nodes("gpu")),
    ]
    for job in batch.list_jobs():
        answers += [job.as_dict(), batch.get_job(job.id).as_dict()]
        for task in batch.list_tasks(job.id):
            answers += [task.as_dict(), batch.get_task(job.id, task.id).as_dict()]
    assert len(answers) >= 9
    return json.dumps(answers, default=str)


def test_secrets_reach_the_job_and_the_start_task_and_no_batch_answer_holds_them(project: Project):
    run = project.cli("apply", "-y", "--var", "setup=secret")
    assert "job secret received: True" in run.stdout
    assert project.share_file("setup-secret.txt") == b"received\n", "the start task got its secret"
    task = project.batch.get_task(project.job().id, "run")
    assert "E2E_JOB_SECRET" not in {setting.name for setting in task.environment_settings or ()}

    returned = _everything_batch_returns(project)
    for name in ("E2E_ADMIN_PASSWORD", "E2E_JOB_SECRET"):  # the pool's admin password, the setup's and job's secrets
        assert SECRETS[name] not in returned, f"{name} is in what Batch returns"
    storage_keys = project.storage_client.storage_accounts.list_keys(RESOURCE_GROUP, "e2estore").keys
    assert all(key.value not in returned for key in storage_keys), "a mount's storage account key is returned"
    project.cli("plan", "--var", "setup=secret", "--detailed-exitcode")


def test_the_container_registry_password_is_in_no_batch_answer(project: Project):
    """The job's registry goes with its pool's container configuration, whose passwords Batch keeps to itself (a
    task's own registry password would be in GET task)."""
    project.cli("apply", "-y")
    registries = project.batch_mgmt.pool.get(RESOURCE_GROUP, WORKSPACE, "gpu").as_dict()["properties"][
        "deploymentConfiguration"]["virtualMachineConfiguration"]["containerConfiguration"]["containerRegistries"]
    assert registries == [{"registryServer": "example.azurecr.io", "username": "e2e"}]
    assert SECRETS["E2E_REGISTRY_PASSWORD"] not in _everything_batch_returns(project)
