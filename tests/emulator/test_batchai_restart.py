"""Jobs across an emulator restart: a running job is adopted and finishes; one whose process vanished fails."""

from __future__ import annotations

import os
import signal

import azure.mgmt.batchai.models as models

from batchai_spec.emulator.files.store import share_directory
from batchai_spec.emulator.server import start_in_process
from tests.emulator.batchai_support import batchai_client_for, cluster_parameters, wait_for, zero_delays
from tests.emulator_clients import LOCATION, new_storage_account


def test_jobs_survive_an_emulator_restart(tmp_path):
    state_dir = tmp_path / "state"
    with start_in_process(state_dir) as emulator:
        # As after a crash: this emulator's stop leaves the jobs' processes running (a clean stop ends them).
        zero_delays(emulator, stop_processes_on_shutdown=False)
        endpoint = emulator.endpoint
        created = new_storage_account(endpoint)
        group, account, key = created.resource_group, created.name, created.keys[0]
        created.service().create_share("share")
        share = share_directory(emulator.state, account, "share")
        client = batchai_client_for(endpoint)
        client.workspaces.begin_create(group, "ws", models.WorkspaceCreateParameters(location=LOCATION)).result()
        cluster = client.clusters.begin_create(
            group, "ws", "cluster", cluster_parameters(account, key, "share", nodes=2)
        ).result()
        client.experiments.begin_create(group, "ws", "exp").result()

        def submit(name: str, command_line: str) -> None:
            client.jobs.begin_create(group, "ws", "exp", name, models.JobCreateParameters(
                cluster=models.ResourceId(id=cluster.id), node_count=1,
                std_out_err_path_prefix="$AZ_BATCHAI_MOUNT_ROOT/afs",
                custom_toolkit_settings=models.CustomToolkitSettings(command_line=command_line))).result()

        submit("adopted", "while [ ! -f $AZ_BATCHAI_MOUNT_ROOT/afs/go ]; do sleep 0.05; done; echo finished")
        submit("vanishes", "echo $$ > $AZ_BATCHAI_MOUNT_ROOT/afs/vanishes.pid; sleep 60")
        for name in ("adopted", "vanishes"):
            wait_for(lambda: client.jobs.get(group, "ws", "exp", name), lambda job: job.execution_state == "running")
        pid = int(wait_for(lambda: (share / "vanishes.pid").read_text() if (share / "vanishes.pid").exists() else "",
                           lambda text: text.endswith("\n")))

    # The emulator is down; one job's processes die meanwhile (as on a machine restart), the other keeps running.
    os.killpg(os.getpgid(pid), signal.SIGKILL)
    (share / "go").write_text("")

    with start_in_process(state_dir) as emulator:
        zero_delays(emulator)
        client = batchai_client_for(emulator.endpoint)
        adopted = wait_for(lambda: client.jobs.get(group, "ws", "exp", "adopted"),
                           lambda job: job.execution_state in ("succeeded", "failed"))
        assert adopted.execution_state == "succeeded" and adopted.execution_info.exit_code == 0
        vanished = wait_for(lambda: client.jobs.get(group, "ws", "exp", "vanishes"),
                            lambda job: job.execution_state in ("succeeded", "failed"))
        assert vanished.execution_state == "failed" and vanished.execution_info.errors[0].code == "JobProcessLost"
        files = client.jobs.list_output_files(group, "ws", "exp", "adopted",
                                              models.JobsListOutputFilesOptions(outputdirectoryid="stdouterr"))
        [stdout] = [item for item in files if item.name == "stdout.txt"]
        assert stdout.download_url.startswith(emulator.endpoint.storage_url) and stdout.content_length == 9
        client.workspaces.begin_delete(group, "ws").result()
