"""Ownership on Azure Batch: what someone else made in the spec's Batch account (a pool, a job, a job that names the
spec's experiment) is never deleted by destroy, which keeps the account that holds it and then has nothing left to
do; a Batch account the spec did not create is adopted: used, and kept by destroy, which deletes what the spec made
in it."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ResourceNotFoundError

from tests.e2e.project import EXPERIMENT, RESOURCE_GROUP, WORKSPACE, Project

pytestmark = pytest.mark.parametrize("service", ["batch"])


def _foreign_job(project: Project, job_id: str, pool: str, metadata: dict[str, str] | None = None) -> None:
    body = {"id": job_id, "poolInfo": {"poolId": pool}}
    if metadata:
        body["metadata"] = [{"name": name, "value": value} for name, value in metadata.items()]
    project.batch.create_job(body)


def test_destroy_keeps_others_pools_and_jobs_in_the_spec_account(project: Project):
    project.cli("apply", "-y")
    project.foreign_cluster("theirs")
    _foreign_job(project, "theirjob", "theirs")
    # Someone else's job that names the spec's experiment, as a job of another spec would.
    _foreign_job(project, "otherspec", "theirs",
                 {"batchaispec_owner": "another-spec", "batchaispec_experiment": EXPERIMENT, "batchaispec_job": "eval"})

    run = project.cli("destroy", "-y")
    assert f"workspace.{WORKSPACE}: kept: deleting it would delete cluster.theirs" in run.stdout
    with pytest.raises(ResourceNotFoundError):
        project.job()
    with pytest.raises(ResourceNotFoundError):
        project.cluster()
    assert project.cluster("theirs").name == "theirs"
    assert {job.id for job in project.batch.list_jobs()} == {"theirjob", "otherspec"}

    again = project.cli("destroy", "-y")
    assert again.stdout.strip().endswith("Nothing to destroy."), again.stdout
    assert {job.id for job in project.batch.list_jobs()} == {"theirjob", "otherspec"}


@pytest.mark.parametrize("their_job", ["theirjob", EXPERIMENT])  # the second: an id the spec's experiment has
def test_a_job_of_someone_else_alone_keeps_the_account(project: Project, their_job: str):
    project.cli("apply", "-y")
    _foreign_job(project, their_job, "gpu")  # on the spec's pool, which destroy deletes
    run = project.cli("destroy", "-y")
    assert f"workspace.{WORKSPACE}: kept: deleting it would delete experiment.(job {their_job})" in run.stdout
    assert project.workspaces() == [WORKSPACE], "the account went, and the job of someone else with it"
    assert [job.id for job in project.batch.list_jobs()] == [their_job]
    assert project.cli("destroy", "-y").stdout.strip().endswith("Nothing to destroy.")


def test_an_account_made_by_someone_else_is_adopted_and_kept(project: Project):
    project.resource_client.resource_groups.create_or_update(RESOURCE_GROUP, {"location": "westeurope"})
    project.batch_mgmt.batch_account.begin_create(RESOURCE_GROUP, WORKSPACE, {"location": "westeurope"}).result()
    planned = project.cli("plan")
    assert f"+ workspace.{WORKSPACE}" not in planned.stdout
    project.cli("apply", "-y")
    assert project.job().execution_state == "succeeded"
    project.assert_converged()

    destroyed = project.cli("destroy", "-y")
    assert "Destroy complete" in destroyed.stdout
    assert project.workspaces() == [WORKSPACE]
    assert list(project.batch_mgmt.pool.list_by_batch_account(RESOURCE_GROUP, WORKSPACE)) == []
    assert list(project.batch.list_jobs()) == []
    assert project.cli("destroy", "-y").stdout.strip().endswith("Nothing to destroy.")
