"""The file server kind without an endpoint: its graph, bodies, policy and ordering against a cluster and a job that
mount it by name. Live reads of it are covered in test_plan_live.py (the fixture spec has one)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from azure.mgmt.batchai import models as batchai_models

from batchai_spec.engine.executor import Executor
from batchai_spec.graph import build_graph, prune
from batchai_spec.observed import Observed, Run, Stored
from batchai_spec.plan import Action, build_destroy_plan, build_plan
from batchai_spec.plan.render_markdown import render_markdown
from batchai_spec.plan.render_text import render_text
from batchai_spec.sensitive import Sensitive, fingerprints, revealed, without_write_only
from batchai_spec.services.batchai import REGISTRY
from batchai_spec.services.batchai.normalize import file_server_body
from batchai_spec.spec import load_spec

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
SERVER_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/fileServers/nfs"


def write_spec(tmp_path: Path, password: str = "old-fs-password-1", vm_size: str = "standard_ds2_v2") -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            name: offline
            resource_group: {{name: rg, location: eastus}}
            storage:
              account: {{name: acct}}
              file_shares: [{{name: share, quota_gb: 5}}]
            workspace: {{name: ws}}
            file_servers:
              - name: nfs
                vm_size: {vm_size}
                user_account: {{admin_user_name: nfsadmin, admin_user_password: '{password}'}}
                data_disks: {{disk_size_in_gb: 64, disk_count: 2, storage_account_type: Standard_LRS}}
            clusters:
              - name: gpu
                vm_size: standard_nc6
                scale: {{manual: {{target_node_count: 1}}}}
                user_account: {{admin_user_name: demo, ssh_public_key: ssh-ed25519 AAAAtest}}
                node_setup:
                  mount_volumes:
                    azure_file_shares: [{{share: share, relative_mount_path: share}}]
                    file_servers: [{{file_server: nfs, relative_mount_path: nfs}}]
            experiments:
              - name: exp
                jobs:
                  - name: job
                    cluster: gpu
                    node_count: 1
                    std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/share
                    mount_volumes:
                      file_servers: [{{file_server: nfs, relative_mount_path: data, source_directory: inputs}}]
                    custom_toolkit: {{command_line: ls $AZ_BATCHAI_JOB_MOUNT_ROOT/data}}
            """
        )
    )
    return spec


def graph_of(spec: Path):
    return build_graph(load_spec(spec), REGISTRY, SUBSCRIPTION)


def absent(graph) -> dict[str, Observed]:
    return {r.address: Observed(r.address, r.kind, r.ids, None) for r in graph}


def converged(graph, salt: str = "salt") -> dict[str, Observed]:
    """What the live read returns after an apply of exactly this graph: every kind that stores fingerprints has
    them stored, the job has run."""
    observed = {}
    for r in graph:
        stored = Stored(salt=salt) if r.kind == "workspace" else Stored()
        if REGISTRY[r.kind].stores_fingerprints:
            stored = Stored(fingerprints(r.desired, salt), salt, r.extra.get("inputs_digest"))
        run = Run("succeeded") if r.kind == "job" else None
        observed[r.address] = Observed(r.address, r.kind, r.ids, prune(without_write_only(r.desired)), True, stored=stored, run=run)
    return observed


def actions(plan) -> dict[str, Action]:
    return {c.address: c.action for c in plan.changes if c.action is not Action.NO_OP}


