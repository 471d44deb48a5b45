"""Plans name the service that realises them (`service` in JSON, "(Azure Batch)" in text, "Service: ..." in
Markdown), carry the spec's warnings on that service before the changes, and saved plans apply on their own service
only. Offline (build_plan with the Batch AI registry) and through the CLI against the emulator."""

from __future__ import annotations

import json

import pytest

from batchai_spec.errors import UserError
from batchai_spec.graph import build_graph
from batchai_spec.plan import build_destroy_plan, build_plan
from batchai_spec.plan.model import SERVICE_TITLES
from batchai_spec.plan.render_markdown import render_markdown
from batchai_spec.plan.render_text import render_text
from batchai_spec.services import TITLES
from batchai_spec.services.batchai import REGISTRY
from batchai_spec.spec import load_spec
from tests.plan.test_offline import SUBSCRIPTION, absent, converged, write_spec

WARNING = "spec.yaml:12:5: clusters[0].vm_priority: Azure Batch allocates Spot nodes for low-priority targets since March 2026"


def test_the_plan_layer_names_services_as_the_services_do():
    assert SERVICE_TITLES == TITLES  # plan/ imports no service module: its copy must not drift


def test_a_plan_names_its_service_and_lists_its_warnings_before_the_changes(tmp_path):
    graph = build_graph(load_spec(write_spec(tmp_path)), REGISTRY, SUBSCRIPTION)
    plan = build_plan(graph, absent(graph), spec_path="s", endpoint="emulator serving D", service="batch", warnings=[WARNING])
    document = plan.to_json()
    assert (document["format_version"], document["service"], document["warnings"]) == ("1.0", "batch", [WARNING])
    assert document["target"] == "emulator serving D"
    text = render_text(plan).plain
    assert text.startswith(f"Warning: {WARNING}\n\nbatchai-spec will apply the following changes on emulator serving D (Azure Batch):\n")
    markdown = render_markdown(plan)
    assert markdown.startswith(
        "### batchai-spec plan: `offline`\n\n**Plan: 9 to add, 0 to change, 0 to replace, 0 to destroy.** Target: emulator "
        f"serving D. Service: Azure Batch.\n\n> [!NOTE]\n> Azure Batch warnings:\n> - {WARNING}\n\n| Action | Count |"
    )

    unchanged = build_plan(graph, converged(graph), spec_path="s", endpoint="D", service="batch", warnings=[WARNING])
    assert render_text(unchanged).plain == f"Warning: {WARNING}\n\nNo changes.\n"  # warned even with nothing to do
    assert "> - " + WARNING in render_markdown(unchanged)

    destroy = build_destroy_plan(graph, converged(graph), spec_path="s", endpoint="D", service="batch", warnings=[WARNING])
    assert (destroy.to_json()["service"], destroy.warnings) == ("batch", [WARNING])
    assert "the following changes on D (Azure Batch):" in render_text(destroy).plain


def test_a_plan_without_a_service_is_batch_ai_and_says_so(tmp_path):
    graph = build_graph(load_spec(write_spec(tmp_path)), REGISTRY, SUBSCRIPTION)
    plan = build_plan(graph, absent(graph), spec_path="s", endpoint="D")
    assert (plan.to_json()["service"], plan.to_json()["warnings"]) == ("batchai", [])
    assert "the following changes on D (Batch AI):" in render_text(plan).plain
    assert "Target: D. Service: Batch AI.\n\n| Action" in render_markdown(plan)


def test_a_saved_plan_records_its_service_and_older_ones_read_as_batch_ai(tmp_path):
    from batchai_spec.plan.saved import check_service, load_saved_plan, save_plan

    graph = build_graph(load_spec(write_spec(tmp_path)), REGISTRY, SUBSCRIPTION)
    path = tmp_path / "saved.plan"
    save_plan(build_plan(graph, absent(graph), spec_path="s", endpoint="D", service="batch"), path, replace=(), only=())
    saved = load_saved_plan(path)
    assert saved.service == "batch"
    check_service(saved, None, path)
    check_service(saved, "batch", path)
    with pytest.raises(UserError) as refused:
        check_service(saved, "batchai", path)
    assert refused.value.message == (
        f"{path} was planned for Azure Batch (--service batch); it cannot be applied with --service batchai: apply it "
        "without --service, or plan again with --service batchai"
    )
    document = json.loads(path.read_text())
    del document["plan"]["service"], document["plan"]["warnings"]  # as batchai-spec wrote plans before services
    path.write_text(json.dumps(document))
    assert load_saved_plan(path).service == "batchai"


