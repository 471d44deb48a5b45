"""Jobs on the Batch data plane through azure-batch 15.1.0: add, get, list (paging, $filter, $select), PATCH,
PUT, delete, terminate, disable/enable, task counts, preparation/release status, ETag conditions and errors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from azure.batch import BatchClient, models
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError, ResourceNotModifiedError,
)

from tests.emulator.batch.dataplane_support import NO_POOL, DataPlane, client, dataplane, new_job  # noqa: F401
from tests.emulator_clients import unique_name

UNLIMITED = "P10675199DT2H48M5.4775807S"


def _raw(pipeline_response, deserialized, headers):
    """`cls=` for an SDK call: the HTTP response itself (status, headers, body) instead of the model."""
    return pipeline_response.http_response


def test_add_answers_201_with_the_new_job_where_it_is(client: BatchClient, dataplane: DataPlane):
    job_id = unique_name("job")
    response = client.create_job(models.BatchJobCreateOptions(id=job_id, pool_info=models.BatchPoolInfo(
        pool_id=NO_POOL)), cls=_raw)
    assert response.status_code == 201 and response.text() == ""
    assert response.headers["Location"] == response.headers["DataServiceId"] == f"{dataplane.url}/jobs/{job_id}"
    assert response.headers["DataServiceVersion"] == "3.0" and response.headers["request-id"]
    etag = response.headers["ETag"]
    assert etag.startswith("0x") and '"' not in etag
    job = client.get_job(job_id)
    assert job.etag == etag
    with pytest.raises(ResourceExistsError) as raised:
        new_job(client, job_id=job_id)
    assert raised.value.error.code == "JobExists"


def test_a_new_job_shows_the_service_defaults(client: BatchClient):
    job_id = new_job(client, metadata=[models.BatchMetadataItem(name="m", value="v")])
    job = client.get_job(job_id).as_dict()
    assert job["odata.metadata"].endswith("/$metadata#jobs/@Element")
    assert job["state"] == "active" and job["stateTransitionTime"] == job["creationTime"]
    assert (job["priority"], job["maxParallelTasks"], job["usesTaskDependencies"], job["allowTaskPreemption"]) == (
        0, -1, False, False)
    assert job["constraints"] == {"maxWallClockTime": UNLIMITED, "maxTaskRetryCount": 0}
    assert (job["onAllTasksComplete"], job["onTaskFailure"]) == ("noaction", "noaction")
    assert job["executionInfo"] == {"startTime": job["creationTime"], "poolId": NO_POOL}
    assert job["metadata"] == [{"name": "m", "value": "v"}]
    assert job["url"].endswith(f"/jobs/{job_id}") and job["eTag"] and job["lastModified"]


def test_preparation_release_and_common_settings_are_kept_with_their_defaults(client: BatchClient):
    job_id = unique_name("job")
    client.create_job(models.BatchJobCreateOptions({
        "id": job_id, "poolInfo": {"poolId": NO_POOL}, "priority": 7, "usesTaskDependencies": True,
        "constraints": {"maxWallClockTime": "PT01H00M00S", "maxTaskRetryCount": 2},
        "jobPreparationTask": {"commandLine": "/bin/true", "constraints": {"maxTaskRetryCount": 1}},
        "jobReleaseTask": {"id": "cleanup", "commandLine": "/bin/true"},
        "commonEnvironmentSettings": [{"name": "A", "value": "1"}],
        "onAllTasksComplete": "terminatejob", "onTaskFailure": "performexitoptionsjobaction",
    }))
    job = client.get_job(job_id).as_dict()
    assert job["priority"] == 7 and job["usesTaskDependencies"] is True
    assert job["constraints"] == {"maxWallClockTime": "PT1H", "maxTaskRetryCount": 2}
    assert job["jobPreparationTask"] == {
        "id": "jobpreparation", "commandLine": "/bin/true",
        "constraints": {"maxWallClockTime": UNLIMITED, "retentionTime": "P7D", "maxTaskRetryCount": 1},
        "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}},
        "waitForSuccess": True, "rerunOnNodeRebootAfterSuccess": True,
    }
    assert job["jobReleaseTask"] == {
        "id": "cleanup", "commandLine": "/bin/true", "maxWallClockTime": "PT15M", "retentionTime": "P7D",
        "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}},
    }
    assert job["commonEnvironmentSettings"] == [{"name": "A", "value": "1"}]
    assert (job["onAllTasksComplete"], job["onTaskFailure"]) == ("terminatejob", "performexitoptionsjobaction")
    status = list(client.list_job_preparation_and_release_task_status(job_id))
    assert status == []  # no node has run its preparation task yet


def test_a_job_without_preparation_task_has_no_preparation_status(client: BatchClient):
    job_id = new_job(client)
    with pytest.raises(HttpResponseError) as raised:
        list(client.list_job_preparation_and_release_task_status(job_id))
    assert (raised.value.status_code, raised.value.error.code) == (409, "JobPreparationTaskNotSpecified")


def test_refused_bodies(client: BatchClient):
    with pytest.raises(HttpResponseError) as raised:
        client.create_job(models.BatchJobCreateOptions(id=unique_name("job")))
    assert (raised.value.status_code, raised.value.error.code) == (400, "MissingRequiredProperty")
    assert raised.value.error.details[0].message == "poolInfo"
    with pytest.raises(HttpResponseError) as raised:
        new_job(client, job_id="not/an id")
    assert raised.value.error.code in ("InvalidPropertyValue", "InvalidUri")
    with pytest.raises(HttpResponseError) as raised:
        client.create_job(models.BatchJobCreateOptions({"id": unique_name("job"), "poolInfo": {"poolId": "p"},
                                                        "constraints": {"maxWallClockTime": "an hour"}}))
    assert raised.value.error.code == "InvalidPropertyValue"


def test_patch_merges_and_replaces_the_objects_it_names(client: BatchClient):
    """As recorded: PATCH of constraints.maxWallClockTime alone resets maxTaskRetryCount to 0; years and months
    become days."""
    job_id = new_job(client, constraints=models.BatchJobConstraints(max_task_retry_count=5),
                     metadata=[models.BatchMetadataItem(name="test", value="value")])
    before = client.get_job(job_id)
    response = client.update_job(job_id, models.BatchJobUpdateOptions({
        "onAllTasksComplete": "terminatejob", "constraints": {"maxWallClockTime": "P3Y6M4DT12H30M5S"}}), cls=_raw)
    assert response.status_code == 200 and response.text() == ""
    job = client.get_job(job_id).as_dict()
    assert response.headers["ETag"] == job["eTag"] != before.etag
    assert job["constraints"] == {"maxWallClockTime": "P1279DT12H30M5S", "maxTaskRetryCount": 0}
    assert job["onAllTasksComplete"] == "terminatejob"
    assert job["metadata"] == [{"name": "test", "value": "value"}]  # left alone


def test_put_replaces_every_updatable_property(client: BatchClient):
    job_id = new_job(client, priority=10, metadata=[models.BatchMetadataItem(name="test", value="value")])
    client.replace_job(job_id, models.BatchJob({"poolInfo": {"poolId": NO_POOL}, "onAllTasksComplete":
                                                "terminatejob"}))
    job = client.get_job(job_id).as_dict()
    assert "metadata" not in job and job["priority"] == 0
    assert job["constraints"] == {"maxWallClockTime": UNLIMITED, "maxTaskRetryCount": 0}
    assert job["onAllTasksComplete"] == "terminatejob"
    with pytest.raises(HttpResponseError) as raised:
        client.replace_job(job_id, models.BatchJob({"priority": 1}))
    assert raised.value.error.code == "MissingRequiredProperty"


def test_conditional_headers(client: BatchClient):
    job_id = new_job(client)
    job = client.get_job(job_id)
    stale_time = job.last_modified - timedelta(seconds=5)
    # As recorded: PUT with a stale If-Unmodified-Since is 412 ConditionNotMet.
    with pytest.raises(HttpResponseError) as raised:
        client.replace_job(job_id, models.BatchJob({"poolInfo": {"poolId": NO_POOL}}),
                           if_unmodified_since=stale_time)
    assert (raised.value.status_code, raised.value.error.code) == (412, "ConditionNotMet")
    assert raised.value.error.message.startswith("The condition specified using HTTP conditional header(s) is not met.")
    # If-Match with the current ETag passes; once the job changed, the old one fails.
    client.update_job(job_id, models.BatchJobUpdateOptions(priority=3), etag=job.etag,
                      match_condition=MatchConditions.IfNotModified)
    with pytest.raises(ResourceModifiedError) as raised:
        client.update_job(job_id, models.BatchJobUpdateOptions(priority=4), etag=job.etag,
                          match_condition=MatchConditions.IfNotModified)
    assert raised.value.status_code == 412
    assert client.get_job(job_id).priority == 3
    # Reads: If-None-Match with the current ETag is 304; with another one the job comes back.
    current = client.get_job(job_id)
    with pytest.raises((ResourceNotModifiedError, ResourceModifiedError)) as raised:
        client.get_job(job_id, etag=current.etag, match_condition=MatchConditions.IfModified)
    assert raised.value.status_code == 304
    assert client.get_job(job_id, etag=job.etag, match_condition=MatchConditions.IfModified).priority == 3
    assert client.get_job(job_id, if_modified_since=datetime(2000, 1, 1, tzinfo=timezone.utc)).id == job_id
    # A job that does not exist is 404 whatever the conditions.
    with pytest.raises(ResourceNotFoundError) as raised:
        client.get_job(unique_name("job"))
    assert raised.value.error.code == "JobNotFound"


def test_lists_page_with_maxresults_and_filter_and_select(client: BatchClient):
    ids = [new_job(client, job_id=f"page-{index}") for index in range(5)]
    pages = list(client.list_jobs(max_results=2).by_page())
    assert [[job.id for job in page] for page in pages] == [ids[0:2], ids[2:4], ids[4:5]]
    client.begin_terminate_job(ids[1], {"terminateReason": "UserTerminate"}, polling_interval=0.02).result()
    assert [job.id for job in client.list_jobs(filter="state eq 'completed'")] == [ids[1]]
    assert [job.id for job in client.list_jobs(filter="state eq 'active' and startswith(id, 'page-3')")] == [ids[3]]
    assert [job.id for job in client.list_jobs(filter="executionInfo/terminateReason eq 'UserTerminate'")] == [
        ids[1]]
    selected = next(iter(client.list_jobs(select=["id", "state"], max_results=1)))
    assert set(selected.as_dict()) == {"id", "state"}
    assert set(client.get_job(ids[0], select=["priority"]).as_dict()) == {"odata.metadata", "priority"}
    with pytest.raises(HttpResponseError) as raised:
        list(client.list_jobs(filter="state eq"))
    assert raised.value.error.code == "InvalidQueryParameterValue"


@pytest.mark.parametrize("nesting", ["(" * 2000 + "state eq 'active'" + ")" * 2000, "not " * 2000 + "state eq 'x'"])
def test_a_filter_nested_too_deep_is_400_not_500(client: BatchClient, nesting: str):
    with pytest.raises(HttpResponseError) as raised:
        list(client.list_jobs(filter=nesting))
    assert (raised.value.status_code, raised.value.error.code) == (400, "InvalidQueryParameterValue")
    # 64 levels are still fine.
    assert list(client.list_jobs(filter="(" * 64 + "state eq 'nothing'" + ")" * 64)) == []


def test_terminate_ends_in_completed_with_the_reason(client: BatchClient):
    job_id = new_job(client)
    poller = client.begin_terminate_job(job_id, {"terminateReason": "enough"}, polling_interval=0.02)
    poller.result()
    job = client.get_job(job_id)
    assert (job.state, job.previous_state) == ("completed", "terminating")
    assert job.execution_info.termination_reason == "enough" and job.execution_info.end_time
    with pytest.raises(ResourceExistsError) as raised:
        # (azure-batch 15.1.0 cannot send a terminate without options: it fails on a None content type.)
        client.begin_terminate_job(job_id, {"terminateReason": "again"}, polling_interval=0.02)
    assert raised.value.error.code == "JobCompleted"
    with pytest.raises(ResourceExistsError) as raised:
        client.create_task(job_id, models.BatchTaskCreateOptions(id="t", command_line="true"))
    assert raised.value.error.code == "JobCompleted"


def test_disable_then_enable(client: BatchClient):
    job_id = new_job(client)
    client.begin_disable_job(job_id, models.BatchJobDisableOptions(disable_tasks="requeue"),
                             polling_interval=0.02).result()
    assert client.get_job(job_id).state == "disabled"
    with pytest.raises(ResourceExistsError) as raised:
        client.begin_disable_job(job_id, models.BatchJobDisableOptions(disable_tasks="wait"), polling_interval=0.02)
    assert raised.value.error.code == "JobDisabled"
    client.begin_enable_job(job_id, polling_interval=0.02).result()
    job = client.get_job(job_id)
    assert (job.state, job.previous_state) == ("active", "enabling")


def test_delete_goes_through_deleting_to_gone(dataplane: DataPlane):
    answers: list[tuple[str, int, str]] = []
    client = dataplane.client(raw_response_hook=lambda pipeline: answers.append(
        (pipeline.http_request.method, pipeline.http_response.status_code, pipeline.http_response.text())))
    job_id = new_job(client)
    client.create_task(job_id, models.BatchTaskCreateOptions(id="t1", command_line="true"))
    answers.clear()
    client.begin_delete_job(job_id, polling_interval=0.02).result()
    assert answers[0] == ("DELETE", 202, "")
    # The poller read the job until it was gone (a GET may have seen it `deleting` first).
    assert answers[-1][:2] == ("GET", 404) and all(answer[1] == 200 for answer in answers[1:-1])
    assert all('"state":"deleting"' in answer[2] for answer in answers[1:-1])
    with pytest.raises(ResourceNotFoundError) as raised:
        client.get_task(job_id, "t1")
    assert raised.value.error.code == "JobNotFound"


def _state_or_gone(client: BatchClient, job_id: str) -> str | None:
    try:
        return client.get_job(job_id).state
    except ResourceNotFoundError:
        return None


def test_task_counts(client: BatchClient):
    job_id = new_job(client)
    client.create_tasks(job_id, [models.BatchTaskCreateOptions(id=f"t{index}", command_line="true",
                                                               required_slots=2) for index in range(3)])
    client.terminate_task(job_id, "t0")
    counts = client.get_job_task_counts(job_id)
    assert counts.task_counts.as_dict() == {"active": 2, "running": 0, "completed": 1, "succeeded": 0, "failed": 1}
    assert counts.task_slot_counts.as_dict() == {"active": 4, "running": 0, "completed": 2, "succeeded": 0,
                                                 "failed": 2}