def test_the_file_server_is_created_before_what_mounts_it_with_its_id_in_their_bodies(tmp_path):
    graph = graph_of(write_spec(tmp_path))
    server = graph.resources["file_server.nfs"]
    assert server.depends_on == ("workspace.ws",)
    assert server.desired == {
        "vm_size": "STANDARD_DS2_V2",
        "ssh_configuration": {
            "public_ips_to_allow": ["*"],
            "user_account_settings": {"admin_user_name": "nfsadmin", "admin_user_password": Sensitive("old-fs-password-1")},
        },
        "data_disks": {"disk_size_in_gb": 64, "disk_count": 2, "storage_account_type": "Standard_LRS", "caching_type": "none"},
    }
    cluster, job = graph.resources["cluster.gpu"], graph.resources["job.exp/job"]
    assert "file_server.nfs" in cluster.depends_on and "file_server.nfs" in job.depends_on
    assert cluster.desired["node_setup"]["mount_volumes"]["file_servers"] == [
        {"file_server": {"id": SERVER_ID}, "relative_mount_path": "nfs"}
    ]
    assert job.desired["mount_volumes"]["file_servers"] == [
        {"file_server": {"id": SERVER_ID}, "relative_mount_path": "data", "source_directory": "inputs"}
    ]
    plan = build_plan(graph, absent(graph), spec_path="s", endpoint="t")
    order = [c.address for c in plan.changes]
    assert actions(plan) == {address: Action.CREATE for address in graph.resources}
    assert order.index("workspace.ws") < order.index("file_server.nfs") < order.index("cluster.gpu")
    assert "old-fs-password-1" not in render_text(plan).plain + json.dumps(plan.to_json(), default=str)


def test_the_sdk_model_of_the_desired_body_is_a_valid_create_request(tmp_path):
    desired = graph_of(write_spec(tmp_path)).resources["file_server.nfs"].desired
    parameters = batchai_models.FileServerCreateParameters.from_dict(revealed(desired))
    assert parameters.ssh_configuration.user_account_settings.admin_user_password == "old-fs-password-1"
    assert parameters.serialize()["properties"]["dataDisks"] == {
        "diskSizeInGB": 64, "diskCount": 2, "storageAccountType": "Standard_LRS", "cachingType": "none"
    }


def test_a_live_file_server_is_normalised_to_the_desired_shape(tmp_path):
    """As the service answers a GET or list: vm size upper-cased, password never returned, read-only fields."""
    live = batchai_models.FileServer.deserialize({
        "id": SERVER_ID, "name": "nfs", "type": "Microsoft.BatchAI/workspaces/fileservers",
        "properties": {
            "vmSize": "Standard_DS2_v2",
            "sshConfiguration": {"userAccountSettings": {"adminUserName": "nfsadmin"}},
            "dataDisks": {"diskSizeInGB": 64, "diskCount": 2, "storageAccountType": "Standard_LRS", "cachingType": "none"},
            "mountSettings": {"mountPoint": "/mnt/data", "fileServerInternalIP": "10.0.0.4"},
            "provisioningState": "succeeded",
            "creationTime": "2018-06-01T10:00:00Z",
        },
    })
    desired = graph_of(write_spec(tmp_path)).resources["file_server.nfs"].desired
    assert file_server_body(live) == prune(without_write_only(desired))


def test_converged_state_plans_no_changes(tmp_path):
    graph = graph_of(write_spec(tmp_path))
    plan = build_plan(graph, converged(graph), spec_path="s", endpoint="t")
    assert not plan.has_changes


def test_a_new_vm_size_replaces_the_server_and_the_cluster_mounting_it(tmp_path):
    graph = graph_of(write_spec(tmp_path))
    observed = converged(graph)
    observed["file_server.nfs"].state["vm_size"] = "STANDARD_D4_V2"
    plan = build_plan(graph, observed, spec_path="s", endpoint="t")
    # The finished job ran on the old server: it is not run again for it (only an active run would be).
    assert actions(plan) == {"file_server.nfs": Action.REPLACE, "cluster.gpu": Action.REPLACE}
    server = next(c for c in plan.changes if c.address == "file_server.nfs")
    assert server.replace_paths == ["vm_size"]
    assert next(c for c in plan.changes if c.address == "cluster.gpu").reasons == ["file_server.nfs is replaced"]
    assert '~ vm_size = "STANDARD_D4_V2" -> "STANDARD_DS2_V2"  # forces replacement' in render_text(plan).plain

    observed["job.exp/job"].run = Run("running", started=1.0)
    assert actions(build_plan(graph, observed, spec_path="s", endpoint="t"))["job.exp/job"] is Action.REPLACE


