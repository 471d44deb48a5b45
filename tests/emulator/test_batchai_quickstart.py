"""The Batch AI quickstart through the unmodified SDKs, start to end, against the emulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import azure.mgmt.batchai.models as models
import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.fileshare import ShareServiceClient

from batchai_spec.emulator.batchai.config import DELAY_SCALE_VARIABLE
from batchai_spec.emulator.endpoint import ENDPOINT_FILE, Endpoint
from tests.emulator.batchai_support import batchai  # noqa: F401
from tests.emulator.batchai_support import batchai_client_for, wait_for
from tests.emulator_clients import LOCATION, resource_client_for, storage_client_for, unique_name

TRAIN = """\
import json, os, sys
data_dir, model_dir = sys.argv[1], sys.argv[2]
print("training on", open(os.path.join(data_dir, "data.txt")).read().strip())
print("progress 50%", file=sys.stderr)
with open(os.path.join(model_dir, "model.dnn"), "w") as model:
    model.write("weights")
names = [name for name in os.environ if name.startswith("AZ_BATCHAI_")]
json.dump({name: os.environ[name] for name in names}, open(os.path.join(model_dir, "env.json"), "w"))
print("secret is set:", os.environ.get("API_TOKEN") == "s3cr3t")
"""


def test_quickstart_flow(batchai, endpoint, resource_client, storage_client):
    quickstart(endpoint, resource_client, storage_client)


def test_quickstart_against_emulator_serve_through_its_endpoint_file(tmp_path):
    """As a user runs it: `batchai-spec emulator serve` in its own process, clients configured from endpoint.json."""
    state_dir = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "batchai_spec", "emulator", "serve", "--state-dir", str(state_dir)],
        cwd=Path(__file__).resolve().parents[2], env={**os.environ, DELAY_SCALE_VARIABLE: "0"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        endpoint_file = state_dir / ENDPOINT_FILE
        wait_for(lambda: endpoint_file.exists() or process.poll() is not None, bool)
        endpoint = Endpoint.read(endpoint_file)
        quickstart(endpoint, resource_client_for(endpoint), storage_client_for(endpoint))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def quickstart(endpoint, resource_client, storage_client):
    group = unique_name("rg")
    resource_client.resource_groups.create_or_update(group, {"location": LOCATION})
    account = unique_name("sa")
    storage_client.storage_accounts.begin_create(
        group, account, {"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": LOCATION}
    ).result()
    key = storage_client.storage_accounts.list_keys(group, account).keys[0].value
    share = ShareServiceClient(endpoint.file_endpoint(account), credential=key, connection_verify=endpoint.ca_cert,
                               retry_total=0).create_share("batchaisample")
    share.create_directory("mnistcntksample")
    share.get_file_client("mnistcntksample/data.txt").upload_file(b"mnist digits\n")
    share.get_file_client("mnistcntksample/ConvNet_MNIST.py").upload_file(TRAIN.encode())

    client = batchai_client_for(endpoint)
    client.workspaces.begin_create(group, "workspace", models.WorkspaceCreateParameters(location=LOCATION)).result()
    cluster = client.clusters.begin_create(group, "workspace", "nc6", models.ClusterCreateParameters(
        vm_size="STANDARD_NC6",
        scale_settings=models.ScaleSettings(manual=models.ManualScaleSettings(target_node_count=1)),
        user_account_settings=models.UserAccountSettings(admin_user_name="demo", admin_user_password="Pa55-word"),
        node_setup=models.NodeSetup(mount_volumes=models.MountVolumes(azure_file_shares=[
            models.AzureFileShareReference(
                account_name=account, azure_file_url=f"https://{account}.file.core.windows.net/batchaisample",
                credentials=models.AzureStorageCredentialsInfo(account_key=key), relative_mount_path="azurefileshare",
            )
        ])),
    )).result()
    cluster = wait_for(lambda: client.clusters.get(group, "workspace", "nc6"),
                       lambda c: c.node_state_counts.idle_node_count == 1)
    assert cluster.allocation_state == "steady" and cluster.current_node_count == 1
    client.experiments.begin_create(group, "workspace", "quickstart").result()

    job = client.jobs.begin_create(group, "workspace", "quickstart", "cntk_python", models.JobCreateParameters(
        cluster=models.ResourceId(id=cluster.id),
        node_count=1,
        std_out_err_path_prefix="$AZ_BATCHAI_MOUNT_ROOT/azurefileshare",
        input_directories=[models.InputDirectory(id="SAMPLE", path="$AZ_BATCHAI_MOUNT_ROOT/azurefileshare/mnistcntksample")],
        output_directories=[models.OutputDirectory(id="MODEL", path_prefix="$AZ_BATCHAI_MOUNT_ROOT/azurefileshare",
                                                   path_suffix="Models")],
        container_settings=models.ContainerSettings(
            image_source_registry=models.ImageSourceRegistry(image="microsoft/cntk:2.1-gpu-python3.5-cuda8.0-cudnn6.0")
        ),
        cntk_settings=models.CNTKsettings(
            python_script_file_path="$AZ_BATCHAI_INPUT_SAMPLE/ConvNet_MNIST.py",
            command_line_args="$AZ_BATCHAI_INPUT_SAMPLE $AZ_BATCHAI_OUTPUT_MODEL",
        ),
        secrets=[models.EnvironmentVariableWithSecretValue(name="API_TOKEN", value="s3cr3t")],
        constraints=models.JobBasePropertiesConstraints(max_wall_clock_time=timedelta(hours=1)),
    )).result()
    assert job.tool_type == "cntk" and job.secrets[0].name == "API_TOKEN" and job.secrets[0].value is None
    job = wait_for(lambda: client.jobs.get(group, "workspace", "quickstart", "cntk_python"),
                   lambda j: j.execution_state in ("succeeded", "failed"))
    assert job.execution_state == "succeeded", job.execution_info.errors
    assert job.execution_info.exit_code == 0 and job.execution_info.end_time >= job.execution_info.start_time

    def listed(directory_id):
        return {item.name: item for item in client.jobs.list_output_files(
            group, "workspace", "quickstart", "cntk_python",
            models.JobsListOutputFilesOptions(outputdirectoryid=directory_id))}

    logs = listed("stdouterr")
    assert set(logs) == {"execution.log", "stderr.txt", "stdout.txt"}
    assert all(item.file_type == "file" and item.download_url for item in logs.values())

    def download(item, headers=None):
        response = requests.get(item.download_url, headers=headers or {}, verify=endpoint.ca_cert, timeout=10)
        response.raise_for_status()
        return response.text

    stdout = download(logs["stdout.txt"])
    assert "training on mnist digits" in stdout and "secret is set: True" in stdout
    assert download(logs["stderr.txt"]) == "progress 50%\n"
    assert download(logs["stdout.txt"], {"Range": "bytes=9-13"}) == "on mn"
    execution_log = download(logs["execution.log"])
    assert "microsoft/cntk:2.1-gpu-python3.5-cuda8.0-cudnn6.0" in execution_log and "s3cr3t" not in execution_log

    model = listed("MODEL")
    assert set(model) == {"model.dnn", "env.json"}
    assert download(model["model.dnn"]) == "weights" and model["model.dnn"].content_length == 7
    environment = requests.get(model["env.json"].download_url, verify=endpoint.ca_cert, timeout=10).json()
    segment = job.job_output_directory_path_segment
    assert environment["AZ_BATCHAI_OUTPUT_MODEL"].endswith(f"azurefileshare/{segment}/outputs/Models")
    assert environment["AZ_BATCHAI_STDOUTERR_DIR"].endswith(f"azurefileshare/{segment}/stdouterr")
    assert environment["AZ_BATCHAI_INPUT_SAMPLE"].endswith("azurefileshare/mnistcntksample")
    assert environment["AZ_BATCHAI_NUM_GPUS"] == "1" and environment["AZ_BATCHAI_TASK_INDEX"] == "0"
    assert {"AZ_BATCHAI_MOUNT_ROOT", "AZ_BATCHAI_JOB_MOUNT_ROOT", "AZ_BATCHAI_JOB_TEMP", "AZ_BATCHAI_JOB_TEMP_DIR",
            "AZ_BATCHAI_SHARED_JOB_TEMP", "AZ_BATCHAI_MPI_HOST_FILE"} <= set(environment)
    # The share itself holds the outputs, as the Files API shows.
    assert share.get_file_client(f"{segment}/outputs/Models/model.dnn").download_file().readall() == b"weights"

    client.jobs.begin_create(group, "workspace", "quickstart", "exits_3", models.JobCreateParameters(
        cluster=models.ResourceId(id=cluster.id), node_count=1,
        std_out_err_path_prefix="$AZ_BATCHAI_MOUNT_ROOT/azurefileshare",
        custom_toolkit_settings=models.CustomToolkitSettings(command_line="exit 3"),
    )).result()
    failed = wait_for(lambda: client.jobs.get(group, "workspace", "quickstart", "exits_3"),
                      lambda j: j.execution_state in ("succeeded", "failed"))
    assert failed.execution_state == "failed" and failed.execution_info.exit_code == 3

    client.jobs.begin_delete(group, "workspace", "quickstart", "cntk_python").result()
    client.experiments.begin_delete(group, "workspace", "quickstart").result()
    client.clusters.begin_delete(group, "workspace", "nc6").result()
    client.workspaces.begin_delete(group, "workspace").result()
    resource_client.resource_groups.begin_delete(group).result()
    with pytest.raises(ResourceNotFoundError):
        client.workspaces.get(group, "workspace")
    assert not resource_client.resource_groups.check_existence(group)
