"""The launcher's test world: the emulator's Azure Batch through the unmodified SDKs, as the tool meets it.

A module-scoped `launcher_cluster`: a storage account with a file share (azure-mgmt-storage, azure-storage-file-share)
holding the launcher at `.batchai-spec/launcher.py` (read from the package as the client reads it), a Batch account
(azure-mgmt-batch) and a pool of one node that mounts the share at `$AZ_BATCH_NODE_MOUNTS_DIR/afs`. `world.run`
makes a job and its one task whose command line runs the launcher (`/bin/sh -c 'exec python3 ... job'`) with the
launch description in BATCHAI_SPEC_LAUNCH, waits for it to complete (polling with a deadline) and downloads the
task's stdout.txt and stderr.txt through the data plane (azure-batch 15.1.0). `launcher_pair_world`: the same world
with a second pool, of two nodes with inter-node communication, where `world.start(..., pool=PAIR_POOL)` makes the
job's task a multi-instance task as the tool makes it (numberOfInstances = node_count, the launcher's `worker` as the
coordination command, a task-scoped admin auto-user).

Test modules import the fixtures by name: `from tests.services.batch.launcher_support import launcher_world,
launcher_cluster, batch_context, batch_mgmt  # noqa: F401`; after each test, what it left running is terminated.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from azure.batch import BatchClient, models
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError
from azure.mgmt.batch import BatchManagementClient
from azure.storage.fileshare import ShareClient

from batchai_spec.emulator.batch import tasks_runner  # noqa: F401  (registers the task runner's step)
from batchai_spec.emulator.endpoint import Endpoint
from batchai_spec.emulator.files.store import share_directory
from batchai_spec.emulator.server import RunningEmulator
from tests.emulator.batchai_support import wait_for
from tests.emulator.batch.conftest import BatchShare, batch_context, batch_mgmt, pool_body  # noqa: F401
from tests.emulator_clients import LOCATION, share_service_for, unique_name

T = TypeVar("T")

MOUNT = "afs"
LAUNCHER_PATH = ".batchai-spec/launcher.py"
POOL = "launcher-pool"
PAIR_POOL = "launcher-pair"
LAUNCHER_SOURCE = (importlib.resources.files("batchai_spec.services.batch") / "launcher" / "launcher.py").read_text(
    encoding="utf-8")
MOUNT_ROOT = "$AZ_BATCHAI_MOUNT_ROOT/" + MOUNT
_GPU_DEVICE = re.compile(r"^nvidia[0-9]+$")


def launcher_command(mode: str, mount: str = MOUNT) -> str:
    """The command line the tool gives Batch: a shell only to expand the mounts directory."""
    return "/bin/sh -c " + shlex.quote(f'exec python3 "$AZ_BATCH_NODE_MOUNTS_DIR/{mount}/{LAUNCHER_PATH}" {mode}')


def segment(job: str, kind: str = "experiments/exp/jobs") -> str:
    return f"sub/rg/workspaces/ws/{kind}/{job}/{unique_name('run')}"


def launch_description(tool_type: str, settings: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A version 1 launch description for one node, stdout/err on the share, with `fields` replacing defaults."""
    return {
        "version": 1,
        "tool_type": tool_type,
        "settings": settings,
        "node_count": 1,
        "input_directories": [],
        "output_directories": [],
        "std_out_err_path_prefix": MOUNT_ROOT,
        "output_segment": segment(unique_name("job")),
        "job_preparation": None,
        "secrets_file": None,
        **fields,
    }


def expected_gpus() -> int:
    """What the launcher counts on this machine (the emulator's node is this machine)."""
    try:
        return len([name for name in os.listdir("/dev") if _GPU_DEVICE.match(name)])
    except OSError:
        return 0


def poll(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float = 60.0, what: str = "") -> T:
    """batchai_support.wait_for with the longer default a Batch task's start needs."""
    return wait_for(read, done, timeout_s, what=what)


@dataclass
class Run:
    job_id: str
    task_id: str
    task: models.BatchTask
    stdout: str
    stderr: str

    @property
    def exit_code(self) -> int | None:
        return self.task.execution_info.exit_code


