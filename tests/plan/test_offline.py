"""The plan layer without an endpoint: graph, diff, policy, renderers. Live reads are covered in test_plan_live.py."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from batchai_spec.errors import UserError
from batchai_spec.graph import build_graph
from batchai_spec.services.batchai import REGISTRY
from batchai_spec.observed import Observed, Run, Stored
from batchai_spec.plan import Action, build_destroy_plan, build_plan
from batchai_spec.plan.diff import field_changes
from batchai_spec.plan.render_markdown import GITHUB_COMMENT_LIMIT, render_markdown
from batchai_spec.plan.render_text import render_text
from batchai_spec.sensitive import Sensitive, changed_sensitive_paths, fingerprints, masked
from batchai_spec.spec import load_spec

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"


def write_spec(tmp_path: Path, jobs: int = 1, password: str | None = None) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "train.py").write_text("print('hi')\n")
    user = "{admin_user_name: demo, ssh_public_key: ssh-ed25519 AAAAtest" + (f", admin_user_password: '{password}'" if password else "") + "}"
    job_text = "\n".join(
        textwrap.indent(
            textwrap.dedent(
                f"""\
                - name: job{index}
                  cluster: gpu
                  node_count: 1
                  input_directories: {{CODE: $AZ_BATCHAI_MOUNT_ROOT/share/code}}
                  std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/share
                  custom_toolkit: {{command_line: python $AZ_BATCHAI_INPUT_CODE/train.py --lr 0.{index}}}
                """
            ),
            "      ",
        )
        for index in range(jobs)
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            name: offline
            resource_group: {{name: rg, location: eastus}}
            storage:
              account: {{name: acct}}
              file_shares:
                - name: share
                  quota_gb: 5
                  uploads: [{{source: train.py, destination: code/train.py}}]
            workspace: {{name: ws}}
            clusters:
              - name: gpu
                vm_size: standard_nc6
                scale: {{manual: {{target_node_count: 1}}}}
                user_account: {user}
                node_setup:
                  mount_volumes:
                    azure_file_shares: [{{share: share, relative_mount_path: share}}]
            experiments:
              - name: exp
                jobs:
            """
        )
        + job_text
        + "\n"
    )
    return spec


def absent(graph) -> dict[str, Observed]:
    return {r.address: Observed(r.address, r.kind, r.ids, None) for r in graph}


def converged(graph, salt: str = "salt") -> dict[str, Observed]:
    """What the live read returns after an apply of exactly this graph."""
    from batchai_spec.graph import prune
    from batchai_spec.sensitive import without_write_only

    observed = {}
    for r in graph:
        stored, run = Stored(), None
        if r.kind == "workspace":
            stored = Stored(salt=salt)
        if r.kind in ("cluster", "job"):
            stored = Stored(fingerprints(r.desired, salt), salt, r.extra.get("inputs_digest"))
        if r.kind == "job":
            run = Run("succeeded")
        body = prune(without_write_only(r.desired))
        observed[r.address] = Observed(r.address, r.kind, r.ids, body, True, stored=stored, run=run)
    return observed


def test_plan_from_nothing_creates_every_resource(tmp_path):
    graph = build_graph(load_spec(write_spec(tmp_path)), REGISTRY, SUBSCRIPTION)
    plan = build_plan(graph, absent(graph), spec_path="spec.yaml", endpoint="test")
    assert [c.action for c in plan.changes] == [Action.CREATE] * len(graph.resources)
    assert plan.summary() == f"Plan: {len(graph.resources)} to add, 0 to change, 0 to replace, 0 to destroy."
    assert graph.resources["cluster.gpu"].desired["vm_size"] == "STANDARD_NC6"


def test_converged_state_plans_no_changes(tmp_path):
    graph = build_graph(load_spec(write_spec(tmp_path, password="hunter2-secret")), REGISTRY, SUBSCRIPTION)
    plan = build_plan(graph, converged(graph), spec_path="spec.yaml", endpoint="test")
    assert not plan.has_changes
    assert render_text(plan).plain.strip() == "No changes."