def test_plan_on_the_emulator_names_batch_ai_in_every_format(project):
    common = (str(project.spec), "--state-dir", str(project.state_dir))
    text = project.cli("plan", *common)
    assert text.returncode == 0, text.stderr
    assert f"batchai-spec will apply the following changes on emulator serving {project.state_dir.resolve()} (Batch AI):" in text.stdout
    document = json.loads(project.cli("plan", *common, "--json", "--service", "batchai").stdout)
    assert (document["service"], document["warnings"]) == ("batchai", [])
    assert "Service: Batch AI." in project.cli("plan", *common, "--format", "markdown").stdout


def test_a_saved_plan_is_applied_on_its_own_service_only(project, tmp_path):
    saved = tmp_path / "plan.json"
    planned = project.cli("plan", str(project.spec), "--state-dir", str(project.state_dir), "--out", str(saved))
    assert planned.returncode == 0, planned.stderr
    assert json.loads(saved.read_text())["plan"]["service"] == "batchai"
    for how in (["--service", "batch"], []):
        env = {} if how else {"BATCHAI_SPEC_SERVICE": "batch"}
        refused = project.cli("apply", str(saved), "--state-dir", str(project.state_dir), *how, env=env)
        assert refused.returncode == 1, refused.stdout
        assert " ".join(refused.stderr.split()) == (
            f"Error: {saved} was planned for Batch AI (--service batchai); it cannot be applied with --service batch: "
            "apply it without --service, or plan again with --service batch"
        )
        assert refused.stdout == ""
    assert project.plan().has_changes  # nothing was applied


def test_a_spec_azure_batch_cannot_realise_stops_every_command_before_anything_starts(sample_spec, tmp_path):
    """The checks run before the endpoint is contacted: no emulator is started for a spec that cannot be applied."""
    from tests.plan.conftest import run_cli

    state_dir = tmp_path / "never-started"
    expected = (
        f"Error: {sample_spec}:30:9: workspace.name: 'my-workspace' cannot name a Batch account, which the workspace "
        "becomes on Azure Batch: 3-24 lowercase letters and digits"
    )
    for command in (["plan"], ["apply", "-y"], ["destroy", "-y"], ["status"], ["force-unlock"], ["logs"], ["outputs"], ["cancel"]):
        name, *rest = command
        args = [name, str(sample_spec), *(["myjob"] if name in ("logs", "outputs", "cancel") else []), *rest]
        result = run_cli(*args, "--state-dir", str(state_dir), "--service", "batch", "--var", "workspace=my-workspace")
        assert (result.returncode, " ".join(result.stderr.split())) == (1, expected), args
        assert "Traceback" not in result.stderr
    assert not state_dir.exists()
    # The same spec on Batch AI is fine: validate says so.
    assert run_cli("validate", str(sample_spec), "--var", "workspace=my-workspace").returncode == 0


def test_the_sample_plans_on_azure_batch_with_its_warning(sample_spec, tmp_path):
    """The sample spec planned with --service batch on a fresh emulator."""
    from tests.plan.conftest import run_cli

    state_dir = str(tmp_path / "state")
    try:
        machine = run_cli("plan", str(sample_spec), "--state-dir", state_dir, "--service", "batch", "--json")
        assert machine.returncode == 0, machine.stderr
        document = json.loads(machine.stdout)
        assert document["service"] == "batch" and document["has_changes"] is True
        assert document["warnings"] == [
            f"{sample_spec}:43:23: clusters[0].user_account.ssh_public_key: Azure Batch creates pool user accounts with a "
            "password only; the SSH key is not installed: log in with `az batch node user create --ssh-public-key`"
        ]
        text = run_cli("plan", str(sample_spec), "--state-dir", state_dir, "--service", "batch")
        assert text.stdout.startswith(f"Warning: {document['warnings'][0]}\n\nbatchai-spec will apply the following changes on ")
        assert "(Azure Batch):\n" in text.stdout
        saved = tmp_path / "batch-plan.json"
        assert run_cli("plan", str(sample_spec), "--state-dir", state_dir, "--service", "batch", "--out", str(saved)).returncode == 0
        refused = run_cli("apply", str(saved), "--state-dir", state_dir, "--service", "batchai")
        assert refused.returncode == 1 and "was planned for Azure Batch (--service batch)" in refused.stderr
    finally:
        run_cli("emulator", "stop", "--state-dir", state_dir)
