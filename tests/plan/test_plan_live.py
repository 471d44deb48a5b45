"""Plans against live state: the fixture spec (tests/plan/fixture/) on an emulator, through the unmodified SDKs.

Converged states are made with the raw SDKs (tests/plan/raw_sdk.py), never with this tool's own apply, so that an
empty plan proves the live reads normalise what the service returns. Drift is made the same way.
"""

from __future__ import annotations

import pytest
from azure.mgmt.batchai import models as batchai

from batchai_spec.emulator.admin_client import AdminClient
from batchai_spec.errors import UserError
from batchai_spec.plan import Action, Plan
from batchai_spec.plan.render_text import render_text
from batchai_spec.services.batchai import REGISTRY
from tests.plan.conftest import SECRETS
from tests.plan.raw_sdk import ACCOUNT, EXPERIMENT, RG, WORKSPACE

KINDS = [kind.name for kind in REGISTRY]


def actions(plan: Plan) -> dict[str, Action]:
    return {change.address: change.action for change in plan.changes if change.action is not Action.NO_OP}


def change_of(plan: Plan, address: str):
    return next(change for change in plan.changes if change.address == address)


def test_plan_from_nothing_creates_every_resource_of_the_spec(project):
    plan = project.plan()
    graph = project.session().graph
    assert actions(plan) == {address: Action.CREATE for address in graph.resources}
    assert {change.kind for change in plan.changes} == set(KINDS)
    assert plan.summary() == f"Plan: {len(graph.resources)} to add, 0 to change, 0 to replace, 0 to destroy."


def test_resources_created_with_the_raw_sdks_as_the_spec_says_plan_no_changes(project):
    project.converged()
    plan, observed = project.session().plan()
    assert actions(plan) == {}
    assert render_text(plan).plain.strip() == "No changes."
    graph = project.session().graph
    # Every kind was read and compared field by field, not skipped.
    assert all(observed[address].exists and observed[address].owned for address in graph.resources)
    assert {change.kind for change in plan.changes} == set(KINDS)
    # Finished jobs stay no-ops whatever their state (MPI jobs fail where mpirun is missing).
    project.raw().wait_for_gpu_jobs()
    assert actions(project.plan()) == {}


def test_scale_changed_through_the_sdk_is_updated_in_place(project):
    raw = project.converged()
    raw.batchai.clusters.update(
        RG, WORKSPACE, "gpu", batchai.ClusterUpdateParameters(
            scale_settings=batchai.ScaleSettings(manual=batchai.ManualScaleSettings(target_node_count=3))
        ),
    )
    raw.batchai.clusters.update(
        RG, WORKSPACE, "cpu", batchai.ClusterUpdateParameters(
            scale_settings=batchai.ScaleSettings(manual=batchai.ManualScaleSettings(target_node_count=0))
        ),
    )
    plan = project.plan()
    assert actions(plan) == {"cluster.gpu": Action.UPDATE, "cluster.cpu": Action.UPDATE}
    gpu = change_of(plan, "cluster.gpu")
    assert [(f.path, f.before, f.after, f.forces_replacement) for f in gpu.fields] == [
        ("scale_settings.manual.target_node_count", 3, 1, False)
    ]
    cpu = change_of(plan, "cluster.cpu")  # manual <-> auto is in place too
    assert [(f.path, f.before, f.after, f.forces_replacement) for f in cpu.fields] == [
        ("scale_settings.auto_scale", None,
         {"minimum_node_count": 0, "maximum_node_count": 2, "initial_node_count": 1}, False),
        ("scale_settings.manual", {"target_node_count": 0, "node_deallocation_option": "requeue"}, None, False),
    ]
    text = render_text(plan).plain
    assert "~ cluster.gpu" in text and "~ scale_settings.manual.target_node_count = 3 -> 1" in text
    assert "forces replacement" not in text


def test_cluster_recreated_by_hand_with_another_vm_size_is_replaced(project):
    raw = project.converged()
    raw.wait_for_gpu_jobs()  # a cluster replaced under running jobs takes them along; ended ones stay
    raw.batchai.clusters.begin_delete(RG, WORKSPACE, "gpu").result()
    raw.create_cluster("gpu", raw.gpu_cluster(vm_size="STANDARD_NC12"), record=False)
    plan = project.plan()
    assert actions(plan) == {"cluster.gpu": Action.REPLACE}
    change = change_of(plan, "cluster.gpu")
    assert change.replace_paths == ["vm_size"]
    assert change.reasons == ["vm_size cannot be changed in place"]
    assert '-/+ cluster.gpu' in render_text(plan).plain
    assert '~ vm_size = "STANDARD_NC12" -> "STANDARD_NC6"  # forces replacement' in render_text(plan).plain


