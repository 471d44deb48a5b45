#!/usr/bin/env python3
"""Azure Batch quickstart: storage, a Batch account, a pool of 2 nodes with an Azure Files mount, a task read while
it runs, a multi-instance task, a scale-down and the cleanup, through the official Azure SDKs only.

The same code runs against Azure and against the batchai-spec emulator; only where the endpoints and credentials
come from differs:

  --endpoint-file PATH   the emulator: ARM, Files and Batch URLs, its CA certificate (TLS is verified with it), its
                         bearer token and subscription, all read from the emulator's endpoint.json.
                         (Start one with `batchai-spec emulator serve --state-dir DIR`: DIR/endpoint.json.)
  --azure                real Azure: DefaultAzureCredential (az login, environment, managed identity...),
                         the subscription from AZURE_SUBSCRIPTION_ID (or --subscription), --location (required).
                         The Batch data plane is the account's `accountEndpoint`. Needs the Microsoft.Batch and
                         Microsoft.Storage providers registered, and Batch core quota for 2 nodes of --vm-size.

Steps: (1) resource group, storage account + keys, file share; (2) Batch account + keys, pool of 2 dedicated nodes
(interNodeCommunication Enabled, the share mounted, a start task), waited for until steady with 2 idle nodes;
(3) a job and a task that writes into the mounted share and prints to stdout for a few seconds, stdout.txt read
with ranged GETs while it runs, its exit code, the file checked through the Files API; (4) a multi-instance task
on both nodes and its subtasks; (5) the pool resized to 0 nodes (ARM PATCH), then the Batch account and the
resource group deleted (also on failure, unless --keep).

The Batch data plane is called with SharedKey (AzureNamedKeyCredential with the account's primary key) unless
--data-plane-auth entra (the emulator's token, or DefaultAzureCredential on Azure; on Azure the identity needs a
role on the account such as Contributor or Azure Batch Data Contributor).

Exit status 0 on success; otherwise 1 with one line saying which step failed and why. Keys and tokens are never
printed. Standard library and the Azure SDKs only (azure-mgmt-resource, azure-mgmt-storage, azure-mgmt-batch,
azure-storage-file-share, azure-batch, azure-identity for --azure).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

MOUNT = "afs"  # relativeMountPath of the share: $AZ_BATCH_NODE_MOUNTS_DIR/afs on every node
SHARE = "quickstart"
POOL = "quickstart-pool"
JOB = "quickstart-job"
TASK = "hello"
MULTI_TASK = "pair"
NODES = 2
# An image and node agent Azure Batch accepts today (batch.node.ubuntu 22.04 is supported until 30 June 2027).
IMAGE = {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204", "version": "latest"}
NODE_AGENT = "batch.node.ubuntu 22.04"
# Azure Files on Linux nodes: mode bits so that a non-admin task user may write to the mount.
MOUNT_OPTIONS = "-o vers=3.0,dir_mode=0777,file_mode=0777,sec=ntlmssp"
ARM_SCOPE = "https://management.azure.com/.default"


# ----------------------------------------------------------------------------------------------------------- output

class Console:
    """Prints step lines; every text goes through `redact`, so no registered secret can reach the output."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.step_name = "setup"

    def secret(self, value: str | None) -> str | None:
        if value:
            self.secrets.add(value)
        return value

    def redact(self, text: str) -> str:
        for value in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(value, "***")
        return text

    def say(self, text: str = "") -> None:
        print(self.redact(text), flush=True)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.step_name = name
        started = time.monotonic()
        self.say(f"==> {name}")
        yield
        self.say(f"    done: {name} ({time.monotonic() - started:.1f} s)")


console = Console()


class QuickstartError(Exception):
    """A failure with a message meant for the user."""


def wait_until(what: str, probe: Callable[[], tuple[bool, T, str]], timeout_s: float, *,
               initial_s: float = 0.1, factor: float = 1.5, cap_s: float = 15.0) -> T:
    """Call `probe` (-> done, value, description of where things are) with exponential backoff until done or the
    deadline; prints each new description."""
    deadline = time.monotonic() + timeout_s
    delay, last = initial_s, None
    while True:
        done, value, status = probe()
        if status != last:
            console.say(f"    {what}: {status}")
            last = status
        if done:
            return value
        if time.monotonic() >= deadline:
            raise QuickstartError(f"timed out after {timeout_s:.0f} s waiting for {what} (last seen: {status})")
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * factor, cap_s)


