"""File servers in the spec: the model with Batch AI's constraints and defaults, and mounts that name a file server
of the spec (`file_server`) or an external one (`file_server_id`), exactly one; every error located."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from batchai_spec.spec import FileServer, FileServerMount, SpecError, load_spec
from tests.spec.sample import edited, write_spec

# Line numbers matter: the broken cases below assert positions in edits of this text.
SPEC = """\
version: 1
name: fs
resource_group: {name: rg, location: eastus}
storage:
  account: {name: acct123}
  file_shares: [{name: share-one}]
workspace: {name: ws}
file_servers:
  - name: nfs
    vm_size: Standard_DS2_v2
    user_account: {admin_user_name: nfsadmin, ssh_public_key: ssh-ed25519 AAAAtest}
    data_disks:
      disk_size_in_gb: 64
      disk_count: 2
      storage_account_type: Premium_LRS
clusters:
  - name: c1
    vm_size: STANDARD_NC6
    scale: {manual: {target_node_count: 1}}
    user_account: {admin_user_name: demo, ssh_public_key: ssh-ed25519 AAAAtest}
    node_setup:
      mount_volumes:
        azure_file_shares: [{share: share-one, relative_mount_path: afs}]
        file_servers:
          - file_server: nfs
            relative_mount_path: nfs
experiments:
  - name: e1
    jobs:
      - name: j1
        cluster: c1
        node_count: 1
        std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/afs
        mount_volumes:
          file_servers: [{file_server: nfs, relative_mount_path: data}]
        custom_toolkit: {command_line: ls $AZ_BATCHAI_JOB_MOUNT_ROOT/data}
"""
EXTERNAL_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/fileServers/theirs"
SECOND_SERVER = """\
  - name: NFS
    vm_size: Standard_D2_v2
    user_account: {admin_user_name: nfsadmin, ssh_public_key: ssh-ed25519 AAAAtest}
    data_disks: {disk_size_in_gb: 64, disk_count: 1, storage_account_type: Standard_LRS}