def test_tags_changed_on_the_workspace_and_resource_group_others_tags_left_alone(project):
    raw = project.converged()
    group = raw.resource.resource_groups.get(RG)
    raw.resource.resource_groups.update(RG, {"tags": {**group.tags, "team": "research", "owner": "alice"}})
    raw.record_in_workspace({"added-by": "bob"})
    project.edit("tags: {project: plan-tests}", "tags: {project: plan-tests, stage: dev}")
    plan = project.plan()
    assert actions(plan) == {"resource_group.rg-plan": Action.UPDATE, "workspace.ws-plan": Action.UPDATE}
    assert [(f.path, f.before, f.after) for f in change_of(plan, "resource_group.rg-plan").fields] == [
        ("tags.team", "research", "ml")
    ]
    assert [(f.path, f.before, f.after) for f in change_of(plan, "workspace.ws-plan").fields] == [
        ("tags.stage", None, "dev")
    ]
    text = render_text(plan).plain
    assert "alice" not in text and "added-by" not in text and "batchai-spec.salt" not in text


@pytest.mark.parametrize("edit", ["content", "metadata"])
def test_file_edited_on_the_share_changes_that_file_and_the_jobs_reading_it(project, edit):
    raw = project.converged()
    if edit == "content":
        raw.upload("inputs/solver.cfg", "inputs/solver.cfg", b"learning_rate = 0.5\n", with_metadata=False)
    else:
        raw.share("data").get_file_client("inputs/solver.cfg").set_file_metadata({})
    plan = project.plan()
    assert actions(plan) == {
        "file.data/inputs/solver.cfg": Action.UPDATE,
        # the jobs whose input directory holds it; the other jobs read other files
        "job.exp/caffe": Action.REPLACE,
        "job.exp/cntk": Action.REPLACE,
    }
    file = change_of(plan, "file.data/inputs/solver.cfg")
    expected = raw.graph.resources["file.data/inputs/solver.cfg"].desired
    assert ("sha256", None, expected["sha256"]) in [(f.path, f.before, f.after) for f in file.fields]
    assert change_of(plan, "job.exp/caffe").reasons == ["input files changed: file.data/inputs/solver.cfg"]


def test_changed_local_file_changes_that_file_and_the_jobs_reading_it(project):
    project.converged()
    project.edit("epochs = 2", "epochs = 3", path="inputs/solver.cfg")
    plan = project.plan()
    assert actions(plan) == {
        "file.data/inputs/solver.cfg": Action.UPDATE,
        "job.exp/caffe": Action.REPLACE,
        "job.exp/cntk": Action.REPLACE,
    }


def test_password_change_is_seen_only_through_its_fingerprint(project, monkeypatch):
    raw = project.converged()
    raw.wait_for_gpu_jobs()
    monkeypatch.setenv("PLAN_ADMIN_PASSWORD", "admin-pw-changed-91d0")
    monkeypatch.setenv("PLAN_JOB_TOKEN", "job-token-changed-55aa")
    plan = project.plan()
    assert actions(plan) == {"cluster.gpu": Action.REPLACE, "job.exp/cntk": Action.REPLACE}
    cluster = change_of(plan, "cluster.gpu")
    assert cluster.replace_paths == ["user_account_settings.admin_user_password"]
    assert [(f.before, f.after, f.sensitive) for f in cluster.fields] == [("(sensitive)", "(sensitive)", True)]
    assert change_of(plan, "job.exp/cntk").replace_paths == ["secrets[API_TOKEN].value"]
    text = render_text(plan).plain
    assert "~ user_account_settings.admin_user_password = (sensitive) -> (sensitive)  # forces replacement" in text
    for secret in ("admin-pw-changed-91d0", "job-token-changed-55aa", *SECRETS.values()):
        assert secret not in text


def test_job_deleted_by_hand_is_created_again(project):
    raw = project.converged()
    raw.batchai.jobs.begin_delete(RG, WORKSPACE, EXPERIMENT, "pytorch").result()
    plan = project.plan()
    assert actions(plan) == {"job.exp/pytorch": Action.CREATE}
    assert change_of(plan, "job.exp/pytorch").reasons == ["not found"]


def _remove_cpu_cluster_and_caffe2(document: dict) -> None:
    document["clusters"] = [c for c in document["clusters"] if c["name"] != "cpu"]
    jobs = document["experiments"][0]["jobs"]
    document["experiments"][0]["jobs"] = [j for j in jobs if j["cluster"] != "cpu" and j["name"] != "caffe2"]
    data = document["storage"]["file_shares"][0]
    data["uploads"] = [u for u in data["uploads"] if u["source"] != "code/train.py"]
    data["directories"].append("code")  # where a file of someone else's lives