def test_scale_change_is_in_place_and_vm_size_forces_replacement(tmp_path):
    graph = build_graph(load_spec(write_spec(tmp_path)), REGISTRY, SUBSCRIPTION)
    observed = converged(graph)
    live = observed["cluster.gpu"].state
    live["scale_settings"]["manual"]["target_node_count"] = 3
    plan = build_plan(graph, observed, spec_path="s", endpoint="t")
    change = next(c for c in plan.changes if c.address == "cluster.gpu")
    assert change.action is Action.UPDATE
    assert [f.path for f in change.fields] == ["scale_settings.manual.target_node_count"]

    live["vm_size"] = "STANDARD_NC12"
    plan = build_plan(graph, observed, spec_path="s", endpoint="t")
    change = next(c for c in plan.changes if c.address == "cluster.gpu")
    assert change.action is Action.REPLACE
    assert change.replace_paths == ["vm_size"]
    text = render_text(plan).plain
    assert '~ vm_size = "STANDARD_NC12" -> "STANDARD_NC6"  # forces replacement' in text


def test_password_change_is_seen_only_through_its_fingerprint(tmp_path):
    old = build_graph(load_spec(write_spec(tmp_path, password="old-password-1")), REGISTRY, SUBSCRIPTION)
    new = build_graph(load_spec(write_spec(tmp_path, password="new-password-2")), REGISTRY, SUBSCRIPTION)
    plan = build_plan(new, converged(old), spec_path="s", endpoint="t")
    change = next(c for c in plan.changes if c.address == "cluster.gpu")
    assert change.action is Action.REPLACE
    assert change.replace_paths == ["user_account_settings.admin_user_password"]
    rendered = render_text(plan).plain + json.dumps(plan.to_json(), default=str) + render_markdown(plan)
    assert "old-password-1" not in rendered and "new-password-2" not in rendered
    assert "(sensitive)" in rendered


def test_changed_input_file_replaces_the_job_that_reads_it(tmp_path):
    spec = write_spec(tmp_path)
    before = converged(build_graph(load_spec(spec), REGISTRY, SUBSCRIPTION))
    (tmp_path / "train.py").write_text("print('changed')\n")
    graph = build_graph(load_spec(spec), REGISTRY, SUBSCRIPTION)
    plan = build_plan(graph, before, spec_path="s", endpoint="t")
    actions = {c.address: c.action for c in plan.changes if c.action is not Action.NO_OP}
    assert actions == {"file.share/code/train.py": Action.UPDATE, "job.exp/job0": Action.REPLACE}
    job = next(c for c in plan.changes if c.address == "job.exp/job0")
    assert job.reasons == ["input files changed: file.share/code/train.py"]


def test_owned_undeclared_resources_are_deleted_and_foreign_ones_left_alone(tmp_path):
    graph = build_graph(load_spec(write_spec(tmp_path)), REGISTRY, SUBSCRIPTION)
    observed = converged(graph)
    ids = graph.resources["cluster.gpu"].ids
    observed["cluster.old"] = Observed("cluster.old", "cluster", {**ids, "cluster": "old"}, {"vm_size": "X"}, owned=True)
    observed["cluster.theirs"] = Observed("cluster.theirs", "cluster", {**ids, "cluster": "theirs"}, {"vm_size": "X"})
    plan = build_plan(graph, observed, spec_path="s", endpoint="t")
    assert [(c.address, c.action) for c in plan.changes if c.action is not Action.NO_OP] == [
        ("cluster.old", Action.DELETE)
    ]


def test_replace_flag_and_unknown_addresses(tmp_path):
    graph = build_graph(load_spec(write_spec(tmp_path)), REGISTRY, SUBSCRIPTION)
    plan = build_plan(graph, converged(graph), spec_path="s", endpoint="t", replace=["job.exp/job0"])
    assert [c.address for c in plan.changes if c.action is Action.REPLACE] == ["job.exp/job0"]
    with pytest.raises(UserError, match="--target cluster.nope: no such address"):
        build_plan(graph, converged(graph), spec_path="s", endpoint="t", only=["cluster.nope"])


