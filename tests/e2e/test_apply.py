"""apply from nothing, apply again, a changed input, cluster changes, saved plans, a failing job: on both services."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from tests.e2e.project import (
    ACCOUNT, BOTH_SERVICES, CLUSTER, FAILED, JOB_NAME, RESOURCE_GROUP, RESOURCES, SHARE, WORKSPACE,
    Project, changes, model_bytes,
)

pytestmark = BOTH_SERVICES

JOB_ADDRESS = f"job.{JOB_NAME}"
# The field of the node count in a cluster's plan, on each service.
NODE_COUNT_FIELD = {"batchai": "scale_settings.manual.target_node_count", "batch": "scale_settings.fixed_scale.target_dedicated_nodes"}


def _complete(project: Project) -> str:
    return f"Apply complete! Resources: {RESOURCES[project.service]} added, 0 changed, 0 replaced, 0 destroyed."


def test_apply_from_nothing_runs_the_job_and_downloads_its_outputs(project: Project, tmp_path):
    downloads = tmp_path / "downloads"
    run = project.cli("apply", "-y", "--download", downloads)
    for line in ("input: train.py", "Finished Epoch[3 of 3]: loss = 0.333", "stand-in: no real training here"):
        assert line in run.stdout
    assert "job.exp/train: succeeded, exit code 0" in run.stdout
    for listed in (f"MODEL/model_0.dnn ({len(model_bytes(0))} bytes)", "stdouterr/stdout.txt", "stdouterr/stderr.txt"):
        assert f"job.exp/train: {listed}" in run.stdout
    assert _complete(project) in run.stdout
    assert project.job().execution_state == "succeeded"
    job_dir = downloads / "exp" / "train"
    for epoch in range(3):
        assert (job_dir / "MODEL" / f"model_{epoch}.dnn").read_bytes() == model_bytes(epoch)
    assert b"Finished Epoch[1 of 3]" in (job_dir / "stdouterr" / "stdout.txt").read_bytes()


def _uploads(run) -> list[str]:
    return [e["address"] for e in run.events() if e["event"] == "upload.progress" or e.get("operation") == "upload"]


def test_a_second_apply_uploads_nothing_and_reruns_nothing(project: Project):
    project.cli("apply", "-y")
    first_run = project.job()
    plan = project.cli("plan", "--detailed-exitcode")
    assert plan.stdout.strip() == "No changes."
    again = project.cli("apply", "-y", "--json")
    assert again.plan()["has_changes"] is False
    assert _uploads(again) == []
    assert [e["event"] for e in again.events()] == ["plan"]
    assert project.job().job_output_directory_path_segment == first_run.job_output_directory_path_segment
    assert project.job_runs() == [first_run.job_output_directory_path_segment.rsplit("/", 1)[1]]


def test_a_changed_input_file_is_uploaded_alone_and_reruns_the_job(project: Project):
    project.cli("apply", "-y")
    old_run = project.job().job_output_directory_path_segment
    changed = b"|labels 0 1 |features 9 9 9\n" * 3
    (project.root / "data" / "train.txt").write_bytes(changed)
    plan = project.cli("plan", "--format", "json", "--detailed-exitcode", expect=2)
    assert changes(json.loads(plan.stdout)) == {
        "file.e2eshare/sample/train.txt": "update",
        "job.exp/train": "replace",
    }
    run = project.cli("apply", "-y", "--json")
    assert set(_uploads(run)) == {"file.e2eshare/sample/train.txt"}
    assert [e["state"] for e in run.events_of("job.finished")] == ["succeeded"]
    assert project.share_file("sample/train.txt") == changed
    new_run = project.job().job_output_directory_path_segment
    assert new_run != old_run
    assert new_run.rsplit("/", 1)[1] in project.job_runs()


def test_scale_is_changed_in_place_and_a_new_vm_size_replaces_the_cluster(project: Project):
    project.cli("apply", "-y")
    created = project.cluster().creation_time
    plan = project.cli("plan", "--var", "nodes=2")
    assert "~ cluster.gpu" in plan.stdout and f"{NODE_COUNT_FIELD[project.service]} = 1 -> 2" in plan.stdout
    scaled = project.cli("apply", "-y", "--var", "nodes=2", "--json")
    assert changes(scaled.plan()) == {f"cluster.{CLUSTER}": "update"}
    assert project.cluster().creation_time == created
    assert project.cluster_nodes() == (2, 2)

    resized = project.cli("apply", "-y", "--var", "nodes=2", "--var", "vm_size=STANDARD_NC12", "--json")
    assert changes(resized.plan()) == {f"cluster.{CLUSTER}": "replace"}
    cluster = project.cluster()
    assert cluster.vm_size.upper() == "STANDARD_NC12" and cluster.creation_time != created
    assert cluster.current_node_count == 2
    project.cli("plan", "--var", "nodes=2", "--var", "vm_size=STANDARD_NC12", "--detailed-exitcode")


def test_a_saved_plan_is_applied_and_a_stale_one_refused(project: Project, tmp_path):
    saved = tmp_path / "first.plan"
    # Planned in the project with a relative spec path, applied from elsewhere.
    project.cli("plan", "--out", saved, target=Path("specs/train.yaml"), cwd=project.root)
    project.cli("apply", target=saved)
    assert project.job().execution_state == "succeeded"

    (project.root / "data" / "test.txt").write_bytes(b"|labels 1 0 |features 1 2 3\n")
    stale = tmp_path / "second.plan"
    project.cli("plan", "--out", stale)
    # Someone changes the live state between the review and the apply.
    project.share().get_file_client("sample/train.txt").upload_file(b"edited by hand\n")
    refused = project.cli("apply", target=stale, expect=1)
    assert "plan is stale" in refused.stderr
    assert project.share_file("sample/train.txt") == b"edited by hand\n"
    assert project.share_file("sample/test.txt") != b"|labels 1 0 |features 1 2 3\n"


def test_a_failing_job_makes_apply_exit_3_with_its_stderr_once_and_no_success_line(project: Project):
    run = project.cli("apply", "-y", "--var", "exit_code=4", expect=3)
    assert "job.exp/train: failed, exit code 4" in run.stdout
    assert run.stdout.count("stand-in: no real training here") == 1
    assert "Apply complete" not in run.output
    (error,) = run.stderr.splitlines()
    assert error.startswith(f"Error: job.exp/train failed with exit code 4 ({FAILED[project.service]}: ")
    assert error.endswith(
        f"; its stderr is above; the changes were applied ({RESOURCES[project.service]} added, 0 changed, 0 replaced, 0 destroyed)"
    )
    assert project.job().execution_info.exit_code == 4


def test_a_saved_plan_keeps_its_variables_and_is_applied_once(project: Project, tmp_path):
    project.cli("apply", "-y")
    saved = tmp_path / "rerun.plan"
    gate = project.gate("open")
    gate.touch()  # a job setting of its own, so that the job changes; open, so that it runs through
    project.cli("plan", "--out", saved, "--var", f"job_gate={gate}", "--var", "vm_size=STANDARD_NC12")
    # No --var here: the plan holds them, and applies the cluster size and the job it was reviewed with.
    applied = project.cli("apply", "--json", target=saved)
    assert changes(applied.plan()) == {f"cluster.{CLUSTER}": "replace", JOB_ADDRESS: "replace"}
    assert project.cluster().vm_size.upper() == "STANDARD_NC12"
    runs = project.job_runs()
    assert len(runs) == 2

    again = project.cli("apply", target=saved, expect=1)
    assert "plan is stale: it was applied already" in again.stderr
    assert project.job_runs() == runs


def test_a_replaced_job_re_runs_once_per_saved_plan(project: Project, tmp_path):
    project.cli("apply", "-y")
    saved = tmp_path / "replace.plan"
    project.cli("plan", "--out", saved, "--replace", JOB_ADDRESS)
    project.cli("apply", target=saved)
    assert len(project.job_runs()) == 2
    project.cli("apply", target=saved, expect=1)
    assert len(project.job_runs()) == 2


def test_apply_ends_saying_where_the_outputs_are_and_how_to_get_them(project: Project, tmp_path):
    run = project.cli("apply", "-y", "--var", "exit_code=0")
    run_id = project.job().job_output_directory_path_segment.rsplit("/", 1)[-1]
    lines = run.stdout.splitlines()
    at = lines.index(f"job.exp/train: outputs of run {run_id} on the file share:")
    segment = project.job().job_output_directory_path_segment
    assert lines[at + 1 : at + 3] == [f"  MODEL: e2eshare/{segment}/outputs/Models", f"  stdouterr: e2eshare/{segment}/stdouterr"]
    (hint,) = [line for line in lines if line.startswith("Download them with: batchai-spec outputs ")]
    assert hint.endswith(" exp/train --download DIR")
    # The command works as it is copied: the same spec, variables and state dir.
    command = shlex.split(hint.removeprefix("Download them with: batchai-spec "))
    assert command[:6] == ["outputs", str(project.spec), "--var", "exit_code=0", "--state-dir", str(project.state_dir)]
    downloaded = subprocess.run(
        [sys.executable, "-m", "batchai_spec", *command[:-1], str(tmp_path / "out")],
        env=project.environment(), capture_output=True, text=True, timeout=120,
    )
    assert downloaded.returncode == 0, downloaded.stderr
    assert (tmp_path / "out" / "MODEL" / "model_2.dnn").read_bytes() == model_bytes(2)
    assert project.share_file(f"{segment}/outputs/Models/model_2.dnn") == model_bytes(2)
    assert lines[-1] == _complete(project)


def test_tags_a_quota_and_a_sku_change_in_place_of_every_kind_that_allows_it(project: Project):
    project.cli("apply", "-y")
    text = project.spec.read_text()
    edits = {
        "  location: westeurope\n": "  location: westeurope\n  tags: {team: ml}\n",  # the resource group's
        "    name: e2estore\n": "    name: e2estore\n    sku: Standard_GRS\n",
        "      quota_gb: 1\n": "      quota_gb: 2\n",
        "  name: e2ews\n": "  name: e2ews\n  tags: {stage: test}\n",
    }
    for old, new in edits.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    project.spec.write_text(text)
    run = project.cli("apply", "-y", "--json")
    assert changes(run.plan()) == {
        f"resource_group.{RESOURCE_GROUP}": "update",
        f"storage_account.{ACCOUNT}": "update",
        f"file_share.{SHARE}": "update",
        f"workspace.{WORKSPACE}": "update",
    }
    assert project.share().get_share_properties().quota == 2
    assert project.storage_client.storage_accounts.get_properties(RESOURCE_GROUP, ACCOUNT).sku.name == "Standard_GRS"
    assert project.workspace_tags()["stage"] == "test"
    project.assert_converged()
