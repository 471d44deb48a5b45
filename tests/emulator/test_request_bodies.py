"""Request bodies under abuse: authentication from the headers before any body is read, a bound on each
operation's body enforced while it streams in, JSON that nests too deep refused as a 400."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError

from batchai_spec.emulator.admin_client import AdminClient
from batchai_spec.emulator.endpoint import Endpoint
from tests.emulator.raw_https import send
from tests.emulator.raw_streams import account_sas, connect, read_answer, request_head, stream_request
from tests.emulator.test_server import wait_for_endpoint
from tests.emulator_clients import LOCATION, resource_client_for, storage_client_for, unique_name

REPOSITORY = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
HUGE = 300 * 1000 * 1000


def _answer_to_head_alone(endpoint: Endpoint, url: str, method: str, headers: dict[str, str]):
    """Send only a request head that announces a huge body, and read the answer: it must come without the body."""
    connection = connect(endpoint, url)
    try:
        connection.sendall(request_head(url, method, headers))
        return read_answer(connection, deadline_s=30)
    finally:
        connection.close()


# --- authentication before the body -------------------------------------------------------------------------


def test_files_refuse_an_unauthenticated_body_from_its_headers(endpoint, storage_account):
    url = f"{storage_account.url}/{unique_name('share')}/file.bin?comp=range"
    headers = {"Content-Length": str(HUGE), "x-ms-range": f"bytes=0-{HUGE - 1}", "x-ms-write": "update"}
    answer = _answer_to_head_alone(endpoint, url, "PUT", headers)
    assert answer.status == 401
    assert answer.headers["x-ms-error-code"] == "NoAuthenticationInformation"
    forged = {**headers, "Authorization": f"SharedKey {storage_account.name}:AAAA", "x-ms-date": _http_date()}
    answer = _answer_to_head_alone(endpoint, url, "PUT", forged)
    assert (answer.status, answer.headers["x-ms-error-code"]) == (403, "AuthenticationFailed")


def test_arm_refuses_an_unauthenticated_body_from_its_headers(endpoint):
    url = f"{endpoint.arm_url}/subscriptions/{endpoint.subscription_id}/resourcegroups/rg?api-version=2025-04-01"
    answer = _answer_to_head_alone(endpoint, url, "PUT", {"Content-Length": str(HUGE)})
    assert answer.status == 401
    assert json.loads(answer.body)["error"]["code"] == "InvalidAuthenticationToken"


def test_a_refused_body_sent_whole_is_discarded_and_the_connection_serves_on(endpoint, storage_account):
    """A client that sends all of a body refused before it was read still reads the answer, and its connection
    serves the next request."""
    url = f"{storage_account.url}/{unique_name('share')}/file.bin?comp=range"
    body = 5 * MIB
    connection = connect(endpoint, url)
    try:
        connection.sendall(request_head(url, "PUT", {"Content-Length": str(body)}) + bytes(body))
        assert read_answer(connection).status == 401
        connection.sendall(request_head(url, "GET", {}))
        second = read_answer(connection)
        assert (second.status, second.headers["x-ms-error-code"]) == (401, "NoAuthenticationInformation")
    finally:
        connection.close()


def test_an_unauthenticated_300_mb_put_leaves_the_server_process_small(tmp_path):
    """The standalone server (`emulator serve`), its RSS read from /proc: a 300 MB unauthenticated PUT streamed at
    it is answered 401 at once, and the process grows by less than 20 MB (its peak RSS included)."""
    state_dir = tmp_path / "state"
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "batchai_spec", "emulator", "serve", "--state-dir", str(state_dir)],
            cwd=REPOSITORY, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        endpoint = wait_for_endpoint(state_dir / "endpoint.json", process, lambda _: log_path.read_text(errors="replace"))
        group, account = unique_name("rg"), unique_name("sa")
        resource_client_for(endpoint).resource_groups.create_or_update(group, {"location": LOCATION})
        storage_client_for(endpoint).storage_accounts.begin_create(
            group, account, {"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": LOCATION}
        ).result()
        url = f"{endpoint.file_endpoint(account)}/share/big.bin?comp=range"
        headers = {"Content-Length": str(HUGE), "x-ms-range": f"bytes=0-{HUGE - 1}", "x-ms-write": "update"}
        # Warm up the Files service's code paths, so that the measure below is of the body alone.
        warm = stream_request(endpoint, url, "PUT", {**headers, "Content-Length": str(MIB)}, MIB)
        assert warm.status == 401

        before_kib = _memory_kib(process.pid, "VmRSS")
        peak_resettable = _reset_peak(process.pid)
        answer = stream_request(endpoint, url, "PUT", headers, HUGE)
        after_kib = _memory_kib(process.pid, "VmRSS")
        peak_kib = _memory_kib(process.pid, "VmHWM") if peak_resettable else after_kib

        assert answer.status == 401, answer
        assert answer.headers["x-ms-error-code"] == "NoAuthenticationInformation"
        assert answer.body_bytes_sent < HUGE  # answered before the body: the client stopped sending
        growth_mb = (max(after_kib, peak_kib) - before_kib) / 1024
        assert growth_mb < 20, f"the server grew by {growth_mb:.1f} MB"
        assert AdminClient(endpoint).health()["status"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


# --- bounds on bodies ---------------------------------------------------------------------------------------


def test_put_range_over_4_mib_is_refused_from_its_content_length(endpoint, storage_account):
    share = storage_account.service().create_share(unique_name("share"))
    share.get_file_client("big.bin").create_file(8 * MIB)
    sas = account_sas(storage_account.name, storage_account.keys[0])
    url = f"{storage_account.url}/{share.share_name}/big.bin?comp=range&{sas}"
    length = 4 * MIB + 1
    headers = {"Content-Length": str(length), "x-ms-range": f"bytes=0-{length - 1}", "x-ms-write": "update"}
    answer = _answer_to_head_alone(endpoint, url, "PUT", headers)
    assert (answer.status, answer.headers["x-ms-error-code"]) == (413, "RequestBodyTooLarge")
    assert b"<MaxLimit>4194304</MaxLimit>" in answer.body
    # The SDK sends such a range whole: it reads the same answer.
    with pytest.raises(HttpResponseError) as raised:
        share.get_file_client("big.bin").upload_range(b"x" * length, offset=0, length=length)
    assert (raised.value.status_code, raised.value.error_code) == (413, "RequestBodyTooLarge")


def test_a_chunked_body_is_refused_once_it_passes_the_bound(endpoint, storage_account):
    share = storage_account.service().create_share(unique_name("share"))
    sas = account_sas(storage_account.name, storage_account.keys[0])
    url = f"{storage_account.url}/{share.share_name}?restype=share&comp=metadata&{sas}"
    answer = stream_request(
        endpoint, url, "PUT", {"Transfer-Encoding": "chunked", "x-ms-meta-a": "1"}, 16 * MIB,
        chunk_bytes=64 * 1024, chunk_framing=True,
    )
    assert (answer.status, answer.headers["x-ms-error-code"]) == (413, "RequestBodyTooLarge")
    assert b"<MaxLimit>65536</MaxLimit>" in answer.body
    assert answer.body_bytes_sent < 16 * MIB


def test_operations_without_data_take_only_small_bodies(endpoint, storage_account):
    share = storage_account.service().create_share(unique_name("share"))
    sas = account_sas(storage_account.name, storage_account.keys[0])
    url = f"{storage_account.url}/{share.share_name}?restype=share&comp=metadata&{sas}"
    answer = _answer_to_head_alone(endpoint, url, "PUT", {"Content-Length": str(MIB), "x-ms-meta-a": "1"})
    assert (answer.status, answer.headers["x-ms-error-code"]) == (413, "RequestBodyTooLarge")
    small = send(endpoint, url, "PUT", headers={"x-ms-meta-a": "1"}, body=b"ignored")
    assert small.status == 200
    assert share.get_share_properties().metadata == {"a": "1"}


def test_arm_bodies_over_4_mb_are_refused(endpoint):
    url = f"{endpoint.arm_url}/subscriptions/{endpoint.subscription_id}/resourcegroups/rg?api-version=2025-04-01"
    headers = {"Authorization": f"Bearer {endpoint.token}", "Content-Type": "application/json"}
    answer = _answer_to_head_alone(endpoint, url, "PUT", {**headers, "Content-Length": str(4 * MIB + 1)})
    assert answer.status == 413
    assert json.loads(answer.body)["error"]["code"] == "RequestContentTooLarge"
    answer = stream_request(
        endpoint, url, "PUT", {**headers, "Transfer-Encoding": "chunked"}, 16 * MIB, chunk_bytes=256 * 1024,
        chunk_framing=True,
    )
    assert answer.status == 413
    assert json.loads(answer.body)["error"]["code"] == "RequestContentTooLarge"


# --- JSON nesting -------------------------------------------------------------------------------------------


def _nested(depth: int) -> dict:
    document: dict = {}
    for _ in range(depth - 1):
        document = {"a": document}
    return document


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    json.dumps({"location": LOCATION, "tags": _nested(65)}).encode(),
], ids=["past-the-parser", "past-the-bound"])
def test_deeply_nested_json_is_a_400_not_a_500(endpoint, caplog, body):
    caplog.set_level(logging.ERROR, logger="batchai_spec.emulator")
    group = unique_name("rg")
    url = f"{endpoint.arm_url}/subscriptions/{endpoint.subscription_id}/resourcegroups/{group}?api-version=2025-04-01"
    answer = send(
        endpoint, url, "PUT", headers={"Authorization": f"Bearer {endpoint.token}", "Content-Type": "application/json"},
        body=body,
    )
    assert answer.status == 400
    assert json.loads(answer.body)["error"]["code"] == "InvalidRequestContent"
    admin = send(
        endpoint, f"{endpoint.arm_url}/_emulator/faults", "POST", headers={"Authorization": f"Bearer {endpoint.token}"},
        body=body,
    )
    assert admin.status == 400
    failures = [record for record in caplog.records if record.name == "batchai_spec.emulator" and record.exc_info]
    assert not failures, "a handler failed"


def test_json_within_the_nesting_bound_is_served(endpoint):
    group = unique_name("rg")
    url = f"{endpoint.arm_url}/subscriptions/{endpoint.subscription_id}/resourcegroups/{group}?api-version=2025-04-01"
    headers = {"Authorization": f"Bearer {endpoint.token}", "Content-Type": "application/json"}
    # 64 levels parse; these tags are then refused by the resource group's own rule, not by the nesting bound.
    deep_tags = json.dumps({"location": LOCATION, "tags": _nested(63)}).encode()
    answer = send(endpoint, url, "PUT", headers=headers, body=deep_tags)
    assert (answer.status, json.loads(answer.body)["error"]["code"]) == (400, "InvalidTag")
    answer = send(endpoint, url, "PUT", headers=headers, body=json.dumps({"location": LOCATION}).encode())
    assert answer.status == 201


# --- helpers ------------------------------------------------------------------------------------------------


def _http_date() -> str:
    from email.utils import formatdate

    return formatdate(usegmt=True)


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _reset_peak(pid: int) -> bool:
    """Reset the process's peak RSS (VmHWM) to its current RSS, where the kernel lets us."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