def test_target_limits_the_plan_to_the_address_and_its_dependencies(tmp_path):
    graph = build_graph(load_spec(write_spec(tmp_path)), REGISTRY, SUBSCRIPTION)
    plan = build_plan(graph, absent(graph), spec_path="s", endpoint="t", only=["cluster.gpu"])
    assert {c.address for c in plan.changes} == {
        "resource_group.rg", "storage_account.acct", "file_share.share", "workspace.ws", "cluster.gpu"
    }


def test_destroy_deletes_owned_resources_children_first(tmp_path):
    graph = build_graph(load_spec(write_spec(tmp_path)), REGISTRY, SUBSCRIPTION)
    observed = converged(graph)
    # delete_on_destroy is false: the group stays, even though the spec created it
    plan = build_destroy_plan(graph, observed, spec_path="s", endpoint="t")
    order = [c.address for c in plan.changes]
    assert "resource_group.rg" not in order
    assert order.index("job.exp/job0") < order.index("experiment.exp") < order.index("workspace.ws")
    assert order.index("file.share/code/train.py") < order.index("directory.share/code") < order.index("file_share.share")


def test_markdown_of_a_2000_job_sweep_stays_under_githubs_limit(tmp_path):
    graph = build_graph(load_spec(write_spec(tmp_path, jobs=2000)), REGISTRY, SUBSCRIPTION)
    plan = build_plan(graph, absent(graph), spec_path="s", endpoint="t")
    markdown = render_markdown(plan)
    assert len(markdown) <= GITHUB_COMMENT_LIMIT
    assert markdown.startswith("### batchai-spec plan: `offline`")
    assert "were left out to stay within GitHub's 65,536-character limit" in markdown


def test_field_changes_and_sensitive_helpers():
    assert [c.path for c in field_changes(REGISTRY["cluster"], {"a": {"b": [1, 2]}}, {"a": {"b": [1, 3]}})] == ["a.b[1]"]
    tree = {"secrets": [{"name": "TOKEN", "value": Sensitive("s3cr3t")}], "x": Sensitive(None, derived_from="k")}
    assert masked(tree) == {"secrets": [{"name": "TOKEN", "value": "(sensitive)"}], "x": "(sensitive)"}
    stored = fingerprints(tree, "salt")
    assert "s3cr3t" not in stored
    assert changed_sensitive_paths(tree, "salt", stored) == []
    renamed = {"secrets": [{"name": "OTHER", "value": Sensitive("s3cr3t")}]}
    assert changed_sensitive_paths(renamed, "salt", stored) == ["secrets[OTHER].value"]
    assert repr(Sensitive("s3cr3t")) == "(sensitive)"


def test_a_declared_resource_someone_else_created_is_adopted_never_replaced(tmp_path):
    graph = build_graph(load_spec(write_spec(tmp_path, password="p4ssw0rd-x")), REGISTRY, SUBSCRIPTION)
    observed = converged(graph)
    theirs = observed["cluster.gpu"]
    theirs.owned, theirs.stored = False, Stored()  # created by hand, identically: its password cannot be known
    assert not build_plan(graph, observed, spec_path="s", endpoint="t").has_changes
    theirs.state["vm_size"] = "STANDARD_NC12"
    with pytest.raises(UserError, match="cluster.gpu already exists and was not created by this spec"):
        build_plan(graph, observed, spec_path="s", endpoint="t")


def test_locations_compare_without_case_or_spaces(tmp_path):
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text().replace("location: eastus", "location: EastUS"))
    graph = build_graph(load_spec(spec), REGISTRY, SUBSCRIPTION)
    assert {graph.resources[a].desired["location"] for a in ("resource_group.rg", "workspace.ws")} == {"eastus"}


def test_a_childs_tag_names_the_spec_that_created_it():
    from batchai_spec.services.batchai.ownership import child_record, read_child_record

    assert read_child_record(child_record("spec-a", "abc.def"), "spec-a") == (True, "abc.def")
    assert read_child_record(child_record("spec-a", "abc.def"), "spec-b") == (False, None)
    assert read_child_record(None, "spec-a") == (False, None)


