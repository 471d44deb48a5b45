"""The emulator's Microsoft.Batch against recorded real ARM traffic (azure-cli scenario tests, 2019-2025).

Each cassette's ARM requests (`/subscriptions/...`; the data plane's are not replayed here) are sent in order to
the emulator with the recording's subscription, resource group, account names and host swapped for this test's,
and every answer is compared with the recorded one: status codes; the LRO headers (a `Location` of the same shape,
no `Azure-AsyncOperation`, empty 202 bodies); Microsoft.Batch bodies field by field. Polls are not replayed by
their recorded URL: the emulator's own `Location` is polled until it answers 200 (the emulator always answers one
202 first, where the 2019-2020 service answered 200 at once) and that answer is compared with the recorded 200.

Not compared, with the reason:
- values that differ per run: keys (random, 88 base64 characters), `nodeManagementEndpoint`'s uuid, times;
- what the service changed over the years: the emulator answers as the service did on 2024-10-24 (eastus,
  test_batch_jobs_and_tasks.yaml), which is compared exactly. Older recordings lack properties added since
  (`ERA_ADDED`); their quota values differ (`ERA_VALUES`: 700 cores in 2019-2020, other per-family lists);
- other providers' bodies (resource groups, storage accounts in test_batch_account_cmd.yaml): status only, and
  their status URLs' last segment (not uuids there);
- the `pilotprod2.` label in test_batch_pool_cmd.yaml's endpoints (recorded on a pilot cluster).

The recordings are kept outside this repository (`../shared/recordings/batch`, or `BATCHAI_SPEC_RECORDINGS`); the
test skips when they are not there.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from tests.emulator.batchai_support import wait_for
from tests.emulator.recordings_support import RECORDINGS as RECORDINGS_ROOT
from tests.emulator.recordings_support import TIME, UUID, ArmReplay, request_body
from tests.emulator_clients import unique_name

RECORDINGS = RECORDINGS_ROOT / "batch"
CASSETTES = ["test_batch_jobs_and_tasks", "test_batch_file_download_cmd", "test_batch_pools_and_nodes",
             "test_batch_account_cmd", "test_batch_task_create_cmd", "test_batch_pool_cmd", "test_batch_job_list_cmd"]
REFERENCE = "test_batch_jobs_and_tasks"  # the emulator's account body is this recording's
RECORDED_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RECORDED_GROUP = "clitest.rg000001"
RECORDED_BATCH_ACCOUNTS = ("clibatch000002", "clibatchtest1")
RECORDED_STORAGE_ACCOUNTS = ("clibatchteststorage1",)
RECORDED_HOSTS = ("https://management.azure.com", "https://127.0.0.1:8899")
POLL_SEGMENTS = ("/operationresults/", "/accountoperationresults/", "/asyncoperations/")

KEY = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
ERA_ADDED = {"identity", "nodeManagementEndpoint", "dedicatedCoreQuotaPerVMFamily",
             "dedicatedCoreQuotaPerVMFamilyEnforced", "publicNetworkAccess", "privateEndpointConnections",
             "encryption", "allowedAuthenticationModes", "authenticationMode"}
# test_batch_pool_cmd.yaml was recorded on a pilot cluster: its endpoints carry this label, Azure's public ones not.
PILOT = ".pilotprod2"
ERA_VALUES = {"dedicatedCoreQuota", "dedicatedCoreQuotaPerVMFamily", "dedicatedCoreQuotaPerVMFamilyEnforced"}


def load(name: str) -> list[dict[str, Any]]:
    with (RECORDINGS / f"{name}.yaml").open() as handle:
        cassette = yaml.safe_load(handle)
    return [item for item in cassette["interactions"] if "/subscriptions/" in item["request"]["uri"]]


def is_poll(url: str) -> bool:
    return any(segment in urlsplit(url).path.lower() for segment in POLL_SEGMENTS)


def shape(url: str) -> str:
    """A status URL's path with its operation id blanked (the emulator's ids are its own; other providers' are
    not uuids: their last segment is blanked whole)."""
    path = urlsplit(url).path
    if "/providers/microsoft.batch/" not in path.lower():
        path = path.rsplit("/", 1)[0] + "/ID"
    return re.sub(UUID, "GUID", path).lower()


class Replay(ArmReplay):
    def __init__(self, endpoint, cassette: str):
        self.cassette = cassette
        self.group = unique_name("rg")
        swaps = [(host, endpoint.arm_url) for host in RECORDED_HOSTS]
        swaps.append((RECORDED_SUBSCRIPTION, endpoint.subscription_id))
        swaps.append((RECORDED_GROUP, self.group))
        names = [(name, unique_name("sa")) for name in RECORDED_STORAGE_ACCOUNTS]
        names += [(name, unique_name("batch")) for name in RECORDED_BATCH_ACCOUNTS]
        super().__init__(endpoint, swaps + sorted(names, key=lambda pair: -len(pair[0])))
        self.location: str | None = None  # the emulator's status URL of the LRO under way

    def play(self, interaction: dict[str, Any]) -> None:
        recorded_request, recorded = interaction["request"], interaction["response"]
        status = recorded["status"]["code"]
        url = self.swap(recorded_request["uri"])
        where = f"{self.cassette}: {recorded_request['method']} {urlsplit(url).path}"
        if is_poll(url):
            response = self.poll(url, status, where)
        else:
            body = request_body(recorded_request.get("body"))
            response = self.send(recorded_request["method"], url, self.swap(body) if body else None)
        assert response.status_code == status, f"{where}: {response.status_code} {response.text}"
        recorded_headers = {name.lower(): values[0] for name, values in recorded["headers"].items()}
        if status == 202:
            assert response.content == b"", where
            assert "azure-asyncoperation" not in {name.lower() for name in response.headers}, where
            assert shape(response.headers["Location"]) == shape(self.swap(recorded_headers["location"])), where
            self.location = response.headers["Location"]
        if "etag" in recorded_headers and not is_poll(url):
            assert re.fullmatch(r'"0x[0-9A-F]+"', response.headers["ETag"]), where
        recorded_text = self.swap(recorded["body"]["string"] or "")
        if not recorded_text:
            assert response.content == b"", f"{where}: {response.text}"
        elif "Microsoft.Batch" in url:
            assert_matches(json.loads(recorded_text), response.json(), where, era=self.cassette != REFERENCE)
        self.compared += 1

    def poll(self, recorded_url: str, status: int, where: str) -> requests.Response:
        """The emulator's own status URL stands for the recorded one (same shape): a recorded 202 is one poll
        (the emulator answers 202 once too), a recorded 200 is polled for."""
        assert self.location is not None and shape(self.location) == shape(recorded_url), where
        if status == 202:
            return self.send("GET", self.location)
        return wait_for(lambda: self.send("GET", self.location), lambda answer: answer.status_code != 202)


def assert_matches(recorded: Any, ours: Any, where: str, *, era: bool, key: str = "") -> None:
    path = f"{where} {key}"
    leaf = key.rsplit(".", 1)[-1].split("[", 1)[0]
    if era and leaf in ERA_VALUES:
        assert type(ours) is type(recorded), path
        return
    if isinstance(recorded, dict):
        assert isinstance(ours, dict), path
        missing = set(recorded) - set(ours)
        extra = set(ours) - set(recorded)
        assert not missing, f"{path}: missing {sorted(missing)}"
        assert not extra or (era and extra <= ERA_ADDED), f"{path}: extra {sorted(extra)}"
        for name, value in recorded.items():
            assert_matches(value, ours[name], where, era=era, key=f"{key}.{name}" if key else name)
    elif isinstance(recorded, list):
        assert isinstance(ours, list) and len(ours) == len(recorded), f"{path}: {ours!r}"
        for index, (recorded_item, our_item) in enumerate(zip(recorded, ours)):
            assert_matches(recorded_item, our_item, where, era=era, key=f"{key}[{index}]")
    elif isinstance(recorded, str) and TIME.match(recorded):
        assert isinstance(ours, str) and TIME.match(ours), f"{path}: {ours!r}"
    elif leaf in ("primary", "secondary"):
        assert isinstance(ours, str) and len(ours) == 88 and KEY.match(ours), path
    elif leaf == "nodeManagementEndpoint":
        pilot = ours.replace(".eastus.", PILOT + ".") if PILOT in recorded else ours  # `{uuid}.pilotprod2.service`
        assert re.sub(UUID, "GUID", pilot) == re.sub(UUID, "GUID", recorded), f"{path}: {ours!r}"
    elif leaf == "accountEndpoint":
        assert ours == recorded.replace(PILOT, ""), f"{path}: {ours!r}"
    else:
        assert ours == recorded, f"{path}: recorded {recorded!r}, emulator {ours!r}"


@pytest.mark.parametrize("cassette", CASSETTES)
def test_arm_traffic_replays_as_recorded(cassette, endpoint, resource_client, batch_context):
    if not RECORDINGS.is_dir():
        pytest.skip(f"no recordings at {RECORDINGS} (set BATCHAI_SPEC_RECORDINGS to the recordings folder)")
    interactions = load(cassette)
    replay = Replay(endpoint, cassette)
    creates_group = any(item["request"]["method"] == "PUT" and urlsplit(item["request"]["uri"]).path.lower()
                        .endswith(f"/resourcegroups/{RECORDED_GROUP}") for item in interactions)
    if not creates_group:  # the recorder made the group before recording
        resource_client.resource_groups.create_or_update(replay.group, {"location": "eastus"})
    for interaction in interactions:
        replay.play(interaction)
    assert replay.compared == len(interactions)
    if not creates_group:
        resource_client.resource_groups.begin_delete(replay.group).result()