def test_a_changed_password_is_seen_only_through_its_fingerprint(tmp_path):
    old = graph_of(write_spec(tmp_path))
    new = graph_of(write_spec(tmp_path, password="new-fs-password-2"))
    plan = build_plan(new, converged(old), spec_path="s", endpoint="t")
    assert actions(plan) == {"file_server.nfs": Action.REPLACE, "cluster.gpu": Action.REPLACE}
    server = next(c for c in plan.changes if c.address == "file_server.nfs")
    assert server.replace_paths == ["ssh_configuration.user_account_settings.admin_user_password"]
    rendered = render_text(plan).plain + json.dumps(plan.to_json(), default=str) + render_markdown(plan)
    assert "old-fs-password-1" not in rendered and "new-fs-password-2" not in rendered


def test_a_file_server_is_never_updated_in_place():
    kind = REGISTRY["file_server"]
    assert not kind.can("update") and not kind.can("terminate")
    assert kind.parent_address({"resource_group": "rg", "workspace": "ws", "file_server": "nfs"}, set()) == "workspace.ws"


def test_destroy_deletes_the_server_after_the_cluster_and_job_that_mount_it(tmp_path):
    graph = graph_of(write_spec(tmp_path))
    observed = converged(graph)
    plan = build_destroy_plan(graph, observed, spec_path="s", endpoint="t")
    assert actions(plan)["file_server.nfs"] is Action.DELETE
    order = [c.address for c in plan.changes]
    assert order.index("job.exp/job") < order.index("cluster.gpu") < order.index("file_server.nfs") < order.index("workspace.ws")
    # The engine's walk: each deletion waits for those listed in its `after`.
    deletions, _ = Executor(plan, graph, observed, connection=None, waits=None, reporter=None).steps()
    after = {step.address: step.after for step in deletions}
    assert {"cluster.gpu", "job.exp/job"} <= after["file_server.nfs"]
    assert "file_server.nfs" in after["workspace.ws"]


def test_an_owned_file_server_no_longer_declared_is_deleted_and_its_status_shows_its_mount(tmp_path):
    graph = graph_of(write_spec(tmp_path))
    observed = converged(graph)
    ids = {**graph.resources["file_server.nfs"].ids, "file_server": "old"}
    observed["file_server.old"] = Observed("file_server.old", "file_server", ids, {"vm_size": "X"}, owned=True)
    observed["file_server.theirs"] = Observed("file_server.theirs", "file_server", {**ids, "file_server": "theirs"}, {"vm_size": "X"})
    assert actions(build_plan(graph, observed, spec_path="s", endpoint="t")) == {"file_server.old": Action.DELETE}
    live = observed["file_server.nfs"]
    live.status = {"provisioning_state": "succeeded", "mount_settings": {"mount_point": "/mnt/data", "file_server_internal_ip": "10.0.0.4"}}
    assert REGISTRY["file_server"].status(live) == ("succeeded", "nfs 10.0.0.4:/mnt/data")
    live.status = {"provisioning_state": "creating"}
    assert REGISTRY["file_server"].status(live) == ("creating", "")


def test_a_server_dropped_with_the_cluster_that_mounts_it_is_deleted_after_that_cluster(tmp_path):
    """Neither is declared any more: what orders their deletions is the cluster's live body, which mounts it."""
    observed = converged(graph_of(write_spec(tmp_path)))
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "pyproject.toml").write_text("")
    (bare / "spec.yaml").write_text(
        "version: 1\nname: offline\nresource_group: {name: rg, location: eastus}\n"
        "storage:\n  account: {name: acct}\n  file_shares: [{name: share, quota_gb: 5}]\nworkspace: {name: ws}\n"
    )
    graph = graph_of(bare / "spec.yaml")
    for address in list(observed):
        if address not in graph.resources and not address.startswith(("cluster.", "file_server.", "experiment.", "job.")):
            del observed[address]
    plan = build_plan(graph, observed, spec_path="s", endpoint="t")
    assert set(actions(plan)) == {"file_server.nfs", "cluster.gpu", "experiment.exp", "job.exp/job"}
    deletions, _ = Executor(plan, graph, observed, connection=None, waits=None, reporter=None).steps()
    after = {step.address: step.after for step in deletions}
    assert after["file_server.nfs"] == {"cluster.gpu", "job.exp/job"}
    assert after["cluster.gpu"] == {"job.exp/job"}
