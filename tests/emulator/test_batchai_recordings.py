"""The emulator against recorded real Batch AI traffic (azure-cli scenario tests, 2019, api-version 2018-05-01).

Each scenario's Batch AI requests are replayed in order against the emulator, with the recording's subscription,
resource group, storage account and key swapped for this test's, and every answer compared with the recorded
one field by field. Not compared: ids, names and times that differ per run (operation ids, job output uuids, node
ids, SAS signatures, timestamps: only their format), 5xx answers (ARM's own failures that day), and states the
emulator passes too fast to observe (a job that runs `echo hi` is never seen `running`).

The recordings are data from the azure-cli repository, kept outside this repository (`../shared/recordings`, or
`BATCHAI_SPEC_RECORDINGS`); the test skips when they are not there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from batchai_spec.emulator.batchai import service
from batchai_spec.emulator.batchai.config import BatchAIConfig, Delays
from tests.emulator.batchai_support import batchai, wait_for, zero_delays  # noqa: F401
from tests.emulator.recordings_support import RECORDINGS, TIME, UUID, ArmReplay, request_body
from tests.emulator_clients import unique_name

SCENARIOS = [
    "test_batchai_manual_scale_scenario",
    "test_batchai_auto_scale_scenario",
    "test_batchai_job_level_mounting_scenario",
    "test_batchai_cluster_with_file_systems",
    "test_batchai_config_less_cluster_with_file_systems",
    "test_batchai_cluster_with_setup_command",
]
RECORDED_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RECORDED_GROUP = "clitest.rg000001"
RECORDED_KEY = "veryFakedStorageAccountKey=="
RECORDED_ACCOUNTS = ("clitest000002", "bai000002")
LOCATION = "northeurope"

# Values the 2019 service filled differently from the 2018 service the reference documents (the emulator follows
# the reference): the default image became the DSVM and the default job lifetime 150 days.
ERA_DEFAULTS = {"imageReference", "maxWallClockTime"}
# Values holding the recording account's real subscription GUID (unscrubbed) and per-run uuids: compared with
# every GUID blanked out.
PER_RUN = {"jobOutputDirectoryPathSegment", "stdOutErrPathSuffix", "resourceId"}
JOB_ORDER = ["queued", "running", "terminating", "succeeded", "failed"]


def load_cassette(name: str) -> list[dict[str, Any]]:
    """The Batch AI interactions of one vcrpy cassette (the usages file was written by Python 2)."""
    loader = type("CassetteLoader", (yaml.SafeLoader,), {})
    loader.add_constructor("tag:yaml.org,2002:python/unicode", lambda self, node: self.construct_scalar(node))
    with (RECORDINGS / f"{name}.yaml").open() as handle:
        cassette = yaml.load(handle, Loader=loader)
    return [item for item in cassette["interactions"] if "Microsoft.BatchAI" in item["request"]["uri"]]


def state_of(body: dict[str, Any]) -> tuple[Any, ...]:
    properties = body.get("properties", {})
    return (properties.get("executionState"), properties.get("allocationState"), properties.get("currentNodeCount"),
            json.dumps(properties.get("nodeStateCounts"), sort_keys=True))


class Replay(ArmReplay):
    def __init__(self, endpoint, group: str, account: str, key: str):
        super().__init__(endpoint, [
            ("https://management.azure.com", endpoint.arm_url), (RECORDED_SUBSCRIPTION, endpoint.subscription_id),
            (RECORDED_GROUP, group), (RECORDED_KEY, key), *((recorded, account) for recorded in RECORDED_ACCOUNTS),
        ])
        self.operation_url: str | None = None

    def play(self, interaction: dict[str, Any]) -> None:
        recorded_request, recorded = interaction["request"], interaction["response"]
        status = recorded["status"]["code"]
        if status >= 500:
            return
        url = self.swap(recorded_request["uri"])
        recorded_text = self.swap(recorded["body"]["string"] or "")
        recorded_body = json.loads(recorded_text) if recorded_text else None
        method = recorded_request["method"]
        if "/operationresults/" in url:
            self.compare_operation(recorded_body)
            return
        if method == "GET" and status == 200 and recorded_body and "value" not in recorded_body:
            response = self.wait_for_state(url, state_of(recorded_body))
            if response is None:
                return  # the emulator passed that state too fast to see it
        else:
            body = request_body(recorded_request.get("body"))
            response = self.send(method, url, self.swap(body) if body else None)
        where = f"{method} {urlsplit(url).path}"
        assert response.status_code == status, f"{where}: {response.status_code} {response.text}"
        if status == 202:
            assert response.content == b""
            assert "/operationresults/" in response.headers["Azure-AsyncOperation"]
            assert "/operationstatuses/" in response.headers["Location"]
            self.operation_url = response.headers["Azure-AsyncOperation"]
        if recorded_body is not None:
            ours = response.json()
            for listing in (recorded_body, ours):
                for item in listing.get("value", []):
                    if item.get("name") == "execution.log":  # the service's own log, not the job's output
                        item["properties"].pop("contentLength")
            if method == "PATCH":  # the answer shows the allocation as it was: timing, not semantics
                for name in ("allocationState", "allocationStateTransitionTime", "currentNodeCount", "nodeStateCounts"):
                    recorded_body["properties"].pop(name)
                    ours["properties"].pop(name)
            assert_matches(recorded_body, ours, where)
        self.compared += 1

    def wait_for_state(self, url: str, wanted: tuple[Any, ...]) -> requests.Response | None:
        def reached_or_passed(response: requests.Response) -> bool:
            state = state_of(response.json())
            if state == wanted:
                return True
            return wanted[0] is not None and JOB_ORDER.index(state[0]) > JOB_ORDER.index(wanted[0])

        response = wait_for(lambda: self.send("GET", url), reached_or_passed)
        return response if state_of(response.json()) == wanted else None

    def compare_operation(self, recorded: dict[str, Any]) -> None:
        assert self.operation_url is not None
        if recorded["status"] == "InProgress":
            return  # only the final document is certain to be seen
        ours = wait_for(lambda: self.send("GET", self.operation_url).json(), lambda doc: doc["status"] != "InProgress")
        assert_matches(recorded, ours, "operation status")
        assert ours["id"] == self.operation_url.split("?")[0]
        self.compared += 1


def assert_matches(recorded: Any, ours: Any, where: str, key: str = "") -> None:
    path = f"{where} {key}"
    leaf = key.rsplit(".", 1)[-1]
    if leaf in ERA_DEFAULTS:
        assert ours is not None, path
        return
    if leaf in PER_RUN:
        assert re.sub(UUID, "GUID", ours) == re.sub(UUID, "GUID", recorded), f"{path}: {recorded!r} vs {ours!r}"
        return
    if isinstance(recorded, dict):
        assert isinstance(ours, dict), path
        if ".blob.core.windows.net/" in recorded.get("downloadUrl", "") and "downloadUrl" not in ours:
            # The emulator has no Blob service: files on blob-mounted outputs are listed without a URL.
            recorded = {name: value for name, value in recorded.items() if name != "downloadUrl"}
        assert set(ours) == set(recorded), f"{path}: keys differ: {sorted(set(ours) ^ set(recorded))}"
        for name, value in recorded.items():
            assert_matches(value, ours[name], where, f"{key}.{name}" if key else name)
    elif isinstance(recorded, list):
        assert isinstance(ours, list) and len(ours) == len(recorded), f"{path}: {ours!r}"
        for index, (recorded_item, our_item) in enumerate(zip(recorded, ours)):
            assert_matches(recorded_item, our_item, where, f"{key}[{index}]")
    elif isinstance(recorded, str) and TIME.match(recorded):
        assert isinstance(ours, str) and TIME.match(ours), f"{path}: {ours!r}"
    elif key.endswith(".downloadUrl"):
        assert_same_download(recorded, ours, path)
    elif leaf in ("name", "id") and re.fullmatch(UUID, str(recorded)):
        assert re.fullmatch(UUID, ours), path  # an operation's id
    elif leaf == "id" and "/operationresults/" in str(recorded):
        assert re.sub(UUID, "", urlsplit(ours).path) == re.sub(UUID, "", urlsplit(recorded).path), path
    else:
        assert ours == recorded, f"{path}: recorded {recorded!r}, emulator {ours!r}"


def assert_same_download(recorded: str, ours: str | None, path: str) -> None:
    """Same file in the same share path (after the per-run segment), a file SAS with read+list permissions."""
    recorded_url = urlsplit(recorded)
    our_url = urlsplit(ours)
    recorded_share, *recorded_rest = recorded_url.path.strip("/").split("/")
    _, our_share, *our_rest = our_url.path.strip("/").split("/")
    blanked = [re.sub(UUID, "GUID", "/".join(rest)) for rest in (our_rest, recorded_rest)]
    assert our_share == recorded_share and blanked[0] == blanked[1], f"{path}: {blanked}"
    query = dict(part.split("=", 1) for part in our_url.query.split("&"))
    assert query["sr"] == "f" and query["sp"] == "rl" and query["sig"], path


@contextmanager
def observable_delays(emulator) -> Iterator[None]:
    """Short but visible delays, so the replay sees clusters `resizing` and jobs `queued` as the recording did."""
    service.reconfigure(emulator.state, BatchAIConfig(delays=Delays(0.5, 0.0, 0.2, 0.0)))
    try:
        yield
    finally:
        zero_delays(emulator)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_replayed_scenario_matches_the_recording(scenario, batchai, emulator, endpoint, resource_client,
                                                 make_storage_account):
    if not RECORDINGS.is_dir():
        pytest.skip(f"no recordings at {RECORDINGS} (set BATCHAI_SPEC_RECORDINGS)")
    interactions = load_cassette(scenario)
    group = unique_name("rg")
    resource_client.resource_groups.create_or_update(group, {"location": LOCATION})
    account = make_storage_account(group)
    for share in ("share", "batchaishare"):
        account.service().create_share(share)
    replay = Replay(endpoint, group, account.name, account.keys[0])
    with observable_delays(emulator):
        for interaction in interactions:
            replay.play(interaction)
    assert replay.compared >= len({item["request"]["uri"] for item in interactions}) // 2
    resource_client.resource_groups.begin_delete(group).result()


def test_usages_match_the_recording(batchai, endpoint):
    if not RECORDINGS.is_dir():
        pytest.skip(f"no recordings at {RECORDINGS} (set BATCHAI_SPEC_RECORDINGS)")
    [interaction] = load_cassette("test_batchai_usages")[:1]
    recorded = json.loads(interaction["response"]["body"]["string"])["value"]
    path = urlsplit(interaction["request"]["uri"]).path.replace(RECORDED_SUBSCRIPTION, endpoint.subscription_id)
    ours = requests.get(f"{endpoint.arm_url}{path}?api-version=2018-05-01", verify=endpoint.ca_cert, timeout=10,
                        headers={"Authorization": f"Bearer {endpoint.token}"}).json()["value"]
    assert [item["name"] for item in ours] == [item["name"] for item in recorded]
    for recorded_item, our_item in zip(recorded, ours):
        assert set(our_item) == set(recorded_item) and our_item["unit"] == "Count"
        assert isinstance(our_item["currentValue"], int) and isinstance(our_item["limit"], int)
