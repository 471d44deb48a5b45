"""Tasks on the Batch data plane through azure-batch 15.1.0: add, addtaskcollection, get, list, PUT, delete,
terminate, reactivate, subtasksinfo, the service's defaults and errors. The jobs here name a pool that does not
exist, so no task ever runs (test_dataplane_pools.py runs them)."""

from __future__ import annotations

import pytest
from azure.batch import BatchClient, models
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from tests.emulator.batch.dataplane_support import DataPlane, client, dataplane, new_job  # noqa: F401
from tests.emulator_clients import unique_name

UNLIMITED = "P10675199DT2H48M5.4775807S"
TASK_ENDED = {"category": "UserError", "code": "TaskEnded", "message": "Task Was Ended by User Request"}


def _raw(pipeline_response, deserialized, headers):
    return pipeline_response.http_response


def test_add_and_get_with_the_service_defaults(client: BatchClient, dataplane: DataPlane):
    job_id = new_job(client, constraints=models.BatchJobConstraints(max_task_retry_count=5))
    response = client.create_task(job_id, models.BatchTaskCreateOptions(id="aaa", command_line="ping 127.0.0.1"),
                                  cls=_raw)
    assert response.status_code == 201 and response.text() == ""
    assert response.headers["Location"] == f"{dataplane.url}/jobs/{job_id}/tasks/aaa"
    task = client.get_task(job_id, "aaa").as_dict()
    assert task["odata.metadata"].endswith("/$metadata#tasks/@Element")
    assert task["eTag"] == response.headers["ETag"] and task["creationTime"] == task["lastModified"]
    assert task["state"] == "active" and task["stateTransitionTime"] == task["creationTime"]
    # As recorded: the job's maxTaskRetryCount, unlimited wall clock, seven days of retention.
    assert task["constraints"] == {"maxWallClockTime": UNLIMITED, "retentionTime": "P7D", "maxTaskRetryCount": 5}
    assert task["userIdentity"] == {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}}
    assert task["requiredSlots"] == 1 and task["executionInfo"] == {"retryCount": 0, "requeueCount": 0}
    assert "nodeInfo" not in task
    with pytest.raises(ResourceExistsError) as raised:
        client.create_task(job_id, models.BatchTaskCreateOptions(id="AAA", command_line="true"))
    assert raised.value.error.code == "TaskExists"  # ids ignore case
    with pytest.raises(ResourceNotFoundError) as raised:
        client.create_task(unique_name("job"), models.BatchTaskCreateOptions(id="t", command_line="true"))
    assert raised.value.error.code == "JobNotFound"
    with pytest.raises(ResourceNotFoundError) as raised:
        client.get_task(job_id, "nope")
    assert raised.value.error.code == "TaskNotFound"


def test_multi_instance_container_and_environment_are_kept(client: BatchClient):
    """The task body 15.1.0 sends for a multi-instance container task (reference §3.5)."""
    job_id = new_job(client)
    client.create_task(job_id, models.BatchTaskCreateOptions(
        id="t1", command_line="python train.py",
        multi_instance_settings=models.MultiInstanceSettings(
            number_of_instances=2, coordination_command_line="bash coord.sh",
            common_resource_files=[models.ResourceFile(http_url="https://sa.blob.core.windows.net/c/x",
                                                       file_path="x")]),
        container_settings=models.BatchTaskContainerSettings(image_name="ubuntu:22.04",
                                                             container_run_options="--gpus all"),
        environment_settings=[models.EnvironmentSetting(name="E", value="v")],
        constraints=models.BatchTaskConstraints(max_wall_clock_time="PT30M00S", retention_time="P1D",
                                                max_task_retry_count=0),
        user_identity=models.UserIdentity(auto_user=models.AutoUserSpecification(scope="pool",
                                                                                 elevation_level="admin")),
    ))
    task = client.get_task(job_id, "t1").as_dict()
    assert task["multiInstanceSettings"] == {
        "numberOfInstances": 2, "coordinationCommandLine": "bash coord.sh",
        "commonResourceFiles": [{"httpUrl": "https://sa.blob.core.windows.net/c/x", "filePath": "x"}]}
    assert task["containerSettings"] == {"imageName": "ubuntu:22.04", "containerRunOptions": "--gpus all",
                                         "workingDirectory": "taskWorkingDirectory"}
    assert task["environmentSettings"] == [{"name": "E", "value": "v"}]
    assert task["constraints"] == {"maxWallClockTime": "PT30M", "retentionTime": "P1D", "maxTaskRetryCount": 0}
    assert task["userIdentity"] == {"autoUser": {"scope": "pool", "elevationLevel": "admin"}}
    assert list(client.list_subtasks(job_id, "t1")) == []  # nothing ran yet


