"""Task files on the Batch data plane through azure-batch 15.1.0: list (recursive or not), GET whole and by
`ocp-range` (200 with the range, as recorded), HEAD with the `ocp-*` headers, delete.

The task's directory is written here the way the task runner leaves it (`runtime.taskDir` with `stdout.txt`,
`stderr.txt`, `wd/`), so these tests need no node; test_dataplane_pools.py reads files of tasks that really ran.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest
from azure.batch import BatchClient, models
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from batchai_spec.emulator.server import RunningEmulator
from tests.emulator.batch.dataplane_support import DataPlane, client, dataplane, new_job  # noqa: F401

NODE = "tvmps_0123456789abcdef_d"


@pytest.fixture
def task_dir(emulator: RunningEmulator, client: BatchClient, dataplane: DataPlane) -> tuple[str, Path]:
    """A task whose directory on its node the test writes (as the runner records it); (job id, directory)."""
    job_id = new_job(client, pool="files-pool")
    client.create_task(job_id, models.BatchTaskCreateOptions(id="t", command_line="true"))
    directory = emulator.state.root / "batch" / dataplane.account.name / "files-pool" / NODE / "workitems" / job_id \
        / "job-1" / "t"
    (directory / "wd" / "out").mkdir(parents=True)
    (directory / "stdout.txt").write_bytes(b"Volume in drive D\n")
    (directory / "stderr.txt").write_bytes(b"")
    (directory / "wd" / "out" / "result.txt").write_bytes(b"0.99\n")
    with emulator.state.transaction() as db:
        db.execute("UPDATE batch_tasks SET runtime = ? WHERE account = ? AND job_id = ? AND task_id = 't'",
                   (json.dumps({"node": NODE, "pool": "files-pool", "taskDir": str(directory)}),
                    dataplane.account.name, job_id))
    return job_id, directory


def _read(client: BatchClient, job_id: str, path: str, ocp_range: str | None = None) -> bytes:
    return b"".join(client.download_task_file(job_id, "t", path, ocp_range=ocp_range))


def test_list_top_level_and_recursive(client: BatchClient, dataplane: DataPlane, task_dir):
    job_id, _ = task_dir
    files = list(client.list_task_files(job_id, "t"))
    assert [(item.name, item.is_directory) for item in files] == [
        ("stderr.txt", False), ("stdout.txt", False), ("wd", True)]
    stdout = files[1].as_dict()
    assert stdout["url"] == f"{dataplane.url}/jobs/{job_id}/tasks/t/files/stdout.txt"
    assert stdout["properties"]["contentLength"] == "18"  # a string on the wire, as the service sends it
    assert stdout["properties"]["contentType"] == "text/plain"
    assert stdout["properties"]["fileMode"].startswith("0100")
    assert files[1].properties.content_length == 18
    assert "properties" not in files[2].as_dict()
    names = [item.name for item in client.list_task_files(job_id, "t", recursive=True)]
    assert names == ["stderr.txt", "stdout.txt", "wd", "wd/out", "wd/out/result.txt"]
    assert [item.name for item in client.list_task_files(job_id, "t", recursive=True, max_results=2)] == names
    assert [item.name for item in client.list_task_files(job_id, "t", recursive=True,
                                                         filter="startswith(name, 'wd/')")] == [
        "wd/out", "wd/out/result.txt"]


def test_get_whole_and_by_range(client: BatchClient, task_dir):
    job_id, directory = task_dir
    assert _read(client, job_id, "stdout.txt") == b"Volume in drive D\n"
    assert _read(client, job_id, "stdout.txt", "bytes=1-2") == b"ol"  # as recorded: 200 with the range
    assert _read(client, job_id, "stdout.txt", "bytes=10-") == b"drive D\n"
    assert _read(client, job_id, "stdout.txt", "bytes=10-1000") == b"drive D\n"
    assert _read(client, job_id, "wd/out/result.txt") == b"0.99\n"
    # A file that grows is read on from where the last read ended (how clients follow stdout).
    with (directory / "stdout.txt").open("ab") as handle:
        handle.write(b"more\n")
    assert _read(client, job_id, "stdout.txt", "bytes=18-") == b"more\n"
    with pytest.raises(HttpResponseError) as raised:
        _read(client, job_id, "stdout.txt", "bytes=100-200")
    assert raised.value.status_code == 416


def test_properties_from_head(client: BatchClient, dataplane: DataPlane, task_dir):
    job_id, _ = task_dir
    answers = []
    properties = client.get_task_file_properties(
        job_id, "t", "wd/out/result.txt", raw_response_hook=lambda pipeline: answers.append(pipeline.http_response))
    assert properties.content_length == 5 and properties.is_directory is False
    assert unquote(properties.url) == f"{dataplane.url}/jobs/{job_id}/tasks/t/files/wd/out/result.txt"
    assert properties.creation_time and properties.last_modified and properties.file_mode.startswith("0100")
    head = answers[-1]
    assert head.request.method == "HEAD" and head.headers["Content-Length"] == "5"
    assert head.headers["ocp-batch-file-isdirectory"] == "False" and head.headers["DataServiceVersion"] == "3.0"
    assert client.get_task_file_properties(job_id, "t", "wd").is_directory is True


def test_delete_files_and_directories(client: BatchClient, task_dir):
    job_id, directory = task_dir
    client.delete_task_file(job_id, "t", "stderr.txt")
    assert not (directory / "stderr.txt").exists()
    with pytest.raises(ResourceNotFoundError):
        client.get_task_file_properties(job_id, "t", "stderr.txt")
    with pytest.raises(ResourceExistsError):
        client.delete_task_file(job_id, "t", "wd/out")  # not empty
    client.delete_task_file(job_id, "t", "wd/out", recursive=True)
    assert not (directory / "wd" / "out").exists()


def test_paths_stay_inside_the_task_directory(client: BatchClient, task_dir):
    job_id, _ = task_dir
    for path in ("../t", "wd/../../t/stdout.txt", "nothing.txt"):
        with pytest.raises(ResourceNotFoundError) as raised:
            client.get_task_file_properties(job_id, "t", path)
        assert raised.value.status_code == 404


def test_the_node_the_runner_recorded_is_the_tasks_node_info(client: BatchClient, dataplane: DataPlane, task_dir):
    job_id, _ = task_dir
    info = client.get_task(job_id, "t").node_info
    assert (info.node_id, info.pool_id, info.affinity_id) == (NODE, "files-pool", f"TVM:{NODE}")
    assert info.node_url == f"{dataplane.url}/pools/files-pool/nodes/{NODE}"
    assert info.task_root_directory == f"workitems/{job_id}/job-1/t"
    assert info.task_root_directory_url == f"{info.node_url}/files/workitems/{job_id}/job-1/t"


def test_a_task_that_never_ran_has_no_files(client: BatchClient):
    job_id = new_job(client)
    client.create_task(job_id, models.BatchTaskCreateOptions(id="t", command_line="true"))
    with pytest.raises(ResourceExistsError) as raised:
        list(client.list_task_files(job_id, "t"))
    assert raised.value.error.code == "TaskFilesUnavailable"
