"""Plans on Azure Batch: field-level diffs in Batch's terms and replace reasons from Batch's mutability (a pool's scale
and start task change in place, its VM size forces a new pool), drift made by hand, the auto-scale formula of an
auto-scale cluster, and golden plans (text and JSON) of a plan that does a bit of everything.

The golden files live in tests/e2e/golden/. After an intended change of the output, regenerate them with

    BATCHAI_SPEC_REGENERATE_GOLDEN=1 python -m pytest tests/e2e/test_batch_plan.py

and review the diff before committing it. What differs per run (subscription id, state dir, spec path, the
launcher's digest and size, fingerprints) is masked.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.e2e.project import CLUSTER, RESOURCE_GROUP, WORKSPACE, Project, changes

pytestmark = pytest.mark.parametrize("service", ["batch"])

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("BATCHAI_SPEC_REGENERATE_GOLDEN") == "1"
POOL = f"cluster.{CLUSTER}"


def _setup_description(project: Project) -> dict:
    """What the live pool's start task runs: the launcher's description of the setup task, from its environment."""
    start_task = project.cluster().properties.start_task
    (setting,) = [s for s in start_task.environment_settings if s.name == "BATCHAI_SPEC_SETUP"]
    return json.loads(setting.value)


def test_scale_drift_and_a_new_vm_size_in_batch_terms(project: Project):
    project.cli("apply", "-y")
    # Drift: someone resizes the pool by hand; the plan puts it back, in place.
    project.batch_mgmt.pool.update(RESOURCE_GROUP, WORKSPACE, CLUSTER,
                                   {"properties": {"scaleSettings": {"fixedScale": {"targetDedicatedNodes": 3}}}})
    drift = project.cli("plan", "--detailed-exitcode", expect=2)
    assert f"  # {POOL} will be updated in-place" in drift.stdout
    assert "~ scale_settings.fixed_scale.target_dedicated_nodes = 3 -> 1" in drift.stdout
    resized = project.cli("plan", "--var", "vm_size=STANDARD_NC12")
    assert f"  # {POOL} must be replaced (vm_size cannot be changed in place)" in resized.stdout
    assert '~ vm_size = "STANDARD_NC6" -> "STANDARD_NC12"  # forces replacement' in resized.stdout
    assert "~ scale_settings.fixed_scale.target_dedicated_nodes = 3 -> 1\n" in resized.stdout
    # The node count alone stays in place (inter-node communication follows the jobs' node counts, not the pool's).
    scaled = project.cli("plan", "--var", "nodes=2", "--format", "json")
    assert changes(json.loads(scaled.stdout)) == {POOL: "update"}


def test_a_setup_task_change_updates_the_pool_in_place_and_removing_it_replaces_the_pool(project: Project):
    project.cli("apply", "-y", "--var", "setup=v1")
    created = project.cluster().creation_time
    assert _setup_description(project)["command_line"] == "echo setup v1"
    plan = project.cli("plan", "--var", "setup=v2")
    assert f"  # {POOL} will be updated in-place (start_task.environment_settings[0].value changed)" in plan.stdout
    applied = project.cli("apply", "-y", "--var", "setup=v2", "--json")
    assert changes(applied.plan()) == {POOL: "update"}
    assert project.cluster().creation_time == created
    assert _setup_description(project)["command_line"] == "echo setup v2"
    project.cli("plan", "--var", "setup=v2", "--detailed-exitcode")
    removed = project.cli("plan")
    assert f"  # {POOL} must be replaced (start_task cannot be changed in place)" in removed.stdout


def test_a_setup_task_that_fails_fails_apply_fast_with_the_nodes_error(project: Project):
    run = project.cli("apply", "-y", "--var", "setup=fail", expect=1)
    (error,) = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert re.match(
        rf"Error: create {POOL} failed: {POOL} has 1 unusable node\(s\): FailureExitCode: node \S+: start task exited "
        r"with 7: ", error), error
    assert "create job." not in error and "job.exp/train: create" not in run.stdout
    # The setup task's output is on the share, under the cluster's directory where Batch AI put it.
    share = project.state_dir / "files" / "e2estore" / "e2eshare"
    cluster_dir = share / project.emulator.endpoint.subscription_id / RESOURCE_GROUP / "workspaces" / WORKSPACE / "clusters" / CLUSTER
    logs = [path for path in cluster_dir.rglob("*") if path.is_file() and b"the setup failed on purpose" in path.read_bytes()]
    assert logs, sorted(str(path.relative_to(share)) for path in share.rglob("*"))
    # The fixed setup task changes the pool in place, and its node runs it again (a reboot): the apply goes on.
    fixed = project.cli("apply", "-y", "--var", "setup=fixed", "--json")
    assert changes(fixed.plan())[POOL] == "update"
    assert [node.state for node in project.batch.list_nodes(CLUSTER)] == ["idle"]
    assert any(b"setup fixed" in path.read_bytes() for path in cluster_dir.rglob("stdout-*.txt"))


AUTO_SCALE = "auto: {minimum_node_count: 1, maximum_node_count: 3}"


def test_an_auto_scale_cluster_shows_its_formula_and_converges(project: Project):
    text = project.spec.read_text()
    manual = "manual: {target_node_count: {{ vars.nodes | default(1) }}}"
    assert text.count(manual) == 1
    project.spec.write_text(text.replace(manual, AUTO_SCALE))
    plan = project.cli("plan")
    assert (
        '+ scale_settings.auto_scale.formula = "// batchai-spec: 1 to 3 nodes, one per pending task\\n'
        "$tasks = max(0, $PendingTasks.GetSample(1));\\n"
        "$TargetDedicatedNodes = min(3, max(1, $tasks));\\n"
        '$NodeDeallocationOption = taskcompletion;"'
    ) in plan.stdout
    assert '+ scale_settings.auto_scale.evaluation_interval = "PT5M"' in plan.stdout
    project.cli("apply", "-y")
    assert project.job().execution_state == "succeeded"
    project.cli("plan", "--detailed-exitcode")


# -- golden plans ---------------------------------------------------------------------------------------------------


def _masked(text: str, project: Project) -> str:
    for value, mask in (
        (project.emulator.endpoint.subscription_id, "<subscription>"),
        (str(project.state_dir.resolve()), "<state-dir>"),
        (str(project.state_dir), "<state-dir>"),
        (str(project.spec), "<spec>"),
    ):
        text = text.replace(value, mask)
    return text


def _launcher_masked(document: dict) -> dict:
    """The launcher is another's work in progress: its digest and size are not this plan's concern."""
    for change in document["changes"]:
        if change["address"].endswith("/.batchai-spec/launcher.py"):
            for side in ("before", "after"):
                if change.get(side):
                    change[side].update(sha256="<sha256>", size="<size>")
    document["live_fingerprint"] = document["content_fingerprint"] = "<fingerprint>"
    return document


def _check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if REGENERATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual)
    assert actual == path.read_text(), f"{name} differs; see the module docstring to regenerate it"


def test_golden_plans_of_a_change_to_every_batch_kind(project: Project):
    """A pool scaled (in place), a job changed (a new run), an input file changed, the account's tags, a new share
    directory: in text and JSON."""
    project.cli("apply", "-y")
    text = project.spec.read_text()
    text = text.replace("  name: e2ews\n", "  name: e2ews\n  tags: {stage: test}\n")
    text = text.replace("      quota_gb: 1\n", "      quota_gb: 1\n      directories: [checkpoints]\n")
    project.spec.write_text(text)
    (project.root / "data" / "test.txt").write_bytes(b"|labels 1 0 |features 1 2 3\n")
    variables = ("--var", "nodes=2", "--var", "exit_code=1")
    planned = project.cli("plan", *variables, options=("--no-color",))
    _check("batch-plan.txt", _masked(planned.stdout, project))
    as_json = project.cli("plan", *variables, "--format", "json")
    document = _launcher_masked(json.loads(as_json.stdout))
    _check("batch-plan.json", _masked(json.dumps(document, indent=2, sort_keys=True), project) + "\n")