clusters:
"""


def test_a_file_server_with_service_defaults_mounted_by_name(tmp_path):
    spec = load_spec(write_spec(tmp_path, SPEC)).spec
    (server,) = spec.file_servers
    assert (server.name, server.vm_size, server.user_account.admin_user_name) == ("nfs", "Standard_DS2_v2", "nfsadmin")
    disks = server.data_disks
    assert (disks.disk_size_in_gb, disks.disk_count, disks.storage_account_type, disks.caching_type) == (64, 2, "Premium_LRS", "none")
    assert (server.subnet_id, server.public_ips_to_allow) == (None, ())
    (mount,) = spec.clusters[0].node_setup.mount_volumes.file_servers
    assert (mount.file_server, mount.file_server_id, mount.server_name) == ("nfs", None, "nfs")
    assert spec.experiments[0].jobs[0].mount_volumes.file_servers[0].file_server == "nfs"


def test_every_option_of_a_file_server():
    options = {
        "name": "nfs",
        "vm_size": "Standard_DS2_v2",
        "user_account": {"admin_user_name": "nfsadmin", "admin_user_password": "pw-1"},
        "data_disks": {"disk_size_in_gb": 1, "disk_count": 1, "storage_account_type": "Standard_LRS", "caching_type": "readwrite"},
        "subnet_id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/n",
        "public_ips_to_allow": ["10.0.0.0/8", "192.168.1.1"],
    }
    server = FileServer(**options)
    assert server.public_ips_to_allow == ("10.0.0.0/8", "192.168.1.1")
    assert "pw-1" not in repr(server)
    with pytest.raises(ValidationError, match="at most 400 items"):
        FileServer(**{**options, "public_ips_to_allow": ["10.0.0.1"] * 401})


def test_an_external_file_server_is_mounted_by_its_id(tmp_path):
    text = edited("          - file_server: nfs\n", f"          - file_server_id: {EXTERNAL_ID}\n", SPEC)
    spec = load_spec(write_spec(tmp_path, text)).spec
    mount = spec.clusters[0].node_setup.mount_volumes.file_servers[0]
    assert (mount.file_server, mount.file_server_id, mount.server_name) == (None, EXTERNAL_ID, "theirs")
    assert FileServerMount(file_server="nfs", relative_mount_path="n").server_name == "nfs"


def test_job_output_on_a_named_file_server_is_refused_with_its_name(tmp_path):
    text = edited("std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/afs", "std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/nfs", SPEC)
    with pytest.raises(SpecError, match=r"\$AZ_BATCHAI_MOUNT_ROOT/nfs is a file server nfs; Batch AI lists job output files only"):
        load_spec(write_spec(tmp_path, text))


# (id, broken text, "line:column", gist of the first message line)
BROKEN = [
    ("dangling-in-cluster", edited("          - file_server: nfs\n", "          - file_server: nsf\n", SPEC), "25:26",
     "clusters[0].node_setup.mount_volumes.file_servers[0].file_server: file server 'nsf' is not declared in file_servers; did you mean 'nfs'?"),
    ("dangling-in-job", edited("[{file_server: nfs, relative", "[{file_server: other, relative", SPEC), "35:40",
     "experiments[0].jobs[0].mount_volumes.file_servers[0].file_server: file server 'other' is not declared in file_servers; expected one of: nfs"),
    ("name-and-id", edited("            relative_mount_path: nfs\n", f"            relative_mount_path: nfs\n            file_server_id: {EXTERNAL_ID}\n", SPEC),
     "27:29", "give either `file_server` (a file server of this spec) or `file_server_id`, not both"),
    ("neither-name-nor-id", edited("          - file_server: nfs\n            relative_mount_path: nfs\n", "          - relative_mount_path: nfs\n", SPEC),
     "25:13", "give `file_server` (a file server of this spec) or `file_server_id` (an external file server's ARM id)"),
    ("duplicate-name", edited("clusters:\n", SECOND_SERVER, SPEC), "16:11", "duplicate file server name 'NFS' (also at file_servers[0].name)"),
    ("bad-name", edited("  - name: nfs\n", "  - name: nfs server\n", SPEC), "9:11", "String should match pattern"),
    ("bad-storage-type", edited("Premium_LRS", "Premium_ZRS", SPEC), "15:29", "'Standard_LRS' or 'Premium_LRS'"),
    ("bad-caching-type", edited("      disk_count: 2\n", "      disk_count: 2\n      caching_type: writeback\n", SPEC), "15:21",
     "'none', 'readonly' or 'readwrite'"),
    ("no-disks", edited("      disk_count: 2\n", "      disk_count: 0\n", SPEC), "14:19", "greater than or equal to 1"),
    ("missing-data-disks", edited("    data_disks:\n      disk_size_in_gb: 64\n      disk_count: 2\n      storage_account_type: Premium_LRS\n", "", SPEC),
     "9:5", "file_servers[0].data_disks: missing required key 'data_disks'"),
    ("typo-key", edited("    data_disks:\n", "    data_disk:\n", SPEC), "12:5", "unknown key 'data_disk'; did you mean 'data_disks'?"),
    ("too-many-ip-ranges", edited("    data_disks:\n", "    public_ips_to_allow: {{ ['10.0.0.1'] * 401 }}\n    data_disks:\n", SPEC),
     "12:5", "at most 400 items"),
    ("user-without-credentials", edited("{admin_user_name: nfsadmin, ssh_public_key: ssh-ed25519 AAAAtest}", "{admin_user_name: nfsadmin}", SPEC),
     "11:5", "give ssh_public_key or admin_user_password"),
]


@pytest.mark.parametrize(("text", "location", "gist"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_a_broken_file_server_gives_one_located_message(tmp_path, text, location, gist):
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    first_line = raised.value.message.splitlines()[0]
    assert first_line.startswith(f"{path}:{location}: "), first_line
    assert gist in first_line
