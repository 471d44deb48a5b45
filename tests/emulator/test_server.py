"""The emulator as a process: endpoint file, persistence across restarts, one emulator per state dir, the CLI."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError

from batchai_spec.emulator.admin_client import AdminClient
from batchai_spec.emulator.endpoint import Endpoint
from batchai_spec.emulator.server import start_in_process
from batchai_spec.errors import UserError
from tests.emulator_clients import (
    LOCATION,
    resource_client_for,
    share_service_for,
    storage_client_for,
    unique_name,
)

REPOSITORY = Path(__file__).resolve().parents[2]


def test_endpoint_file_is_private_and_complete(state_dir):
    with start_in_process(state_dir) as emulator:
        path = state_dir / "endpoint.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        written = Endpoint.read(path)
        assert written == emulator.endpoint
        assert written.pid == os.getpid()
        assert written.arm_url.startswith("https://127.0.0.1:") and written.storage_url.startswith("https://127.0.0.1:")
        assert Path(written.ca_cert).is_absolute() and Path(written.ca_cert).exists()
        assert written.token not in repr(written)
    assert not path.exists()


def test_everything_survives_a_restart(state_dir):
    group, account, share_name = unique_name("rg"), unique_name("sa"), unique_name("share")
    with start_in_process(state_dir) as emulator:
        first = emulator.endpoint
        resource_client_for(first).resource_groups.create_or_update(group, {"location": LOCATION, "tags": {"k": "v"}})
        storage = storage_client_for(first)
        storage.storage_accounts.begin_create(
            group, account, {"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": LOCATION}
        ).result()
        key = storage.storage_accounts.list_keys(group, account).keys[0].value
        share = share_service_for(first, account, key).create_share(share_name, quota=7)
        share.create_directory("dir").upload_file("file.bin", b"persistent bytes", metadata={"m": "1"})
        AdminClient(first).add_fault("/never-matches$", "status", count=None)
    with start_in_process(state_dir) as emulator:
        second = emulator.endpoint
        identity = ("token", "subscription_id", "ca_cert")
        assert [getattr(second, name) for name in identity] == [getattr(first, name) for name in identity]
        assert resource_client_for(second).resource_groups.get(group).tags == {"k": "v"}
        assert storage_client_for(second).storage_accounts.list_keys(group, account).keys[0].value == key
        share = share_service_for(second, account, key).get_share_client(share_name)
        assert share.get_share_properties().quota == 7
        file = share.get_file_client("dir/file.bin")
        assert file.download_file().readall() == b"persistent bytes"
        assert file.get_file_properties().metadata == {"m": "1"}
        assert [rule["path"] for rule in AdminClient(second).faults()] == ["/never-matches$"]


def test_one_emulator_per_state_dir(state_dir):
    with start_in_process(state_dir):
        with pytest.raises(UserError, match="Another emulator already serves"):
            start_in_process(state_dir)


def test_reset_forgets_resources_but_keeps_the_identity(state_dir):
    with start_in_process(state_dir) as emulator:
        client = resource_client_for(emulator.endpoint)
        group = unique_name("rg")
        client.resource_groups.create_or_update(group, {"location": LOCATION})
        AdminClient(emulator.endpoint).reset()
        with pytest.raises(ResourceNotFoundError):
            client.resource_groups.get(group)
        assert AdminClient(emulator.endpoint).health()["subscription_id"] == emulator.endpoint.subscription_id


def test_cli_serve_runs_until_sigterm_and_keeps_the_token_to_itself(state_dir):
    process = subprocess.Popen(
        [sys.executable, "-m", "batchai_spec", "emulator", "serve", "--state-dir", str(state_dir)],
        cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        endpoint_file = state_dir / "endpoint.json"
        endpoint = wait_for_endpoint(endpoint_file, process)
        assert endpoint.pid == process.pid
        group = unique_name("rg")
        resource_client_for(endpoint).resource_groups.create_or_update(group, {"location": LOCATION})
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert str(endpoint_file) in output
    assert endpoint.token not in output
    assert not endpoint_file.exists()
    with start_in_process(state_dir) as emulator:
        assert resource_client_for(emulator.endpoint).resource_groups.check_existence(group)


def test_cli_refuses_a_state_dir_that_is_a_file(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "batchai_spec", "emulator", "serve", "--state-dir", str(not_a_dir)],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "is not a directory" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr + result.stdout


def wait_for_endpoint(path: Path, process: subprocess.Popen, output=lambda process: process.stdout.read()) -> Endpoint:
    """Polls with backoff until the server has written its endpoint file (or died: `output(process)` says why)."""
    delay = 0.02
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists():
            try:
                return Endpoint.read(path)
            except (json.JSONDecodeError, TypeError, ValueError, KeyError):
                pass
        if process.poll() is not None:
            raise AssertionError(f"emulator exited early: {output(process)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    raise AssertionError("emulator did not write its endpoint file in time")
