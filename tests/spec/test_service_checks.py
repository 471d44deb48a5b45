"""What each service can realise, checked at validate time (batchai_spec/spec/services.py): errors stop `validate`
(and every command for that service) with one located line each and exit code 1; warnings are printed and the spec
is valid. Every case through the command line, as a user meets it, with `--service` or the spec's `service:`."""

from __future__ import annotations

import pytest

from batchai_spec.spec import load_spec
from batchai_spec.spec.services import ServiceProblem, problems
from tests.cli.running import run_main
from tests.spec.sample import edited, write_spec

# The sample with a workspace name that can name a Batch account.
BASE = edited("  name: ws\n", "  name: ws1\n")


def edit(old: str, new: str, text: str = BASE) -> str:
    return edited(old, new, text)


MOUNTS = "          - share: share-one\n            relative_mount_path: afs\n"
USER = "      {admin_user_name: demo, ssh_public_key: ssh-ed25519 AAAAtest}\n"
SSH_WARNING = (
    "spec.yaml:21:47: clusters[0].user_account.ssh_public_key: Azure Batch creates pool user accounts with a password "
    "only; the SSH key is not installed: log in with `az batch node user create --ssh-public-key`"
)
PASSWORD_ONLY = edit(USER, "      {admin_user_name: demo, admin_user_password: '{{ env.NODE_PW }}'}\n")
PER_POOL = "Azure Batch mounts file systems per pool: move it to the cluster's node_setup.mount_volumes"
JOB_MOUNTS = (
    "        mount_volumes:\n          azure_file_shares:\n            - {share: share-one, relative_mount_path: jobafs}\n"
)


def run_validate(monkeypatch, capsys, tmp_path, text: str, *options: str) -> tuple[int, str, str]:
    write_spec(tmp_path, text)
    monkeypatch.chdir(tmp_path)  # short paths in messages
    monkeypatch.setenv("NODE_PW", "a-node-password-0")
    monkeypatch.setenv("COLUMNS", "1000")
    code, out, err = run_main(monkeypatch, capsys, "validate", "spec.yaml", *options)
    return code, out, "\n".join(" ".join(line.split()) for line in err.splitlines())