def test_a_task_collection_answers_per_task(client: BatchClient):
    job_id = new_job(client)
    client.create_task(job_id, models.BatchTaskCreateOptions(id="taken", command_line="true"))
    result = client.create_task_collection(job_id, models.BatchTaskGroup(task_values=[
        models.BatchTaskCreateOptions(id="c1", command_line="true"),
        models.BatchTaskCreateOptions(id="taken", command_line="true"),
        models.BatchTaskCreateOptions(id="c2", command_line=""),
    ]))
    by_id = {item.task_id: item.as_dict() for item in result.result_values}
    assert by_id["c1"]["status"] == "Success" and by_id["c1"]["location"].endswith(f"/jobs/{job_id}/tasks/c1")
    assert by_id["c1"]["eTag"] == client.get_task(job_id, "c1").etag
    assert by_id["taken"]["status"] == "ClientError" and by_id["taken"]["error"]["code"] == "TaskExists"
    assert by_id["c2"]["error"]["code"] == "MissingRequiredProperty"
    with pytest.raises(HttpResponseError) as raised:
        client.create_task_collection(job_id, models.BatchTaskGroup(task_values=[
            models.BatchTaskCreateOptions(id=f"x{index}", command_line="true") for index in range(101)]))
    assert (raised.value.status_code, raised.value.error.code) == (400, "InvalidPropertyValue")


def test_create_tasks_sends_chunks_of_100(client: BatchClient):
    job_id = new_job(client)
    result = client.create_tasks(job_id, [models.BatchTaskCreateOptions(id=f"t{index:03}", command_line="true")
                                          for index in range(150)])
    assert len(result.result_values) == 150
    ids = [task.id for task in client.list_tasks(job_id, max_results=40)]
    assert sorted(ids) == [f"t{index:03}" for index in range(150)] and len(set(ids)) == 150


def test_list_pages_filters_and_selects(client: BatchClient):
    job_id = new_job(client)
    for index in range(5):
        client.create_task(job_id, models.BatchTaskCreateOptions(id=f"t{index}", command_line="true"))
    client.terminate_task(job_id, "t3")
    pages = list(client.list_tasks(job_id, max_results=2).by_page())
    assert [[task.id for task in page] for page in pages] == [["t0", "t1"], ["t2", "t3"], ["t4"]]
    assert [task.id for task in client.list_tasks(job_id, filter="state eq 'completed'")] == ["t3"]
    assert [task.id for task in client.list_tasks(job_id, filter="executionInfo/result eq 'failure'")] == ["t3"]
    assert [task.id for task in client.list_tasks(job_id, filter="not (state eq 'completed') and id ne 't0'",
                                                  max_results=1)] == ["t1", "t2", "t4"]
    assert {key for task in client.list_tasks(job_id, select=["id"]) for key in task.as_dict()} == {"id"}


