"""Fixtures shared by every test folder: a running emulator and the official SDK clients pointed at it.

The emulator is per test session (one per xdist worker); tests keep apart by using unique resource names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient

from batchai_spec.emulator.admin_client import AdminClient
from batchai_spec.emulator.endpoint import Endpoint
from batchai_spec.emulator.server import RunningEmulator, start_in_process
from tests.emulator_clients import (
    LOCATION,
    StaticTokenCredential,
    StorageAccount,
    resource_client_for,
    storage_client_for,
    unique_name,
)


REPOSITORY = Path(__file__).resolve().parents[1]


def stop_background_emulators(root: Path) -> list[int]:
    """Stop every emulator a command started in the background for a state dir under `root` (those the test
    process serves itself are its fixtures' to stop); their pids."""
    from batchai_spec.services.azure.endpoint import stop_local_emulator
    from batchai_spec.emulator.endpoint import LOCK_FILE, lock_holder, pid_alive

    stopped = []
    for lock in root.rglob(LOCK_FILE) if root.is_dir() else ():
        pid = lock_holder(lock.parent)
        if pid is not None and pid != os.getpid():
            stop_local_emulator(lock.parent)
            assert not pid_alive(pid), f"the emulator of {lock.parent} (pid {pid}) is still running"
            stopped.append(pid)
    return stopped


@pytest.fixture(autouse=True)
def _no_background_emulator_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """A command run by a test on a state dir that no emulator serves starts one in the background, which would
    outlive the test: stopped when the test ends (state dirs under its tmp_path)."""
    root = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if root is not None:
        stop_background_emulators(root)


@pytest.fixture(scope="session", autouse=True)
def _no_background_emulator_left_in_the_checkout() -> Iterator[None]:
    """A command run without --state-dir uses .batchai-spec in the checkout: an emulator the tests started there is
    stopped at the end (one a developer runs there is left alone)."""
    from batchai_spec.emulator.endpoint import lock_holder

    default = REPOSITORY / ".batchai-spec"
    running_before = lock_holder(default)
    yield
    if running_before is None and lock_holder(default) is not None:
        from batchai_spec.services.azure.endpoint import stop_local_emulator

        stop_local_emulator(default)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory) -> Iterator[RunningEmulator]:
    with start_in_process(tmp_path_factory.mktemp("emulator-state")) as running:
        yield running


@pytest.fixture(scope="session")
def endpoint(emulator: RunningEmulator) -> Endpoint:
    return emulator.endpoint


@pytest.fixture(scope="session")
def admin(endpoint: Endpoint) -> AdminClient:
    return AdminClient(endpoint)


@pytest.fixture(scope="session")
def arm_credential(endpoint: Endpoint) -> StaticTokenCredential:
    return StaticTokenCredential(endpoint.token)


@pytest.fixture(scope="session")
def resource_client(endpoint: Endpoint) -> ResourceManagementClient:
    return resource_client_for(endpoint)


@pytest.fixture(scope="session")
def storage_client(endpoint: Endpoint) -> StorageManagementClient:
    return storage_client_for(endpoint)


@pytest.fixture
def resource_group(resource_client: ResourceManagementClient) -> str:
    name = unique_name("rg")
    resource_client.resource_groups.create_or_update(name, {"location": LOCATION})
    return name


@pytest.fixture(scope="session")
def make_storage_account(
    endpoint: Endpoint, resource_client: ResourceManagementClient, storage_client: StorageManagementClient
) -> Callable[[], StorageAccount]:
    """Creates a resource group and a storage account in it, through the SDKs, and returns its keys."""

    def make(resource_group: str | None = None) -> StorageAccount:
        group = resource_group or unique_name("rg")
        if resource_group is None:
            resource_client.resource_groups.create_or_update(group, {"location": LOCATION})
        name = unique_name("sa")
        storage_client.storage_accounts.begin_create(
            group, name, {"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": LOCATION}
        ).result()
        keys = storage_client.storage_accounts.list_keys(group, name).keys
        return StorageAccount(group, name, (keys[0].value, keys[1].value), endpoint)

    return make


@pytest.fixture
def storage_account(make_storage_account) -> StorageAccount:
    return make_storage_account()


@pytest.fixture
def share(storage_account: StorageAccount):
    """A fresh share (ShareClient) in a fresh account."""
    return storage_account.service().create_share(unique_name("share"))


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"