def test_a_file_named_only_in_a_command_line_is_an_input_of_the_job(tmp_path):
    spec = write_spec(tmp_path)
    text = re.sub(r" *input_directories: .*\n", "", spec.read_text())
    spec.write_text(text.replace("$AZ_BATCHAI_INPUT_CODE/train.py", "$AZ_BATCHAI_MOUNT_ROOT/share/code/train.py"))
    graph = build_graph(load_spec(spec), REGISTRY, SUBSCRIPTION)
    assert graph.resources["job.exp/job0"].extra["input_files"] == ("file.share/code/train.py",)


def test_a_running_job_that_a_change_stops_is_named_with_its_time(tmp_path):
    graph = build_graph(load_spec(write_spec(tmp_path, jobs=2)), REGISTRY, SUBSCRIPTION)
    observed = converged(graph)
    observed["job.exp/job0"].run = Run("running", started=1_000.0)
    observed["job.exp/job1"].run = Run("queued")
    replace = ["job.exp/job0", "job.exp/job1"]
    plan = build_plan(graph, observed, spec_path="s", endpoint="t", replace=replace, now=1_312.0)
    assert plan.notes() == [
        "job.exp/job0 is running (5m12s): replacing it stops the run",
        "job.exp/job1 is queued: replacing it stops the run",
    ]
    assert "# job.exp/job0 is running (5m12s): replacing it stops the run" in render_text(plan).plain
    assert "> [!WARNING]\n> - job.exp/job0 is running (5m12s): replacing it stops the run\n> - job.exp/job1" in render_markdown(plan)
    later = build_plan(graph, observed, spec_path="s", endpoint="t", replace=replace, now=9_999.0)
    assert later.content_fingerprint() == plan.content_fingerprint(), "a saved plan is not stale because time passed"
    destroy = build_destroy_plan(graph, observed, spec_path="s", endpoint="t", now=1_312.0)
    assert "job.exp/job0 is running (5m12s): deleting it stops the run" in destroy.notes()
    observed["job.exp/job0"].run = Run("succeeded")
    assert build_plan(graph, observed, spec_path="s", endpoint="t", replace=["job.exp/job0"]).notes() == []


def test_a_saved_plan_keeps_its_variables_except_those_that_feed_a_secret(tmp_path):
    from batchai_spec.plan.saved import check_withheld_given, load_saved_plan, save_plan

    graph = build_graph(load_spec(write_spec(tmp_path)), REGISTRY, SUBSCRIPTION)
    plan = build_plan(graph, absent(graph), spec_path="s", endpoint="t")
    path = tmp_path / "saved.plan"
    variables = {
        "epochs": "3", "pw": "hunter2-secret", "pw_part": "hunter2", "lr": 0.1,
        "creds": {"user": "me", "keys": ["k1", "s3cr3t-key"]},  # a --var-file's value may be a tree
    }
    save_plan(plan, path, replace=(), only=(), variables=variables, secrets=["prefix-hunter2-secret", "s3cr3t-key"])
    assert "hunter2" not in path.read_text() and "s3cr3t" not in path.read_text()
    saved = load_saved_plan(path)
    assert saved.variables == {"epochs": "3", "lr": 0.1}
    assert saved.withheld == ("creds", "pw", "pw_part")
    with pytest.raises(UserError, match=r"apply it with --var creds=\.\.\. --var pw=\.\.\. --var pw_part=\.\.\. \(or a --var-file"):
        check_withheld_given(saved, [], path)
    check_withheld_given(saved, ["pw", "pw_part", "creds"], path)


def test_a_job_naming_its_cluster_in_another_case_runs_on_the_cluster_by_its_own_name(tmp_path):
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text().replace("cluster: gpu", "cluster: GPU"))
    graph = build_graph(load_spec(spec), REGISTRY, SUBSCRIPTION)
    job = graph.resources["job.exp/job0"]
    assert job.desired["cluster"]["id"].endswith("/workspaces/ws/clusters/gpu")
    assert "cluster.gpu" in job.depends_on