def test_replace_changes_only_the_constraints(client: BatchClient):
    job_id = new_job(client, constraints=models.BatchJobConstraints(max_task_retry_count=2))
    client.create_task(job_id, models.BatchTaskCreateOptions(id="t", command_line="true"))
    task = client.get_task(job_id, "t")
    response = client.replace_task(job_id, "t", models.BatchTask({"constraints": {"maxWallClockTime": "PT2H"}}),
                                   etag=task.etag, match_condition=MatchConditions.IfNotModified, cls=_raw)
    assert response.status_code == 200 and response.text() == ""
    assert client.get_task(job_id, "t").as_dict()["constraints"] == {
        "maxWallClockTime": "PT2H", "retentionTime": "P7D", "maxTaskRetryCount": 2}
    with pytest.raises(ResourceModifiedError):
        client.replace_task(job_id, "t", models.BatchTask({"constraints": {}}), etag=task.etag,
                            match_condition=MatchConditions.IfNotModified)
    client.terminate_task(job_id, "t")
    with pytest.raises(ResourceExistsError) as raised:
        client.replace_task(job_id, "t", models.BatchTask({"constraints": {}}))
    assert raised.value.error.code == "TaskCompleted"


def test_terminate_and_reactivate(client: BatchClient):
    job_id = new_job(client)
    client.create_task(job_id, models.BatchTaskCreateOptions(id="t", command_line="true"))
    response = client.terminate_task(job_id, "t", cls=_raw)
    assert (response.status_code, response.text()) == (204, "")
    task = client.get_task(job_id, "t").as_dict()
    assert (task["state"], task["previousState"]) == ("completed", "active")
    assert task["executionInfo"]["result"] == "failure" and task["executionInfo"]["failureInfo"] == TASK_ENDED
    assert "exitCode" not in task["executionInfo"] and task["executionInfo"]["endTime"]
    with pytest.raises(ResourceExistsError) as raised:
        client.terminate_task(job_id, "t")
    assert raised.value.error.code == "TaskCompleted"
    assert client.reactivate_task(job_id, "t", cls=_raw).status_code == 204
    task = client.get_task(job_id, "t").as_dict()
    assert (task["state"], task["previousState"]) == ("active", "completed")
    assert task["executionInfo"] == {"retryCount": 0, "requeueCount": 0}
    with pytest.raises(ResourceExistsError) as raised:
        client.reactivate_task(job_id, "t")
    assert raised.value.error.code == "TaskNotCompleted"


def test_delete(client: BatchClient):
    job_id = new_job(client)
    client.create_task(job_id, models.BatchTaskCreateOptions(id="t", command_line="true"))
    response = client.delete_task(job_id, "t", cls=_raw)
    assert response.status_code == 200  # as recorded (not 202)
    with pytest.raises(ResourceNotFoundError) as raised:
        client.get_task(job_id, "t")
    assert raised.value.error.code == "TaskNotFound"
    with pytest.raises(ResourceNotFoundError):
        client.delete_task(job_id, "t")


def test_dependencies_need_a_job_that_uses_them(client: BatchClient):
    job_id = new_job(client)
    with pytest.raises(HttpResponseError) as raised:
        client.create_task(job_id, models.BatchTaskCreateOptions(
            id="t2", command_line="true", depends_on=models.BatchTaskDependencies(task_ids=["t1"])))
    assert (raised.value.status_code, raised.value.error.code) == (400, "TaskDependenciesNotSpecifiedOnJob")
    job_id = new_job(client, uses_task_dependencies=True)
    client.create_task(job_id, models.BatchTaskCreateOptions(
        id="t2", command_line="true", depends_on=models.BatchTaskDependencies(task_ids=["t1"])))
    assert client.get_task(job_id, "t2").depends_on.task_ids == ["t1"]


@pytest.mark.parametrize("depends_on", [
    models.BatchTaskDependencies(task_id_ranges=[models.BatchTaskIdRange(start="x", end=3)]),
    models.BatchTaskDependencies(task_id_ranges=[models.BatchTaskIdRange(start=5, end=3)]),
    models.BatchTaskDependencies(task_ids=[7]),
])
def test_a_malformed_dependency_is_refused(client: BatchClient, depends_on):
    job_id = new_job(client, uses_task_dependencies=True)
    with pytest.raises(HttpResponseError) as raised:
        client.create_task(job_id, models.BatchTaskCreateOptions(id="t", command_line="true", depends_on=depends_on))
    assert (raised.value.status_code, raised.value.error.code) == (400, "InvalidPropertyValue")
    assert raised.value.error.details[0].message.startswith("dependsOn")
