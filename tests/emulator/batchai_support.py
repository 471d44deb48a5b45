"""Fixtures and helpers for the Batch AI emulator tests: the SDK 7 client, a share to mount, clusters, waits.

Test modules import the fixtures they use by name. Every test makes its own resource group, so tests share the
session's emulator without seeing each other's resources.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import azure.mgmt.batchai.models as models
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.batchai import BatchAI

from batchai_spec.emulator import machine
from batchai_spec.emulator.batchai import service
from batchai_spec.emulator.batchai.config import BatchAIConfig, Delays
from batchai_spec.emulator.batchai.environment import host_environment
from batchai_spec.emulator.endpoint import Endpoint
from batchai_spec.emulator.files.store import share_directory
from batchai_spec.emulator.server import RunningEmulator
from tests.emulator_clients import (
    LOCATION,
    StaticTokenCredential,
    StorageAccount,
    new_storage_account,
    unique_name,
)

WORKSPACE = "ws"
EXPERIMENT = "exp"
SHARE = "share"
MOUNT = "afs"

T = TypeVar("T")


def batchai_client_for(endpoint: Endpoint) -> BatchAI:
    """How any client reaches the emulator: base_url, the emulator's CA, a short polling interval."""
    return BatchAI(
        StaticTokenCredential(endpoint.token), endpoint.subscription_id, base_url=endpoint.arm_url,
        connection_verify=endpoint.ca_cert, polling_interval=0.05,
    )


def share_reference(account: str, key: str, share: str, mount: str = MOUNT,
                    url: str | None = None) -> models.AzureFileShareReference:
    return models.AzureFileShareReference(
        account_name=account, azure_file_url=url or f"https://{account}.file.core.windows.net/{share}",
        credentials=models.AzureStorageCredentialsInfo(account_key=key), relative_mount_path=mount,
    )


def cluster_parameters(account: str, key: str, share: str, *, nodes: int = 1, mount: str = MOUNT,
                       scale: models.ScaleSettings | None = None) -> models.ClusterCreateParameters:
    """A cluster of NC6 nodes with the Azure File share `share` of `account` mounted at `$AZ_BATCHAI_MOUNT_ROOT/mount`."""
    return models.ClusterCreateParameters(
        vm_size="Standard_NC6",
        scale_settings=scale or models.ScaleSettings(manual=models.ManualScaleSettings(target_node_count=nodes)),
        user_account_settings=models.UserAccountSettings(admin_user_name="demo", admin_user_password="Secret-pw1"),
        node_setup=models.NodeSetup(mount_volumes=models.MountVolumes(
            azure_file_shares=[share_reference(account, key, share, mount)])),
    )


def wait_for(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float = 30.0, *, what: str = "",
             first_pause_s: float = 0.01, longest_pause_s: float = 0.25) -> T:
    """Poll `read` with backoff until `done(value)`; fails the test with the last value (and `what` was awaited)
    on timeout."""
    deadline = time.monotonic() + timeout_s
    pause = first_pause_s
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting{f' for {what}' if what else ''}; last value: {value!r}")
        time.sleep(pause)
        pause = min(pause * 1.5, longest_pause_s)


def running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


# Stopped jobs get SIGKILL this long after SIGTERM in tests (3 s by default), so a test of one stays short.
TEST_GRACE_S = 0.5


def fast_config(**overrides: Any) -> BatchAIConfig:
    """Zero simulated delays and a short grace period, with `overrides` (BatchAIConfig fields)."""
    return BatchAIConfig(**{"delays": Delays().scaled(0), "terminate_grace_s": TEST_GRACE_S, **overrides})


def zero_delays(emulator: RunningEmulator, host_env: Mapping[str, str] | None = None, **overrides: Any) -> None:
    """`fast_config(**overrides)`, and `host_env` as what the host lends node tasks (None: this process's)."""
    service.reconfigure(emulator.state, fast_config(**overrides), host_env)


def path_without_mpirun() -> str:
    """The system's program directories that have no mpirun: a PATH on which node tasks find MPI only where the
    emulator puts it (beside the job Python)."""
    return os.pathsep.join(directory for directory in ("/usr/bin", "/bin") if machine.find_mpirun(directory) is None)