# (id, spec text, the error lines, in order)
BATCH_ERRORS = [
    ("account-name-upper", edit("  name: ws1\n", "  name: MyWorkspace\n"),
     ["spec.yaml:13:9: workspace.name: 'MyWorkspace' cannot name a Batch account, which the workspace becomes on Azure "
      "Batch: 3-24 lowercase letters and digits"]),
    ("account-name-short", edit("  name: ws1\n", "  name: w1\n"), ["spec.yaml:13:9: workspace.name: 'w1' cannot name a Batch account"]),
    ("account-name-dash", edit("  name: ws1\n", "  name: my-ws\n"), ["spec.yaml:13:9: workspace.name: 'my-ws' cannot name a Batch account"]),
    ("account-name-long", edit("  name: ws1\n", f"  name: {'w' * 25}\n"), ["spec.yaml:13:9: workspace.name: '" + "w" * 25 + "' cannot"]),
    ("file-servers",
     edit("clusters:\n", "file_servers:\n  - {name: nfs, vm_size: STANDARD_D2_V2, user_account: {admin_user_name: demo, "
            "ssh_public_key: ssh-ed25519 AAAAtest}, data_disks: {disk_size_in_gb: 10, disk_count: 1, storage_account_type: "
            "Standard_LRS}}\nclusters:\n"),
     ["spec.yaml:14:1: file_servers: Batch AI's managed NFS file servers have no Azure Batch counterpart: mount an Azure "
      "file share of storage.file_shares instead"]),
    ("blob-mount",
     edit(MOUNTS, MOUNTS + "        azure_blob_file_systems:\n          - {account_name: blobs1, container_name: runs, "
            "account_key: '{{ env.NODE_PW }}', relative_mount_path: blobs}\n"),
     ["spec.yaml:27:9: clusters[0].node_setup.mount_volumes.azure_blob_file_systems: blob container mounts "
      "(azure_blob_file_systems) are not supported on Azure Batch by batchai-spec yet"]),
    ("unmanaged-mount",
     edit(MOUNTS, MOUNTS + "        unmanaged_file_systems:\n          - {mount_command: mount -t nfs 10.0.0.4:/data, "
            "relative_mount_path: nfs}\n"),
     ["spec.yaml:27:9: clusters[0].node_setup.mount_volumes.unmanaged_file_systems: unmanaged file systems "
      "(unmanaged_file_systems) are not supported on Azure Batch by batchai-spec yet"]),
    ("file-server-mount",
     edit(MOUNTS, MOUNTS + "        file_servers:\n          - {file_server_id: /subscriptions/s/resourceGroups/rg/providers/"
            "Microsoft.BatchAI/workspaces/ws/fileServers/nfs1, relative_mount_path: nfs}\n"),
     ["spec.yaml:27:9: clusters[0].node_setup.mount_volumes.file_servers: file server mounts (file_servers) are not "
      "supported on Azure Batch by batchai-spec yet"]),
    ("performance-counters",
     edit(MOUNTS, MOUNTS + "      performance_counters:\n        app_insights_component_id: /subscriptions/s/resourceGroups/"
            "rg/providers/Microsoft.Insights/components/c\n"),
     ["spec.yaml:27:7: clusters[0].node_setup.performance_counters: Azure Batch has no counterpart of Batch AI's "
      "performance counters: remove them"]),
    ("no-own-share",
     edit(MOUNTS, "          - {account_name: other1, azure_file_url: 'https://other1.file.core.windows.net/logs', "
            "account_key: '{{ env.NODE_PW }}', relative_mount_path: afs}\n"),
     ["spec.yaml:23:7: clusters[0].node_setup.mount_volumes: Azure Batch runs jobs through a launcher that batchai-spec "
      "uploads to a file share the pool mounts: mount one of storage.file_shares in node_setup.mount_volumes"]),
    ("mount-path-characters", edit("relative_mount_path: afs\n", "relative_mount_path: a fs\n").replace("$AZ_BATCHAI_MOUNT_ROOT/afs", "$AZ_BATCHAI_MOUNT_ROOT/a fs"),
     ["spec.yaml:26:34: clusters[0].node_setup.mount_volumes.azure_file_shares[0].relative_mount_path: on Azure Batch "
      "the mount path is part of the tasks' command lines"]),
    ("unknown-image", edit("    vm_size:", "    image: {publisher: Contoso, offer: trainer, sku: '1'}\n    vm_size:"),
     ["spec.yaml:16:5: clusters[0].image: no node agent SKU is known for Contoso/trainer/1: set node_agent_sku_id"]),
    ("custom-image", edit("    vm_size:", "    image: {publisher: microsoft-dsvm, offer: ubuntu-hpc, sku: '2204', "
                          "virtual_machine_image_id: /subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/mine}\n    vm_size:"),
     ["spec.yaml:16:98: clusters[0].image.virtual_machine_image_id: a custom image needs node_agent_sku_id on Azure Batch"]),
    ("job-mounts",
     edit("        custom_toolkit:\n", JOB_MOUNTS + "        custom_toolkit:\n").replace(
         "std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/afs", "std_out_err_path_prefix: $AZ_BATCHAI_JOB_MOUNT_ROOT/jobafs"),
     ["spec.yaml:38:34: experiments[0].jobs[0].std_out_err_path_prefix: $AZ_BATCHAI_JOB_MOUNT_ROOT holds the job's own "
      f"mounts: {PER_POOL} and use $AZ_BATCHAI_MOUNT_ROOT",
      f"spec.yaml:39:9: experiments[0].jobs[0].mount_volumes: a job's own mount_volumes: {PER_POOL}"]),
]


@pytest.mark.parametrize("text, expected", [case[1:] for case in BATCH_ERRORS], ids=[case[0] for case in BATCH_ERRORS])
def test_what_azure_batch_cannot_realise_fails_validate_with_located_lines(monkeypatch, capsys, tmp_path, text, expected):
    code, out, err = run_validate(monkeypatch, capsys, tmp_path, text, "--service", "batch")
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0].startswith("Error: ") and len(lines) == len(expected), err
    for line, gist in zip([lines[0].removeprefix("Error: "), *lines[1:]], expected):
        assert line.startswith(gist), err
    assert "Traceback" not in err
    # The same spec is fine on Batch AI (a batchai spec keeps every Batch AI feature).
    code, _, err = run_validate(monkeypatch, capsys, tmp_path, text)
    assert code == 0, err


def test_the_specs_own_service_key_chooses_the_checks_and_the_option_wins(monkeypatch, capsys, tmp_path):
    text = edit("name: t\n", "name: t\nservice: batch\n", edit("  name: ws1\n", "  name: my-ws\n"))
    code, _, err = run_validate(monkeypatch, capsys, tmp_path, text)
    assert code == 1 and "spec.yaml:14:9: workspace.name: 'my-ws' cannot name a Batch account" in err
    code, out, err = run_validate(monkeypatch, capsys, tmp_path, text, "--service", "batchai")
    assert code == 0, err
    assert "  service          Batch AI (batchai)" in out.splitlines()
    monkeypatch.setenv("BATCHAI_SPEC_SERVICE", "batchai")
    code, _, err = run_validate(monkeypatch, capsys, tmp_path, text)
    assert code == 0, err