def test_owned_resources_no_longer_declared_are_destroyed_and_foreign_ones_left_alone(project):
    raw = project.converged()
    # Beside the owned resources: a cluster, share, directory, files, an experiment and jobs this spec did not create.
    raw.create_cluster("theirs", raw.cpu_cluster(), record=False)
    raw.share("theirs").create_share(quota=1)
    raw.share("data").get_directory_client("their-dir").create_directory()
    raw.share("data").get_file_client("code/their-notes.txt").upload_file(b"not ours")
    raw.share("data").get_file_client("root-file.txt").upload_file(b"not ours")
    raw.batchai.experiments.begin_create(RG, WORKSPACE, "their-exp").result()
    raw.create_job("their-job", raw.jobs()["custom"], owned=False)
    project.edit_yaml(_remove_cpu_cluster_and_caffe2)
    plan = project.plan()
    assert actions(plan) == {
        "cluster.cpu": Action.DELETE,
        "job.exp/caffe2": Action.DELETE,
        "job.exp/custom": Action.DELETE,
        "job.exp/custom-mpi": Action.DELETE,
        "job.exp/horovod": Action.DELETE,
        "file.data/code/train.py": Action.DELETE,
        # the jobs whose script was that file now read nothing of this spec: their inputs changed
        "job.exp/chainer": Action.REPLACE,
        "job.exp/cntk": Action.REPLACE,
        "job.exp/pytorch": Action.REPLACE,
        "job.exp/tensorflow": Action.REPLACE,
    }
    assert change_of(plan, "cluster.cpu").reasons == ["owned by this spec but no longer declared"]
    assert plan.summary() == "Plan: 0 to add, 0 to change, 4 to replace, 6 to destroy."


def test_replace_flag_replaces_that_job_only(project):
    project.converged()
    plan = project.plan(replace=["job.exp/pytorch"])
    assert actions(plan) == {"job.exp/pytorch": Action.REPLACE}
    assert change_of(plan, "job.exp/pytorch").reasons == ["requested with --replace"]


def test_target_limits_the_plan_to_an_address_and_what_it_needs(project):
    raw = project.converged()
    raw.batchai.jobs.begin_delete(RG, WORKSPACE, EXPERIMENT, "pytorch").result()
    raw.batchai.jobs.begin_delete(RG, WORKSPACE, EXPERIMENT, "caffe").result()
    plan = project.plan(only=["job.exp/pytorch"])
    assert actions(plan) == {"job.exp/pytorch": Action.CREATE}
    assert {change.address for change in plan.changes} == {
        "resource_group.rg-plan", f"storage_account.{ACCOUNT}", "file_share.data", "directory.data/code",
        "file.data/code/train.py", "workspace.ws-plan", "cluster.gpu", "experiment.exp", "job.exp/pytorch",
    }


@pytest.mark.parametrize("address", ["job.exp/nope", "cluster.theirs"])
def test_target_or_replace_of_an_address_the_spec_does_not_have_is_an_error(project, address):
    raw = project.converged()
    raw.create_cluster("theirs", raw.cpu_cluster(), record=False)
    for option in ("only", "replace"):
        with pytest.raises(UserError, match=f"^--(target|replace) {address}: no such address in this spec"):
            project.plan(**{option: [address]})


def test_cluster_replaced_by_a_spec_change_takes_its_queued_jobs_along(project):
    project.converged()  # the jobs on cluster cpu stay queued: its nodes are unusable (see raw_sdk.py)
    project.edit("sku: 18.04-LTS", "sku: 20.04-LTS")
    plan = project.plan()
    assert actions(plan) == {
        "cluster.cpu": Action.REPLACE,
        "job.exp/custom": Action.REPLACE,
        "job.exp/custom-mpi": Action.REPLACE,
        "job.exp/horovod": Action.REPLACE,
    }
    assert change_of(plan, "cluster.cpu").replace_paths == ["virtual_machine_configuration.image_reference.sku"]
    assert change_of(plan, "job.exp/horovod").reasons == ["cluster.cpu is replaced while this job is queued"]


def test_a_share_the_spec_neither_declares_nor_owns_is_not_read(project):
    raw = project.converged()
    theirs = raw.share("theirs")
    theirs.create_share(quota=1)
    theirs.get_directory_client("folder").create_directory()
    theirs.get_file_client("notes.txt").upload_file(b"not ours")
    # Any request into that share fails: the plan must not make one.
    AdminClient(project.emulator.endpoint).add_fault(
        path=r"^/planstore/theirs", action="status", status=403, count=None, service="storage",
        code="AuthorizationFailure", message="Not your share.",
    )
    assert actions(project.plan()) == {}