def text(value: Any) -> str:
    """An SDK enum's wire value ("running"), else str(value)."""
    return str(getattr(value, "value", value))


def sh(script: str) -> str:
    """Batch runs a command line without a shell: `/bin/sh -c '...'` gets one (variables, pipes, loops)."""
    return f"/bin/sh -c {shlex.quote(script)}"


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    message = lines[0]
    code = getattr(getattr(error, "error", None), "code", None)
    if code and code not in message:
        message = f"{code}: {message}"
    return message


# ------------------------------------------------------------------------------------------------------ where to go

class StaticTokenCredential:
    """A TokenCredential that returns the emulator's bearer token (the emulator has no identity provider)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)


@dataclass
class Target:
    """Everything that differs between Azure and the emulator."""

    name: str
    subscription_id: str
    location: str
    credential: Any  # TokenCredential for ARM (and for the data plane with --data-plane-auth entra)
    client_options: dict[str, Any] = field(default_factory=dict)  # base_url, connection_verify for every client
    batch_url: str | None = None  # the emulator's data plane: account A at f"{batch_url}/A"; None: accountEndpoint

    def arm_options(self) -> dict[str, Any]:
        return {**self.client_options, "polling_interval": 5}

    def data_options(self) -> dict[str, Any]:
        return {key: value for key, value in self.client_options.items() if key != "base_url"}

    def batch_endpoint(self, account: str, account_endpoint: str) -> str:
        if self.batch_url:
            return f"{self.batch_url.rstrip('/')}/{account}"
        return f"https://{account_endpoint}"


def emulator_target(path: str, location: str) -> Target:
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as error:
        raise QuickstartError(f"cannot read the endpoint file {path}: {error}") from None
    missing = [key for key in ("arm_url", "ca_cert", "token", "subscription_id", "batch_url") if not document.get(key)]
    if missing:
        raise QuickstartError(f"{path} lacks {', '.join(missing)} (an emulator that serves Azure Batch writes them)")
    token = console.secret(document["token"])
    return Target(
        name=f"the emulator at {document['arm_url']}", subscription_id=document["subscription_id"], location=location,
        credential=StaticTokenCredential(token),
        client_options={"base_url": document["arm_url"], "connection_verify": document["ca_cert"]},
        batch_url=document["batch_url"],
    )


def azure_target(subscription: str | None, location: str | None) -> Target:
    subscription = subscription or os.environ.get("AZURE_SUBSCRIPTION_ID")
    if not subscription:
        raise QuickstartError("--azure needs a subscription: set AZURE_SUBSCRIPTION_ID or pass --subscription")
    if not location:
        raise QuickstartError("--azure needs --location (e.g. westeurope)")
    from azure.identity import DefaultAzureCredential

    return Target(name="Azure", subscription_id=subscription, location=location, credential=DefaultAzureCredential())


# --------------------------------------------------------------------------------------------------------- the run

@dataclass
class Names:
    resource_group: str
    storage_account: str
    batch_account: str

    @classmethod
    def choose(cls, args: argparse.Namespace) -> Names:
        """The names given, else new ones: `{prefix}-rg-{suffix}`, `{prefix}sa{suffix}`, `{prefix}ba{suffix}` (storage
        and Batch account names are global on Azure: 3-24 lower-case letters and digits)."""
        suffix = uuid.uuid4().hex[:10]
        prefix = "".join(ch for ch in args.prefix.lower() if ch.isalnum())[:10] or "qs"
        return cls(args.resource_group or f"{prefix}-rg-{suffix}", args.storage_account or f"{prefix}sa{suffix}"[:24],
                   args.batch_account or f"{prefix}ba{suffix}"[:24])


class Quickstart:
    def __init__(self, target: Target, args: argparse.Namespace) -> None:
        from azure.mgmt.batch import BatchManagementClient
        from azure.mgmt.resource.resources import ResourceManagementClient
        from azure.mgmt.storage import StorageManagementClient

        self.target = target
        self.args = args
        self.names = Names.choose(args)
        options = target.arm_options()
        self.resources = ResourceManagementClient(target.credential, target.subscription_id, **options)
        self.storage = StorageManagementClient(target.credential, target.subscription_id, **options)
        self.batch_mgmt = BatchManagementClient(target.credential, target.subscription_id, **options)
        self.group_created = False
        self.account_created = False

    # 1. ----------------------------------------------------------------------------------------------- storage
    def make_storage(self) -> None:
        from azure.storage.fileshare import ShareServiceClient

        names, location = self.names, self.target.location
        with console.step(f"create resource group {names.resource_group} in {location}"):
            self.resources.resource_groups.create_or_update(names.resource_group, {"location": location})
            self.group_created = True
        with console.step(f"create storage account {names.storage_account} and list its keys"):
            account = self.storage.storage_accounts.begin_create(names.resource_group, names.storage_account, {
                "sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": location,
            }).result()
            keys = self.storage.storage_accounts.list_keys(names.resource_group, names.storage_account).keys
            self.storage_key = console.secret(keys[0].value)
            self.file_endpoint = account.primary_endpoints.file.rstrip("/")
            console.say(f"    file endpoint {self.file_endpoint}, {len(keys)} keys (not shown)")
        with console.step(f"create file share {SHARE}"):
            service = ShareServiceClient(self.file_endpoint, credential=self.storage_key, **self.target.data_options())
            self.share = service.create_share(SHARE)

    # 2. ---------------------------------------------------------------------------------------------- the pool
    def make_pool(self) -> None:
        from azure.batch import BatchClient
        from azure.core.credentials import AzureNamedKeyCredential

        names = self.names
        with console.step(f"create Batch account {names.batch_account} and list its keys"):
            account = self.batch_mgmt.batch_account.begin_create(
                names.resource_group, names.batch_account, {"location": self.target.location}).result()
            self.account_created = True
            keys = self.batch_mgmt.batch_account.get_keys(names.resource_group, names.batch_account)
            console.secret(keys.primary)
            console.secret(keys.secondary)
            endpoint = self.target.batch_endpoint(names.batch_account, account.account_endpoint)
            console.say(f"    accountEndpoint {account.account_endpoint}; data plane at {endpoint}")
            if self.args.data_plane_auth == "entra":
                credential = self.target.credential
            else:
                credential = AzureNamedKeyCredential(names.batch_account, keys.primary)
            self.client = BatchClient(endpoint, credential, **self.target.data_options())

        with console.step(f"create pool {POOL}: {NODES} x {self.args.vm_size}, share mounted at "
                          f"$AZ_BATCH_NODE_MOUNTS_DIR/{MOUNT}, a start task"):
            self.batch_mgmt.pool.create(names.resource_group, names.batch_account, POOL, {"properties": {
                "vmSize": self.args.vm_size,
                "deploymentConfiguration": {"virtualMachineConfiguration": {
                    "imageReference": IMAGE, "nodeAgentSkuId": NODE_AGENT}},
                "scaleSettings": {"fixedScale": {"targetDedicatedNodes": NODES, "targetLowPriorityNodes": 0,
                                                 "resizeTimeout": "PT15M"}},
                "interNodeCommunication": "Enabled",
                "taskSlotsPerNode": 1,
                "mountConfiguration": [{"azureFileShareConfiguration": {
                    "accountName": names.storage_account, "azureFileUrl": f"{self.file_endpoint}/{SHARE}",
                    "accountKey": self.storage_key, "relativeMountPath": MOUNT, "mountOptions": MOUNT_OPTIONS,
                }}],
                "startTask": {
                    "commandLine": sh('echo "start task ran on $AZ_BATCH_NODE_ID" > "$AZ_BATCH_NODE_SHARED_DIR/ready"'),
                    "userIdentity": {"autoUser": {"scope": "Pool", "elevationLevel": "NonAdmin"}},
                    "maxTaskRetryCount": 1,
                    "waitForSuccess": True,
                },
            }})

        with console.step(f"wait until pool {POOL} is steady with {NODES} idle nodes"):
            wait_until(f"pool {POOL}", self.pool_ready, self.args.timeout)

    def pool_ready(self) -> tuple[bool, None, str]:
        pool = self.batch_mgmt.pool.get(self.names.resource_group, self.names.batch_account, POOL)
        errors = list(getattr(pool.resize_operation_status, "errors", None) or [])
        if pool.allocation_state == "Steady" and (pool.current_dedicated_nodes or 0) < NODES and errors:
            raise QuickstartError("the pool could not get its nodes: "
                                  + "; ".join(f"{error.code}: {error.message}" for error in errors))
        nodes = list(self.client.list_nodes(POOL))
        broken = [node for node in nodes if node.state in ("starttaskfailed", "unusable")]
        if broken:
            node = broken[0]
            details = [f"{error.code}: {error.message}" for error in node.errors or []]
            failure = getattr(node.start_task_info, "failure_info", None)
            if failure is not None:
                details.append(f"start task {failure.code}: {failure.message}")
            reason = f" ({'; '.join(details)})" if details else ""
            raise QuickstartError(f"node {node.id} is {text(node.state)}{reason}")
        states = ", ".join(sorted(text(node.state) for node in nodes)) or "none yet"
        idle = sum(1 for node in nodes if node.state == "idle")
        status = (f"allocation {text(pool.allocation_state)},"
                  f" {pool.current_dedicated_nodes or 0}/{NODES} dedicated nodes,"
                  f" node states: {states}")
        return pool.allocation_state == "Steady" and idle == NODES, None, status

    # 3. --------------------------------------------------------------------------------------------- the task
    def run_task(self) -> None:
        from azure.batch import models

        client = self.client
        with console.step(f"add job {JOB} on pool {POOL}"):
            client.create_job(models.BatchJobCreateOptions(id=JOB, pool_info=models.BatchPoolInfo(pool_id=POOL)))

        path = f"{TASK}/from-task.txt"
        script = (
            f'mkdir -p "$AZ_BATCH_NODE_MOUNTS_DIR/{MOUNT}/{TASK}" && '
            'echo "written by task $AZ_BATCH_TASK_ID on node $AZ_BATCH_NODE_ID"'
            f' > "$AZ_BATCH_NODE_MOUNTS_DIR/{MOUNT}/{path}"'
            ' && cat "$AZ_BATCH_NODE_SHARED_DIR/ready"'
            f' && for i in $(seq 1 {self.args.task_seconds}); do echo "tick $i of {self.args.task_seconds}"; sleep 1;'
            ' done; echo "bye"'
        )
        with console.step(f"add task {TASK} (writes {MOUNT}/{path}, prints for {self.args.task_seconds} s) and read"
                          " its stdout.txt while it runs"):
            client.create_task(JOB, models.BatchTaskCreateOptions(id=TASK, command_line=sh(script)))
            task = self.follow_stdout(JOB, TASK)
            info = task.execution_info
            result = text(info.result) if info.result else "unknown"
            console.say(f"    task {TASK} completed: exit code {info.exit_code} ({result})")
            if info.exit_code != 0:
                failure = info.failure_info
                reason = f" ({failure.code}: {failure.message})" if failure is not None else ""
                stderr = self.read_file(JOB, TASK, "stderr.txt").decode(errors="replace").strip()
                raise QuickstartError(f"task {TASK} exited with {info.exit_code}{reason}"
                                      + (f"; stderr: {stderr.splitlines()[-1]}" if stderr else ""))

        with console.step(f"check {path} on share {SHARE} through the Files API"):
            content = self.share.get_file_client(path).download_file().readall().decode()
            console.say(f"    {SHARE}/{path}: {content.strip()}")
            if not content.startswith(f"written by task {TASK} on node "):
                raise QuickstartError(f"unexpected content in {SHARE}/{path}: {content!r}")

    def read_file(self, job: str, task: str, name: str) -> bytes:
        return b"".join(self.client.download_task_file(job, task, name))

    def follow_stdout(self, job: str, task_id: str):
        """Tail stdout.txt: HEAD for its length, then a ranged GET (`ocp-range`) of the bytes not read yet, printed
        as they come, until the task completes."""
        from azure.core.exceptions import HttpResponseError

        client, offset, reads = self.client, 0, 0
        deadline = time.monotonic() + self.args.timeout
        delay, last_state = 0.1, None
        while True:
            task = client.get_task(job, task_id)
            state = text(task.state)
            if state != last_state:
                console.say(f"    task {task_id}: {state}")
                last_state = state
            if state in ("running", "completed"):
                try:
                    length = client.get_task_file_properties(job, task_id, "stdout.txt").content_length or 0
                except HttpResponseError as error:  # the file may not exist yet in the first instants
                    if state == "completed":
                        raise
                    length = 0
                    console.say(f"    stdout.txt not readable yet ({first_line(error)})")
                if length > offset:
                    data = b"".join(client.download_task_file(job, task_id, "stdout.txt",
                                                              ocp_range=f"bytes={offset}-{length - 1}"))
                    # Whether the task was still running once these bytes were read.
                    after = state if state == "completed" else text(client.get_task(job, task_id).state)
                    reads += 1
                    console.say(f"    stdout.txt bytes {offset}-{offset + len(data) - 1} (task {after}):")
                    for line in data.decode(errors="replace").splitlines():
                        console.say(f"      | {line}")
                    offset += len(data)
                    delay = 0.1
                if state == "completed":
                    console.say(f"    read stdout.txt in {reads} ranged GETs, {offset} bytes")
                    return task
            if time.monotonic() >= deadline:
                raise QuickstartError(f"timed out after {self.args.timeout:.0f} s waiting for task {task_id}"
                                      f" (state {state})")
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    # 4. --------------------------------------------------------------------------------------- multi-instance
    def run_multi_instance(self) -> None:
        from azure.batch import models

        client = self.client
        with console.step(f"multi-instance task {MULTI_TASK} on {NODES} nodes"):
            client.create_task(JOB, models.BatchTaskCreateOptions(
                id=MULTI_TASK,
                command_line=sh('echo "primary on $AZ_BATCH_NODE_ID: hosts=$AZ_BATCH_HOST_LIST'
                                ' master=$AZ_BATCH_IS_CURRENT_NODE_MASTER"'),
                multi_instance_settings=models.MultiInstanceSettings(
                    number_of_instances=NODES,
                    coordination_command_line=sh('echo "coordination on $AZ_BATCH_NODE_ID'
                                                 ' master=$AZ_BATCH_IS_CURRENT_NODE_MASTER"'),
                ),
            ))

            def completed():
                task = client.get_task(JOB, MULTI_TASK)
                return task.state == "completed", task, text(task.state)

            task = wait_until(f"task {MULTI_TASK}", completed, self.args.timeout, cap_s=5.0)
            info = task.execution_info
            console.say(f"    task {MULTI_TASK} completed: exit code {info.exit_code} ({text(info.result)}),"
                        f" primary on {task.node_info.node_id if task.node_info else '?'}")
            for line in self.read_file(JOB, MULTI_TASK, "stdout.txt").decode(errors="replace").splitlines():
                console.say(f"      | {line}")
            subtasks = list(client.list_subtasks(JOB, MULTI_TASK))
            for subtask in subtasks:
                node = subtask.node_info.node_id if subtask.node_info else "?"
                console.say(f"    subtask {subtask.id} on node {node}: {text(subtask.state)},"
                            f" exit code {subtask.exit_code}")
            if info.exit_code != 0:
                raise QuickstartError(f"multi-instance task {MULTI_TASK} exited with {info.exit_code}")
            if len(subtasks) != NODES - 1 or any(subtask.exit_code != 0 for subtask in subtasks):
                raise QuickstartError(f"expected {NODES - 1} subtask(s) that exited 0, got"
                                      f" {[(s.id, s.state, s.exit_code) for s in subtasks]}")

    # 5. ---------------------------------------------------------------------------------------------- cleanup
    def scale_down(self) -> None:
        names = self.names
        with console.step(f"resize pool {POOL} to 0 nodes (PATCH scaleSettings)"):
            self.batch_mgmt.pool.update(names.resource_group, names.batch_account, POOL, {"properties": {
                "scaleSettings": {"fixedScale": {"targetDedicatedNodes": 0, "targetLowPriorityNodes": 0,
                                                 "nodeDeallocationOption": "TaskCompletion"}}}})

            def empty():
                pool = self.batch_mgmt.pool.get(names.resource_group, names.batch_account, POOL)
                nodes = pool.current_dedicated_nodes or 0
                return (pool.allocation_state == "Steady" and nodes == 0, pool,
                        f"allocation {text(pool.allocation_state)}, {nodes} dedicated nodes")

            wait_until(f"pool {POOL}", empty, self.args.timeout)

    def clean_up(self) -> list[str]:
        """Delete the Batch account, then the resource group; the problems met (cleanup goes on after one)."""
        from azure.core.exceptions import ResourceNotFoundError

        names, problems = self.names, []
        if self.account_created:
            try:
                with console.step(f"delete Batch account {names.batch_account}"):
                    self.batch_mgmt.batch_account.begin_delete(names.resource_group, names.batch_account).result()
                    try:
                        self.batch_mgmt.batch_account.get(names.resource_group, names.batch_account)
                        raise QuickstartError(f"Batch account {names.batch_account} still exists after its deletion")
                    except ResourceNotFoundError:
                        console.say(f"    Batch account {names.batch_account} is gone")
            except Exception as error:  # noqa: BLE001 - reported, and the group still goes
                problems.append(f"deleting Batch account {names.batch_account}: {first_line(error)}")
        if self.group_created:
            try:
                with console.step(f"delete resource group {names.resource_group}"):
                    self.resources.resource_groups.begin_delete(names.resource_group).result()
                    if self.resources.resource_groups.check_existence(names.resource_group):
                        raise QuickstartError(f"resource group {names.resource_group} still exists")
                    console.say(f"    resource group {names.resource_group} is gone")
            except Exception as error:  # noqa: BLE001
                problems.append(f"deleting resource group {names.resource_group}: {first_line(error)}")
        return problems

    def run(self) -> None:
        self.make_storage()
        self.make_pool()
        self.run_task()
        self.run_multi_instance()
        self.scale_down()


# ------------------------------------------------------------------------------------------------------------ main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=("Examples:\n"
                "  python examples/azure_batch_quickstart.py --endpoint-file .batchai-spec/endpoint.json\n"
                "  AZURE_SUBSCRIPTION_ID=... python examples/azure_batch_quickstart.py --azure"
                " --location westeurope\n\n"
                + __doc__.split("\n\n", 1)[1]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--endpoint-file", metavar="PATH",
                       help="run against the emulator described by this endpoint.json (URLs, CA cert, token)")
    where.add_argument("--azure", action="store_true",
                       help="run against real Azure (DefaultAzureCredential, AZURE_SUBSCRIPTION_ID, --location)")
    parser.add_argument("--location", help="Azure region (required with --azure; emulator default: westeurope)")
    parser.add_argument("--subscription", help="subscription id with --azure (default: $AZURE_SUBSCRIPTION_ID)")
    parser.add_argument("--vm-size", default="Standard_D2s_v3", help="pool VM size (default: %(default)s)")
    parser.add_argument("--prefix", default="qs", help="prefix of the names made up (default: %(default)s)")
    parser.add_argument("--resource-group", help="name of the resource group to create (default: made up)")
    parser.add_argument("--storage-account", help="name of the storage account to create (default: made up)")
    parser.add_argument("--batch-account", help="name of the Batch account to create (default: made up)")
    parser.add_argument("--data-plane-auth", choices=("sharedkey", "entra"), default="sharedkey",
                        help="Batch data plane credential: the account key (default) or Microsoft Entra ID")
    parser.add_argument("--task-seconds", type=int, default=4,
                        help="how long the task prints to stdout, one line a second (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="deadline in seconds of each wait (pool, task, resize; default: %(default)s)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the resource group and the Batch account in place (default: delete them)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    quickstart: Quickstart | None = None
    failure: str | None = None
    try:
        if args.azure:
            target = azure_target(args.subscription, args.location)
        else:
            target = emulator_target(args.endpoint_file, args.location or "westeurope")
        console.say(f"Azure Batch quickstart against {target.name}, subscription {target.subscription_id}")
        quickstart = Quickstart(target, args)
        console.say(f"names: resource group {quickstart.names.resource_group}, storage account"
                    f" {quickstart.names.storage_account}, Batch account {quickstart.names.batch_account}")
        quickstart.run()
    except KeyboardInterrupt:
        failure = f"interrupted during step '{console.step_name}'"
    except QuickstartError as error:
        failure = f"step '{console.step_name}' failed: {error}"
    except Exception as error:  # noqa: BLE001 - one clear line, below
        failure = f"step '{console.step_name}' failed: {type(error).__name__}: {first_line(error)}"
    finally:
        problems: list[str] = []
        if quickstart is not None:
            if args.keep:
                console.say(f"--keep: left resource group {quickstart.names.resource_group} and Batch account"
                            f" {quickstart.names.batch_account} in place")
            else:
                problems = quickstart.clean_up()
    if failure is None and problems:
        failure = "cleanup failed: " + "; ".join(problems)
    elif failure is not None and problems:
        failure += " (cleanup also failed: " + "; ".join(problems) + ")"
    if failure is not None:
        print(console.redact(f"error: {failure}"), file=sys.stderr, flush=True)
        return 1
    console.say(f"quickstart succeeded in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
