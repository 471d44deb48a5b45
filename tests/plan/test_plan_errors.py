"""A plan that cannot read the live state ends in one message naming the address and the service's error code,
exit 1, no traceback (unless --debug)."""

from __future__ import annotations

import fcntl
import json
import os
import socket

import pytest

from batchai_spec.emulator.admin_client import AdminClient
from batchai_spec.emulator.endpoint import LOCK_FILE
from batchai_spec.errors import UserError
from tests.plan.conftest import SECRETS


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_held_locks: list[int] = []


@pytest.fixture(autouse=True)
def _release_held_locks():
    yield
    while _held_locks:
        os.close(_held_locks.pop())


def _copy_endpoint(project, tmp_path, **changes) -> str:
    """A state dir whose endpoint.json is the running emulator's with some fields changed, and whose lock this
    process holds (the emulator serves from it), as an emulator serving that dir would."""
    endpoint = json.loads((project.state_dir / "endpoint.json").read_text())
    endpoint.update(changes, pid=os.getpid())
    state_dir = tmp_path / "other-state"
    state_dir.mkdir()
    lock = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    _held_locks.append(lock)
    (state_dir / "endpoint.json").write_text(json.dumps(endpoint))
    return str(state_dir)


def _assert_one_message(result, *fragments: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    for secret in SECRETS.values():
        assert secret not in result.stderr


def test_unreachable_endpoint(project, tmp_path):
    state_dir = _copy_endpoint(project, tmp_path, arm_url=f"https://127.0.0.1:{_closed_port()}")
    result = project.cli("plan", str(project.spec), "--state-dir", state_dir)
    _assert_one_message(result, "reading resource_group.rg-plan failed: the endpoint could not be reached")


def test_refused_credential_and_debug_traceback(project, tmp_path):
    state_dir = _copy_endpoint(project, tmp_path, token="not-the-token")
    result = project.cli("plan", str(project.spec), "--state-dir", state_dir)
    _assert_one_message(
        result, "reading resource_group.rg-plan failed: the credential was refused", "(HTTP 401)"
    )
    debug = project.cli("--debug", "plan", str(project.spec), "--state-dir", state_dir)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "ClientAuthenticationError" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == result.stderr.strip()
    assert "not-the-token" not in debug.stderr


def test_azure_target_without_a_subscription(project):
    result = project.cli("plan", str(project.spec), "--backend", "azure", env={"AZURE_SUBSCRIPTION_ID": ""})
    _assert_one_message(result, "the azure target needs AZURE_SUBSCRIPTION_ID")


def test_unknown_target_address(project):
    project.converged()
    result = project.cli("plan", str(project.spec), "--state-dir", str(project.state_dir), "--target", "cluster.nope")
    _assert_one_message(result, "--target cluster.nope: no such address in this spec")


@pytest.mark.parametrize(
    "fault, message",
    [
        # retried by the SDK first, as every 500
        (
            {"path": r"/workspaces/ws-plan/clusters$", "method": "GET", "service": "arm", "status": 500,
             "code": "InternalServerError", "message": "The cluster list broke."},
            "listing clusters of workspace.ws-plan failed: InternalServerError (HTTP 500): The cluster list broke.",
        ),
        (
            {"path": r"/storageAccounts/planstore/listKeys$", "service": "arm", "status": 403,
             "code": "AuthorizationFailed", "message": "No keys for you."},
            "listing the keys of storage_account.planstore failed: AuthorizationFailed (HTTP 403): No keys for you.",
        ),
        (
            {"path": r"^/planstore/data/inputs$", "service": "storage", "status": 403,
             "code": "AuthorizationFailure", "message": "Not this directory."},
            # The directory's properties and its listing are read at once: either meets the fault first.
            tuple(
                f"{verb} directory.data/inputs failed: AuthorizationFailure (HTTP 403): Not this directory."
                for verb in ("reading", "listing")
            ),
        ),
    ],
    ids=["cluster-list-500", "list-keys-403", "directory-list-403"],
)
def test_service_error_while_reading(project, fault, message):
    project.converged()
    AdminClient(project.emulator.endpoint).add_fault(action="status", count=None, **fault)
    with pytest.raises(UserError) as raised:
        project.plan()
    assert raised.value.message in (message if isinstance(message, tuple) else (message,))
    assert raised.value.exit_code == 1
