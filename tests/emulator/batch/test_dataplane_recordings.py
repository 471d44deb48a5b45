"""The Batch data plane against recorded real traffic (azure-cli scenario tests, 2020-2025, api-versions
2020-03-01.11.0 to 2024-02-01.19.0: `../shared/recordings/batch/`, see its README).

Each scenario's data-plane requests are replayed in order through azure-batch 15.1.0's own pipeline
(`BatchClient.send_request`, SharedKey-signed by the SDK) against a new account, with the recorded host swapped for
the account's emulator endpoint, and every answer compared with the recorded one: the status code and the keys of
the JSON body, recursively (values differ per run: ids, times, etags). Before a read whose recorded answer shows a
later state (tasks completed, nodes idle, the pool steady), the replay waits for the emulator to get there, by
polling; states the emulator passes too fast to observe are not waited for.

What is not compared, each with its reason (README "Azure Batch (data plane)"): interactions outside the data plane
(ARM) and operations the emulator does not serve (job schedules, supported images, pool usage metrics); image
references the service refused because it does not know the image (the emulator has no image
catalogue). Replayed differently: Windows command lines, run as their Linux equivalents (the emulator's nodes are
this machine); pools of the retired Cloud Services configuration, which the emulator refuses (checked) as the
current API does, made as virtual machine pools so that what the scenario does with them is replayed. Known
differences of body keys are listed in ALLOWED with the reason.

The recordings are data from the azure-cli repository, kept outside this repository (`../shared/recordings`, or
`BATCHAI_SPEC_RECORDINGS`); the test skips when they are not there.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from azure.batch import BatchClient
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest

from batchai_spec.emulator.batch.service import Context
from tests.emulator.batch.conftest import batch_delays
from tests.emulator.batch.dataplane_support import DataPlane, dataplane  # noqa: F401 (fixture)
from tests.emulator.recordings_support import RECORDINGS as RECORDINGS_ROOT

RECORDINGS = RECORDINGS_ROOT / "batch"
SCENARIOS = [
    "test_batch_jobs_and_tasks",
    "test_batch_task_create_cmd",
    "test_batch_file_download_cmd",
    "test_batch_pool_cmd",
    "test_batch_pools_and_nodes",
    "test_batch_job_list_cmd",
]
# Operations the emulator does not serve: not replayed.
NOT_SERVED = re.compile(r"^/(jobschedules|supportedimages|poolusagemetrics)(/|$)")
# Windows command lines recorded on Windows pools, replayed as what they do on Linux.
COMMANDS = {
    "cmd /c echo test": "/bin/sh -c 'echo test'",
    "cmd /c echo updated": "/bin/sh -c 'echo updated'",
    "cmd /c dir /s": "/bin/sh -c 'ls -R'",
    "cmd /c set AZ_BATCH_TASK_ID": "/bin/sh -c 'echo AZ_BATCH_TASK_ID=$AZ_BATCH_TASK_ID'",
    "ping 127.0.0.1 -n 30": "sleep 30",
}
# Cloud Services pools (retired) are replayed as pools of this image; their answers show a
# virtualMachineConfiguration instead, and no Windows user configuration (a Cloud Services default).
VM_CONFIGURATION = {"imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy",
                                       "sku": "22_04-lts"}, "nodeAgentSKUId": "batch.node.ubuntu 22.04"}
VM_POOL_KEYS = {"missing": {"cloudServiceConfiguration", "userAccounts[].windowsUserConfiguration"},
                "extra": {"virtualMachineConfiguration"}}
# Requests the real service refused because of what it knows and the emulator does not (its image catalogue),
# by the recorded error's PropertyName: the emulator accepts them; their answers are not compared.
CATALOGUE_REFUSALS = {"imageReference", "virtualMachineImageId"}
# Keys the emulator's answers leave out or add, by the operation's path pattern, with the reason.
# Key paths (and everything under them) the emulator's answers may leave out or add, by the operation's path
# pattern, with the reason.
ALLOWED: dict[str, dict[str, set[str]]] = {
    r"^/pools/[^/]+/nodes$": {
        # Inbound NAT endpoints (public IP and port of RDP/SSH): the emulator's nodes are not reachable that way.
        # Certificates: the emulator has none to install.
        "missing": {"value[].endpointConfiguration", "value[].certificateReferences", "value[].recentTasks"},
        # Which node ran which task is the scheduler's choice, so which node lists recent tasks differs.
        "extra": {"value[].recentTasks"},
    },
    # After updateproperties the service shows targetNodeCommunicationMode `default`, which it did not show before;
    # the emulator shows the property only when a client set it.
    r"^/pools/[^/]+$": {"missing": {"targetNodeCommunicationMode"}},
}
# Scenarios that stop a resize while it runs: allocation takes this long there (elsewhere it is immediate).
SLOW_ALLOCATION = {"test_batch_pool_cmd": 5.0, "test_batch_pools_and_nodes": 5.0}


def load_cassette(name: str) -> list[dict[str, Any]]:
    with (RECORDINGS / f"{name}.yaml").open() as handle:
        cassette = yaml.safe_load(handle)
    return [item for item in cassette["interactions"] if _is_data_plane(item["request"]["uri"])]


def _is_data_plane(uri: str) -> bool:
    parts = urlsplit(uri)
    return ".batch.azure.com" in parts.netloc or (parts.netloc.startswith("127.0.0.1")
                                                   and not parts.path.startswith("/subscriptions"))


def keys_of(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON document (`a.b`, list items as `a[]`)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            found.add(path)
            found |= keys_of(item, path)
    elif isinstance(value, list):
        for item in value:
            found |= keys_of(item, f"{prefix}[]")
    return found


class Replay:
    def __init__(self, dataplane: DataPlane, client: BatchClient):
        self.dataplane = dataplane
        self.client = client
        self.vm_pools: set[str] = set()  # recorded as Cloud Services pools, replayed as virtual machine pools
        self.node_ids: dict[str, str] = {}
        self.compared = 0
        self.differences: list[str] = []

    def path_of(self, uri: str) -> tuple[str, str]:
        parts = urlsplit(uri)
        return parts.path, parts.query

    def request_body(self, recorded: dict[str, Any]) -> str | None:
        text = recorded.get("body")
        if not text:
            return None
        document = json.loads(text)
        return json.dumps(self.translate(document))

    def translate(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: (COMMANDS.get(item, item) if key in ("commandLine", "coordinationCommandLine")
                          else self.translate(item)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.translate(item) for item in value]
        return value

    def send(self, method: str, path: str, query: str, headers: dict[str, list[str]], body: str | None):
        forwarded = {name: values[0] for name, values in headers.items()
                     if name.lower() in ("content-type", "ocp-range", "if-match", "if-none-match",
                                         "if-modified-since", "if-unmodified-since", "accept")}
        url = f"{self.dataplane.url}{path}" + (f"?{query}" if query else "")
        try:
            return self.client.send_request(HttpRequest(method, url, headers=forwarded, content=body))
        except HttpResponseError as error:  # the SDK's exception policy raises for every error status
            return error.response

    def play(self, interaction: dict[str, Any]) -> None:
        recorded_request, recorded = interaction["request"], interaction["response"]
        method = recorded_request["method"]
        path, query = self.path_of(recorded_request["uri"])
        status = recorded["status"]["code"]
        if status >= 500 or NOT_SERVED.match(path):
            return
        body = self.request_body(recorded_request)
        document = json.loads(body) if body else {}
        if method == "POST" and path == "/pools" and "cloudServiceConfiguration" in document:
            # Retired: the emulator refuses it (checked once), and is asked for a virtual machine pool instead.
            refused = self.send(method, path, query, recorded_request["headers"], body)
            assert refused.status_code in (400, status), refused.text()
            self.vm_pools.add(document["id"])
            document.pop("cloudServiceConfiguration")
            document["virtualMachineConfiguration"] = VM_CONFIGURATION
            body = json.dumps(document)
        for recorded_id, our_id in self.node_ids.items():  # node ids are the service's own
            path = path.replace(f"/nodes/{recorded_id}", f"/nodes/{our_id}")
        recorded_text = recorded["body"]["string"] or ""
        recorded_json = _json(recorded_text)
        if recorded_json and recorded_json.get("code") == "InvalidPropertyValue" and any(
                item.get("value") in CATALOGUE_REFUSALS for item in recorded_json.get("values", [])):
            return  # the emulator would make this pool: the recorded scenario has none
        if method == "GET" and status == 200 and recorded_json:
            self.wait_for(path, query, recorded_request["headers"], recorded_json)
        response = self.send(method, path, query, recorded_request["headers"], body)
        if recorded_json and recorded_json.get("state") == "deleting" and response.status_code == 404:
            return  # deleted already: the emulator passed `deleting` too fast to observe
        self.compare(method, path, status, recorded_json, recorded_text, response,
                     ranged="ocp-range" in {name.lower() for name in recorded_request["headers"]})

    def wait_for(self, path: str, query: str, headers, recorded: dict[str, Any]) -> None:
        """Until the emulator reached the state the recorded answer shows, where that is a later state."""
        target = _progress(path, recorded)
        if target is None:
            return
        deadline = time.monotonic() + 20
        current = None
        while time.monotonic() < deadline:
            response = self.send("GET", path, query, headers, None)
            current = _json(response.text()) if response.status_code == 200 else None
            if current is not None and _progress(path, current) is not None and _progress(path, current) >= target:
                return
            time.sleep(0.05)
        pytest.fail(f"{path} did not reach the recorded state {target!r} in 20 s; last answer: {current!r}")

    def compare(self, method: str, path: str, status: int, recorded_json, recorded_text: str, response,
                ranged: bool) -> None:
        self.compared += 1
        where = f"{method} {path}"
        if response.status_code != status:
            self.differences.append(f"{where}: status {response.status_code} (recorded {status}): {response.text()}")
            return
        if response.headers.get("DataServiceVersion") != "3.0" or not response.headers.get("request-id"):
            self.differences.append(f"{where}: no DataServiceVersion/request-id")
        if recorded_json is None:
            if method != "GET" and response.text():
                self.differences.append(f"{where}: a body where the service sent none: {response.text()[:200]}")
            if ranged and len(response.content) != len(recorded_text.encode()):
                # File contents differ (the commands ran on Linux), the length of a range does not.
                self.differences.append(f"{where}: {len(response.content)} bytes for a range the service answered"
                                        f" with {len(recorded_text.encode())}")
            return
        emulated = _json(response.text())
        if emulated is None:
            self.differences.append(f"{where}: not JSON: {response.text()[:200]}")
            return
        allowed = next((rules for pattern, rules in ALLOWED.items() if re.match(pattern, path)), {})
        if re.match(r"^/pools/[^/]+/nodes$", path):
            self.node_ids.update((recorded["id"], ours["id"]) for recorded, ours in zip(
                recorded_json.get("value", []), emulated.get("value", [])))
        for recorded_item, emulated_item, prefix in _pairs(recorded_json, emulated):
            missing_ok, extra_ok = set(allowed.get("missing", set())), set(allowed.get("extra", set()))
            if recorded_item.get("id", _pool_of(path)) in self.vm_pools:
                missing_ok |= {_join(prefix, name) for name in VM_POOL_KEYS["missing"]}
                extra_ok |= {_join(prefix, name) for name in VM_POOL_KEYS["extra"]}
            missing = _unexplained(keys_of(recorded_item, prefix) - keys_of(emulated_item, prefix), missing_ok)
            extra = _unexplained(keys_of(emulated_item, prefix) - keys_of(recorded_item, prefix), extra_ok)
            if missing or extra:
                self.differences.append(f"{where}: keys missing {sorted(missing)}, extra {sorted(extra)}")


def _unexplained(keys: set[str], allowed: set[str]) -> set[str]:
    return {key for key in keys if not any(key == prefix or key.startswith((f"{prefix}.", f"{prefix}["))
                                           for prefix in allowed)}


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _pool_of(path: str) -> str | None:
    match = re.match(r"^/pools/([^/]+)", path)
    return match.group(1) if match else None


def _pairs(recorded: dict[str, Any], emulated: dict[str, Any]) -> list[tuple[Any, Any, str]]:
    """What to compare: a list's entities paired by id (not the jobs a job schedule made: the emulator has no job
    schedules), by position where the service chose the ids (nodes), anything else whole."""
    items = recorded.get("value")
    if not isinstance(items, list) or not all(isinstance(item, dict) and "id" in item for item in items):
        return [(recorded, emulated, "")]
    theirs = [item for item in emulated.get("value", []) if isinstance(item, dict)]
    ours = {str(item.get("id")).lower(): item for item in theirs}
    pairs = [({key: value for key, value in recorded.items() if key != "value"},
              {key: value for key, value in emulated.items() if key != "value"}, "")]
    by_position = not any(str(item["id"]).lower() in ours for item in items)
    for index, item in enumerate(items):
        if ":" in str(item["id"]):
            continue
        match = (theirs[index] if index < len(theirs) else {}) if by_position else ours.get(str(item["id"]).lower())
        pairs.append((item, match or {}, "value[]"))
    return pairs


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


_TASK_ORDER = {"active": 0, "preparing": 1, "running": 2, "completed": 3}


def _progress(path: str, document: dict[str, Any]) -> tuple | None:
    """How far along an answer is, for the reads worth waiting for (None: do not wait)."""
    if path.endswith("/taskcounts"):
        return (document["taskCounts"]["completed"],)
    if re.match(r"^/pools/[^/]+/nodes$", path):
        states = [node.get("state") for node in document.get("value", [])]
        return (len(states), states.count("idle")) if states else None
    if re.match(r"^/pools/[^/]+$", path) and document.get("allocationState") == "steady" \
            and "currentDedicatedNodes" in document:
        return (document["currentDedicatedNodes"] + document.get("currentLowPriorityNodes", 0),)
    if re.match(r"^/jobs/[^/]+/tasks/[^/]+$", path) and "state" in document:
        return (_TASK_ORDER.get(document["state"], 0),)
    return None


@pytest.fixture(scope="module")
def recordings_present() -> None:
    if not RECORDINGS.is_dir():
        pytest.skip(f"the recorded Batch traffic is not at {RECORDINGS} (set BATCHAI_SPEC_RECORDINGS)")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_recorded_data_plane_traffic(recordings_present, batch_context: Context, dataplane: DataPlane,
                                     scenario: str):
    interactions = load_cassette(scenario)
    assert interactions, f"{scenario} has no data-plane traffic"
    replay = Replay(dataplane, dataplane.client())
    with batch_delays(batch_context, allocation_s=SLOW_ALLOCATION.get(scenario, 0.0)):
        for interaction in interactions:
            replay.play(interaction)
    assert replay.compared > 0
    assert not replay.differences, "\n".join(replay.differences)