def test_warnings_are_printed_and_the_spec_is_valid(monkeypatch, capsys, tmp_path):
    text = edit("    vm_size: STANDARD_NC6\n", "    vm_size: STANDARD_NC6\n    vm_priority: lowpriority\n")
    code, out, err = run_validate(monkeypatch, capsys, tmp_path, text, "--service", "batch")
    assert code == 0, err
    assert out.splitlines()[:3] == ["spec.yaml: valid", "  spec             t (version 1)", "  service          Azure Batch (batch)"]
    assert "  workspace        ws1 in eastus (a Batch account)" in out.splitlines()
    assert err.splitlines() == [
        "Warning: spec.yaml:17:18: clusters[0].vm_priority: Azure Batch allocates Spot nodes for low-priority targets "
        "since March 2026",
        "Warning: " + SSH_WARNING.replace(":21:", ":22:"),
    ]


def test_a_password_account_gives_no_warning(monkeypatch, capsys, tmp_path):
    code, _, err = run_validate(monkeypatch, capsys, tmp_path, PASSWORD_ONLY, "--service", "batch")
    assert (code, err) == (0, "")


def test_node_agent_sku_is_for_azure_batch_only(monkeypatch, capsys, tmp_path):
    image = "    image: {publisher: microsoft-dsvm, offer: ubuntu-hpc, sku: '2204', node_agent_sku_id: batch.node.ubuntu 22.04}\n"
    text = edit("    user_account:\n", image + "    user_account:\n", PASSWORD_ONLY)
    code, _, err = run_validate(monkeypatch, capsys, tmp_path, text)
    assert code == 1
    assert err == (
        "Error: spec.yaml:20:91: clusters[0].image.node_agent_sku_id: node_agent_sku_id is for Azure Batch only "
        "(service: batch); Batch AI picks its node agent itself"
    )
    code, _, err = run_validate(monkeypatch, capsys, tmp_path, text, "--service", "batch")
    assert (code, err) == (0, "")


def test_many_errors_are_listed_in_file_order():
    text = edit("  name: ws1\n", "  name: WS\n", edit(MOUNTS, MOUNTS + "        unmanaged_file_systems:\n"
                  "          - {mount_command: mount x, relative_mount_path: nfs}\n"))
    spec = load_spec_text(text)
    found = problems(spec, "batch")
    assert [problem.path for problem in found if problem.error] == [
        ("workspace", "name"), ("clusters", 0, "node_setup", "mount_volumes", "unmanaged_file_systems"),
    ]
    assert all(isinstance(problem, ServiceProblem) for problem in found)
    assert [problem.error for problem in found].count(False) == 1  # the SSH key
    assert problems(spec, "batchai") == []


def test_an_unknown_service_is_one_message(monkeypatch, capsys, tmp_path):
    code, out, err = run_validate(monkeypatch, capsys, tmp_path, BASE, "--service", "aml")
    assert (code, out, err) == (1, "", "Error: unknown service 'aml': use 'batchai' or 'batch'")
    write_spec(tmp_path, edit("name: t\n", "name: t\nservice: aml\n"))
    code, out, err = run_main(monkeypatch, capsys, "validate", "spec.yaml")
    assert code == 1 and out == ""
    assert " ".join(err.split()) == "Error: spec.yaml:3:10: service: Input should be 'batchai' or 'batch'"


def test_the_sample_validates_clean_on_azure_batch_with_its_one_warning(monkeypatch, capsys):
    code, out, err = run_main(
        monkeypatch, capsys, "validate", "specs/mnist-cntk.yaml", "--service", "batch", "--var", "vm_size=Standard_NC4as_T4_v3"
    )
    assert code == 0, err
    assert "  cluster          mycluster: Standard_NC4as_T4_v3 dedicated, manual 1 node (a pool)" in out.splitlines()
    warnings = [line for line in " ".join(err.split()).split("Warning: ") if line]
    assert [warning for warning in warnings if "produce it with" not in warning] == [
        "specs/mnist-cntk.yaml:43:23: clusters[0].user_account.ssh_public_key: Azure Batch creates pool user accounts "
        "with a password only; the SSH key is not installed: log in with `az batch node user create --ssh-public-key`"
    ]


def load_spec_text(text: str):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as directory:
        return load_spec(write_spec(Path(directory), text)).spec