@dataclass
class LauncherWorld:
    emulator: RunningEmulator
    mgmt: BatchManagementClient
    resource_group: str
    account: str
    client: BatchClient
    share: BatchShare
    share_client: ShareClient
    node_root: Path
    jobs: list[str] = field(default_factory=list)
    pair_roots: list[Path] = field(default_factory=list)  # the pair pool's nodes, once made

    # ------------------------------------------------------------------------------------------- the share

    def upload(self, path: str, data: str | bytes) -> None:
        """A file on the share through the Files API (its directories made first)."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            directory = self.share_client.get_directory_client("/".join(parts[:depth]))
            if not directory.exists():
                directory.create_directory()
        self.share_client.get_file_client(path).upload_file(data.encode() if isinstance(data, str) else data)

    def download(self, path: str) -> str:
        """A file of the share through the Files API."""
        return self.share_client.get_file_client(path).download_file().readall().decode()

    def share_path(self, path: str) -> Path:
        return self.share.directory / path

    @property
    def mounts_dir(self) -> Path:
        return self.node_root / "fsmounts"

    # ------------------------------------------------------------------------------------------- jobs

    def start(self, launch: dict[str, Any] | None, *, env: dict[str, str] | None = None, mode: str = "job",
              raw_launch: str | None = None, pool: str = POOL) -> tuple[str, str]:
        """A job with one task running the launcher; (job id, task id). `raw_launch` replaces the JSON text. On
        PAIR_POOL the task is a multi-instance task over its two nodes."""
        job_id = unique_name("job")
        self.client.create_job(models.BatchJobCreateOptions(id=job_id, pool_info=models.BatchPoolInfo(pool_id=pool)))
        self.jobs.append(job_id)
        settings = dict(env or {})
        if raw_launch is not None:
            settings["BATCHAI_SPEC_LAUNCH"] = raw_launch
        elif launch is not None:
            settings["BATCHAI_SPEC_LAUNCH"] = json.dumps(launch)
        multi: dict[str, Any] = {}
        if pool == PAIR_POOL:
            multi = {"multi_instance_settings": models.MultiInstanceSettings(
                number_of_instances=2, coordination_command_line=launcher_command("worker")),
                "user_identity": models.UserIdentity(auto_user=models.AutoUserSpecification(
                    scope="task", elevation_level="admin"))}
        self.client.create_task(job_id, models.BatchTaskCreateOptions(
            id="task", command_line=launcher_command(mode),
            environment_settings=[models.EnvironmentSetting(name=name, value=value)
                                  for name, value in settings.items()],
            **multi,
        ))
        return job_id, "task"

    def wait(self, job_id: str, task_id: str = "task", timeout_s: float = 60.0) -> Run:
        task = poll(lambda: self.client.get_task(job_id, task_id), lambda found: found.state == "completed",
                    timeout_s, what=f"task {job_id}/{task_id} to complete")
        return Run(job_id, task_id, task, self.task_file(job_id, task_id, "stdout.txt"),
                   self.task_file(job_id, task_id, "stderr.txt"))

    def run(self, launch: dict[str, Any] | None, *, timeout_s: float = 60.0, **options: Any) -> Run:
        return self.wait(*self.start(launch, **options), timeout_s=timeout_s)

    def task_file(self, job_id: str, task_id: str, name: str) -> str:
        return b"".join(self.client.download_task_file(job_id, task_id, name)).decode()

    def task_file_so_far(self, job_id: str, task_id: str, name: str) -> str:
        """A task file while the task may not have started yet (Batch answers 409 until its node has it): "" then."""
        try:
            return self.task_file(job_id, task_id, name)
        except HttpResponseError as error:
            if error.status_code in (404, 409):
                return ""
            raise

    def task_dir(self, job_id: str, task_id: str = "task") -> Path:
        return self.node_root / "workitems" / job_id / "job-1" / task_id

    def add_pair_pool(self) -> None:
        """PAIR_POOL: two nodes that mount the share and talk to each other (once per world)."""
        if self.pair_roots:
            return
        self.mgmt.pool.create(self.resource_group, self.account, PAIR_POOL, pool_body(
            dedicated=2, interNodeCommunication="Enabled", mountConfiguration=[self.share.mount(MOUNT)]))
        found = poll(lambda: list(self.client.list_nodes(PAIR_POOL)),
                     lambda nodes: len(nodes) == 2 and all(node.state == "idle" for node in nodes),
                     what="the pair pool's nodes")
        self.pair_roots = [self.node_root.parent.parent / PAIR_POOL / node.id
                           for node in sorted(found, key=lambda node: node.ip_address)]

    def stop_unfinished(self) -> None:
        """Terminate what a test left running (a failed test must not hold the pool's one node for the next)."""
        for job_id in self.jobs:
            for task in self.client.list_tasks(job_id):
                if task.state != "completed":
                    self.client.terminate_task(job_id, task.id)
        self.jobs.clear()


@pytest.fixture
def launcher_world(launcher_cluster: LauncherWorld) -> Iterator[LauncherWorld]:
    """The module's world for one test, which leaves no task running behind it."""
    yield launcher_cluster
    launcher_cluster.stop_unfinished()


@pytest.fixture
def launcher_pair_world(launcher_cluster: LauncherWorld) -> Iterator[LauncherWorld]:
    """The module's world with its two-node pool (PAIR_POOL), for one test."""
    launcher_cluster.add_pair_pool()
    yield launcher_cluster
    launcher_cluster.stop_unfinished()


@pytest.fixture(scope="module")
def launcher_cluster(emulator: RunningEmulator, endpoint: Endpoint, batch_context, batch_mgmt: BatchManagementClient,
                   resource_client, make_storage_account) -> LauncherWorld:
    storage = make_storage_account()
    share_name = unique_name("share")
    service = share_service_for(endpoint, storage.name, storage.keys[0])
    share_client = service.create_share(share_name)
    share = BatchShare(storage.name, storage.keys[0], share_name,
                       share_directory(emulator.state, storage.name, share_name))

    group, account = unique_name("rg"), unique_name("batch")
    resource_client.resource_groups.create_or_update(group, {"location": LOCATION})
    batch_mgmt.batch_account.begin_create(group, account, {"location": LOCATION}).result()
    keys = batch_mgmt.batch_account.get_keys(group, account)
    client = BatchClient(endpoint.batch_endpoint(account), AzureNamedKeyCredential(account, keys.primary),
                         connection_verify=endpoint.ca_cert, retry_total=0)
    world = LauncherWorld(emulator, batch_mgmt, group, account, client, share, share_client, Path())
    world.upload(LAUNCHER_PATH, LAUNCHER_SOURCE)

    batch_mgmt.pool.create(group, account, POOL, pool_body(dedicated=1, mountConfiguration=[share.mount(MOUNT)]))
    [node] = poll(lambda: list(client.list_nodes(POOL)),
                  lambda found: len(found) == 1 and found[0].state == "idle", what="the pool's node")
    world.node_root = emulator.state.root / "batch" / account / POOL / node.id
    assert (world.node_root / "fsmounts" / MOUNT).resolve() == share.directory.resolve()
    return world
