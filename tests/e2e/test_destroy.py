"""destroy removes what the spec owns and nothing else, and says so when there is nothing left."""

from __future__ import annotations

import json
import re

import pytest
from azure.core.exceptions import ResourceNotFoundError

from tests.e2e.project import BOTH_SERVICES, RESOURCE_GROUP, WORKSPACE, Project

pytestmark = BOTH_SERVICES

FOREIGN_TAGS = {"team": "vision"}


def test_destroy_leaves_what_it_does_not_own_and_a_second_destroy_finds_nothing(project: Project):
    project.resource_client.resource_groups.create_or_update(RESOURCE_GROUP, {"location": "westeurope", "tags": FOREIGN_TAGS})
    project.cli("apply", "-y")
    project.share(share="theirs").create_share()
    project.foreign_cluster("theirs")

    run = project.cli("destroy", "-y")
    assert "Destroy complete" in run.stdout
    for kept in ("storage_account.e2estore: kept: deleting it would delete file_share.theirs",
                 f"workspace.{WORKSPACE}: kept: deleting it would delete cluster.theirs"):
        assert kept in run.stdout
    for gone in (project.job, project.cluster, lambda: project.share().get_share_properties()):
        with pytest.raises(ResourceNotFoundError):
            gone()
    assert project.resource_client.resource_groups.get(RESOURCE_GROUP).tags == FOREIGN_TAGS
    assert project.cluster("theirs").name == "theirs"
    assert project.share(share="theirs").get_share_properties().name == "theirs"

    again = project.cli("destroy", "-y")
    assert again.stdout.strip().endswith("Nothing to destroy.")
    assert "kept: deleting it would delete" in again.stdout


def test_destroy_stops_a_running_job_first(project: Project):
    gate = project.gate("job")
    gated = ("--var", f"job_gate={gate}")
    project.cli("apply", "-y", "--no-wait", *gated)
    assert project.job().execution_state in ("queued", "running")
    run = project.cli("destroy", "-y", *gated)
    assert "job.exp/train: delete done" in run.stdout
    assert project.workspaces() == []
    assert project.cli("destroy", "-y", *gated).stdout.strip() == "Nothing to destroy."


def test_destroy_names_the_job_outputs_that_deleting_the_share_deletes(project: Project):
    project.cli("apply", "-y")
    gate = project.gate("open")
    gate.touch()
    project.cli("apply", "-y", "--var", f"job_gate={gate}")  # a second run of the job, beside the first
    planned = project.cli("plan", "--var", f"job_gate={gate}", "--format", "json")
    assert json.loads(planned.stdout)["has_changes"] is False
    run = project.cli("destroy", "-y")
    note = re.search(r"# file_share\.e2eshare: deleting it deletes the outputs of 2 job runs, ([\d.]+) kB", run.stdout)
    assert note, run.stdout