@dataclass
class Sandbox:
    """One test's world: a resource group with a storage account, a share and a workspace."""

    client: BatchAI
    emulator: RunningEmulator
    account: StorageAccount
    share_dir: Path

    @property
    def group(self) -> str:
        return self.account.resource_group

    @property
    def key(self) -> str:
        return self.account.keys[0]

    def share_mount(self, key: str | None = None, url: str | None = None, path: str = MOUNT) -> models.AzureFileShareReference:
        return share_reference(self.account.name, key or self.key, SHARE, path, url)

    def write(self, relative: str, text: str) -> None:
        path = self.share_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def create_cluster(self, name: str = "cluster", *, nodes: int = 1, scale: models.ScaleSettings | None = None,
                       wait_idle: bool = True, **node_setup: Any) -> models.Cluster:
        parameters = cluster_parameters(self.account.name, self.key, SHARE, nodes=nodes, scale=scale)
        for name_of, value in node_setup.items():
            setattr(parameters.node_setup, name_of, value)
        cluster = self.client.clusters.begin_create(self.group, WORKSPACE, name, parameters).result()
        if wait_idle:
            return self.wait_cluster(name, lambda c: c.allocation_state == "steady"
                                     and c.node_state_counts.idle_node_count == nodes)
        return cluster

    def wait_cluster(self, name: str, done: Callable[[models.Cluster], bool]) -> models.Cluster:
        return wait_for(lambda: self.client.clusters.get(self.group, WORKSPACE, name), done)

    def job_parameters(self, cluster: models.Cluster, **settings: Any) -> models.JobCreateParameters:
        settings.setdefault("node_count", 1)
        settings.setdefault("std_out_err_path_prefix", f"$AZ_BATCHAI_MOUNT_ROOT/{MOUNT}")
        if not any(name.endswith("_settings") and name != "container_settings" for name in settings):
            settings["custom_toolkit_settings"] = models.CustomToolkitSettings(command_line="echo hi")
        return models.JobCreateParameters(cluster=models.ResourceId(id=cluster.id), **settings)

    def submit(self, cluster: models.Cluster, name: str, **settings: Any) -> models.Job:
        return self.client.jobs.begin_create(
            self.group, WORKSPACE, EXPERIMENT, name, self.job_parameters(cluster, **settings)
        ).result()

    def job(self, name: str) -> models.Job:
        return self.client.jobs.get(self.group, WORKSPACE, EXPERIMENT, name)

    def wait_job(self, name: str, states: tuple[str, ...] = ("succeeded", "failed"),
                 timeout_s: float = 30.0) -> models.Job:
        return wait_for(lambda: self.job(name), lambda job: job.execution_state in states, timeout_s,
                        what=f"job {name} to be {' or '.join(states)}")

    def stdouterr(self, job: models.Job) -> Path:
        return self.share_dir / job.job_output_directory_path_segment / "stdouterr"

    def output_files(self, job_name: str, directory_id: str, **options: Any) -> list[models.File]:
        return list(self.client.jobs.list_output_files(
            self.group, WORKSPACE, EXPERIMENT, job_name,
            models.JobsListOutputFilesOptions(outputdirectoryid=directory_id, **options),
        ))


def custom(command_line: str) -> dict[str, Any]:
    return {"custom_toolkit_settings": models.CustomToolkitSettings(command_line=command_line)}


def wall_clock(seconds: float) -> models.JobBasePropertiesConstraints:
    return models.JobBasePropertiesConstraints(max_wall_clock_time=timedelta(seconds=seconds))


def standalone_sandbox(emulator: RunningEmulator) -> Sandbox:
    """A Sandbox on an emulator of the test's own (one it may stop): group, account, share, workspace, experiment."""
    endpoint = emulator.endpoint
    client = batchai_client_for(endpoint)
    account = new_storage_account(endpoint)
    group, name = account.resource_group, account.name
    account.service().create_share(SHARE)
    client.workspaces.begin_create(group, WORKSPACE, models.WorkspaceCreateParameters(location=LOCATION)).result()
    client.experiments.begin_create(group, WORKSPACE, EXPERIMENT).result()
    return Sandbox(client, emulator, account, share_directory(emulator.state, name, SHARE))


@pytest.fixture(scope="session")
def batchai(emulator: RunningEmulator, endpoint: Endpoint) -> BatchAI:
    zero_delays(emulator)
    return batchai_client_for(endpoint)


@pytest.fixture
def sandbox(batchai: BatchAI, emulator: RunningEmulator, make_storage_account) -> Iterator[Sandbox]:
    account = make_storage_account()
    account.service().create_share(SHARE)
    batchai.workspaces.begin_create(
        account.resource_group, WORKSPACE, models.WorkspaceCreateParameters(location=LOCATION)
    ).result()
    batchai.experiments.begin_create(account.resource_group, WORKSPACE, EXPERIMENT).result()
    box = Sandbox(batchai, emulator, account, share_directory(emulator.state, account.name, SHARE))
    yield box
    # Stop whatever still runs: deleting the workspace terminates its jobs and removes its nodes.
    try:
        batchai.workspaces.begin_delete(account.resource_group, WORKSPACE).result()
    except ResourceNotFoundError:
        pass  # the test deleted the resource group (and so the workspace) itself


@pytest.fixture
def node_host(sandbox: Sandbox) -> Iterator[Callable[..., None]]:
    """`node_host(PATH, **config)`: the PATH the host lends node tasks, and BatchAIConfig overrides, for one test."""

    def lend(path: str, **overrides: Any) -> None:
        zero_delays(sandbox.emulator, {**host_environment(), "PATH": path}, **overrides)

    yield lend
    zero_delays(sandbox.emulator)


__all__ = ["batchai", "node_host", "sandbox", "unique_name"]
