"""A file server declared in the spec and mounted by name, by a cluster and by a job: apply creates it before them,
a second plan finds nothing to do, destroy deletes it after them (through ARM: SDK 7 has no file server delete)."""

from __future__ import annotations

import json

from tests.e2e.project import RESOURCE_GROUP, WORKSPACE, Project

SPEC = """\
version: 1
name: e2e-nfs
resource_group: {name: e2e-rg, location: westeurope}
storage:
  account: {name: e2estore}
  file_shares: [{name: e2eshare, quota_gb: 1}]
workspace: {name: e2ews}
file_servers:
  - name: nfs
    vm_size: Standard_DS2_v2
    user_account:
      admin_user_name: nfsadmin
      admin_user_password: "{{ env.E2E_ADMIN_PASSWORD }}"
    data_disks: {disk_size_in_gb: 32, disk_count: 1, storage_account_type: Standard_LRS}
clusters:
  - name: gpu
    vm_size: STANDARD_NC6
    scale: {manual: {target_node_count: 1}}
    user_account: {admin_user_name: trainer, admin_user_password: "{{ env.E2E_ADMIN_PASSWORD }}"}
    node_setup:
      mount_volumes:
        azure_file_shares: [{share: e2eshare, relative_mount_path: afs}]
        file_servers: [{file_server: nfs, relative_mount_path: nfs}]
experiments:
  - name: exp
    jobs:
      - name: train
        cluster: gpu
        node_count: 1
        std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/afs
        mount_volumes:
          file_servers: [{file_server: nfs, relative_mount_path: jobnfs}]
        custom_toolkit:
          command_line: echo written-on-nfs > $AZ_BATCHAI_MOUNT_ROOT/nfs/proof.txt && cat $AZ_BATCHAI_JOB_MOUNT_ROOT/jobnfs/proof.txt
"""
SERVER, CLUSTER = "file_server.nfs", "cluster.gpu"


def _position(events: list[dict], event: str, address: str) -> int:
    return next(index for index, e in enumerate(events) if e["event"] == event and e.get("address") == address)


def test_a_file_server_mounted_by_name_is_applied_planned_and_destroyed(project: Project):
    spec = project.root / "specs" / "nfs.yaml"
    spec.write_text(SPEC)

    applied = project.cli("apply", "-y", "--json", target=spec)
    events = applied.events()
    assert _position(events, "change.finished", SERVER) < _position(events, "change.started", CLUSTER)
    # The cluster's nodes and the job both mount the one server: what the node wrote, the job's mount shows.
    assert project.job().execution_state == "succeeded"
    assert "written-on-nfs" in "".join(e["text"] for e in applied.events_of("job.log"))
    (server,) = project.batchai.file_servers.list_by_workspace(RESOURCE_GROUP, WORKSPACE)
    assert (server.name, server.vm_size, server.provisioning_state) == ("nfs", "STANDARD_DS2_V2", "succeeded")
    (mounted,) = project.cluster().node_setup.mount_volumes.file_servers
    assert mounted.file_server.id == server.id
    tags = project.batchai.workspaces.get(RESOURCE_GROUP, WORKSPACE).tags
    assert tags["batchai-spec.file_server.nfs"].startswith("e2e-nfs:")  # owned, with its password's fingerprint

    assert project.cli("plan", "--detailed-exitcode", target=spec).stdout.strip() == "No changes."
    status = project.cli("status", "--format", "json", target=spec).stdout
    row = next(json.loads(line) for line in status.splitlines() if json.loads(line)["address"] == SERVER)
    assert (row["state"], row["details"], row["owned"]) == ("succeeded", "nfs 127.0.0.1:/mnt/data", True)

    destroyed = project.cli("destroy", "-y", "--json", target=spec)
    events = destroyed.events()
    assert _position(events, "change.finished", CLUSTER) < _position(events, "change.started", SERVER)
    assert _position(events, "change.finished", SERVER) < _position(events, "change.started", f"workspace.{WORKSPACE}")
    assert list(project.batchai.workspaces.list_by_resource_group(RESOURCE_GROUP)) == []
    assert project.cli("destroy", "-y", target=spec).stdout.strip() == "Nothing to destroy."
