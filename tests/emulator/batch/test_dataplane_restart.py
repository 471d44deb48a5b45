"""The Batch data plane across emulator restarts: what a client made is there, unchanged (ETags included), for the
same keys and token, on the new emulator's endpoint; and where clients find that endpoint."""

from __future__ import annotations

import json
from pathlib import Path

from azure.batch import models

from batchai_spec.emulator.batch import service
from batchai_spec.emulator.endpoint import ENDPOINT_FILE, Endpoint
from batchai_spec.emulator.server import start_in_process
from tests.emulator.batch.conftest import BatchAccount, batch_mgmt_for
from tests.emulator.batch.dataplane_support import DataPlane, new_job
from tests.emulator.batchai_support import fast_config
from tests.emulator_clients import LOCATION, resource_client_for


def test_jobs_and_tasks_survive_a_restart(tmp_path: Path):
    state_dir = tmp_path / "state"
    with start_in_process(state_dir) as first:
        service.context(first.state).config = fast_config()
        resource_client_for(first.endpoint).resource_groups.create_or_update("rg", {"location": LOCATION})
        mgmt = batch_mgmt_for(first.endpoint)
        mgmt.batch_account.begin_create("rg", "restartacct", {"location": LOCATION}).result()
        keys = mgmt.batch_account.get_keys("rg", "restartacct")
        account = BatchAccount("rg", "restartacct", (keys.primary, keys.secondary))
        client = DataPlane(first.endpoint, account).client()
        job_id = new_job(client, metadata=[models.BatchMetadataItem(name="k", value="v")])
        client.create_tasks(job_id, [models.BatchTaskCreateOptions(id=f"t{index}", command_line="true")
                                     for index in range(3)])
        client.terminate_task(job_id, "t1")
        before = client.get_job(job_id).as_dict(), [task.as_dict() for task in client.list_tasks(job_id)]
    with start_in_process(state_dir) as second:
        written = Endpoint.read(state_dir / ENDPOINT_FILE)
        assert written.batch_url == second.endpoint.batch_url != "" and written.batch_url.startswith("https://")
        plane = DataPlane(written, account)
        for client in (plane.client(), plane.client(key=account.keys[1]), plane.token_client()):
            job = client.get_job(job_id).as_dict()
            tasks = [task.as_dict() for task in client.list_tasks(job_id)]
            assert _without_urls(job) == _without_urls(before[0])
            assert [_without_urls(task) for task in tasks] == [_without_urls(task) for task in before[1]]
            assert client.get_task(job_id, "t1").execution_info.failure_info.code == "TaskEnded"
        assert job["url"] == f"{written.batch_url}/restartacct/jobs/{job_id}"


def _without_urls(document):
    """Entity urls name the endpoint the client used (a restarted emulator may listen on other ports)."""
    if isinstance(document, dict):
        return {key: _without_urls(value) for key, value in document.items()
                if key not in ("url", "odata.metadata", "nodeUrl", "taskRootDirectoryUrl")}
    if isinstance(document, list):
        return [_without_urls(item) for item in document]
    return document


def test_an_endpoint_file_from_before_batch_still_loads(tmp_path: Path):
    document = {"pid": 1, "arm_url": "https://127.0.0.1:1", "storage_url": "https://127.0.0.1:2",
                "ca_cert": "/ca.pem", "token": "t", "subscription_id": "s", "state_dir": str(tmp_path)}
    (tmp_path / ENDPOINT_FILE).write_text(json.dumps(document))
    endpoint = Endpoint.read(tmp_path / ENDPOINT_FILE)
    assert endpoint.batch_url == "" and endpoint.storage_url == "https://127.0.0.1:2"
