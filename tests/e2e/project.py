"""A small training project in a temporary directory, and the CLI run on it as a user runs it: a subprocess
`python -m batchai_spec ... --state-dir DIR` against the emulator the test serves on DIR.

The project is realised on one service, `Project.service` (the `service` fixture: `batchai` unless a test is
parametrised over `SERVICES`, as `BOTH_SERVICES` does): on `batch` its spec says `service: batch`, so that every
command reaches Azure Batch and the commands its hints print carry no `--service`. The checks that read the emulator
directly (`job()`, `cluster()`, ...) read the chosen service through its own SDKs: azure-mgmt-batchai for Batch AI,
azure-mgmt-batch and azure-batch for Azure Batch, the latter seen through `BatchJob`/`BatchPool`, which answer the
attributes the tests read from Batch AI's models.

Every run is checked for what must never be in an output: a traceback, or one of the spec's secrets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.batch import BatchManagementClient
from azure.mgmt.batchai import BatchAI
from azure.mgmt.batchai import models as batchai_models
from azure.storage.fileshare import ShareClient

from batchai_spec.emulator.admin_client import AdminClient
from batchai_spec.engine.waits import Backoff
from batchai_spec.emulator.server import RunningEmulator
from tests.emulator_clients import (
    StaticTokenCredential,
    arm_clients_options,
    resource_client_for,
    share_service_for,
    storage_client_for,
)

REPOSITORY = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 180

# Values the spec takes from the environment; none may ever appear in an output, a plan or a log.
SECRETS = {
    "E2E_ADMIN_PASSWORD": "Adm1n-pw-7f3c9e2d",
    "E2E_JOB_SECRET": "job-secret-4b8d21aa",
    "E2E_REGISTRY_PASSWORD": "reg-pw-9a6e05c3",
}

# The workspace's name is a valid Batch account name too (3-24 lowercase letters and digits).
RESOURCE_GROUP, ACCOUNT, SHARE, WORKSPACE, CLUSTER, EXPERIMENT, JOB = (
    "e2e-rg", "e2estore", "e2eshare", "e2ews", "gpu", "exp", "train"
)
JOB_NAME = f"{EXPERIMENT}/{JOB}"

SERVICES = ("batchai", "batch")
# A test (or a module's `pytestmark`) run on both services: it overrides the `service` fixture (conftest.py).
BOTH_SERVICES = pytest.mark.parametrize("service", SERVICES)
# The resources an apply from nothing adds: Azure Batch adds the launcher's directories and file to the share.
RESOURCES = {"batchai": 11, "batch": 14}
# The error code of a run that exited with a failure, in the service's own words: Batch AI's job error, Batch's task
# failure.
FAILED = {"batchai": "JobFailed", "batch": "FailureExitCode"}
# The Batch job's one task (services/batch/bodies.TASK_ID) and its id of the spec's job (bodies.job_id), as the
# service lists them: the tests read them through the SDK as anyone would.
BATCH_TASK = "run"

SPEC = """\
version: 1
name: e2e
resource_group:
  name: e2e-rg
  location: westeurope
storage:
  account:
    name: e2estore
  file_shares:
    - name: e2eshare
      quota_gb: 1
      uploads:
        - source: ../training/train.py
          destination: sample/train.py
        - source: ../data/*.txt
          destination: sample/
workspace:
  name: e2ews
clusters:
  - name: gpu
    vm_size: "{{ vars.vm_size | default('STANDARD_NC6') }}"
    scale:
      manual: {target_node_count: {{ vars.nodes | default(1) }}}
    user_account:
      admin_user_name: trainer
      admin_user_password: "{{ env.E2E_ADMIN_PASSWORD }}"
    node_setup:
      mount_volumes:
        azure_file_shares:
          - share: e2eshare
            relative_mount_path: afs
{%- if vars.setup_gate is defined or vars.setup is defined %}
      setup_task:
{%- if vars.setup_gate is defined %}
        command_line: "for wait in $(seq 1200); do [ -e {{ vars.setup_gate }} ] && exit 0; sleep 0.1; done; exit 1"
{%- elif vars.setup == 'fail' %}
        command_line: "echo the setup failed on purpose >&2; exit 7"
{%- elif vars.setup == 'secret' %}
        command_line: 'test -n "$E2E_SETUP_SECRET" && echo received > $AZ_BATCHAI_MOUNT_ROOT/afs/setup-secret.txt'
        secrets:
          E2E_SETUP_SECRET: "{{ env.E2E_ADMIN_PASSWORD }}"
{%- else %}
        command_line: "echo setup {{ vars.setup }}"
{%- endif %}
        std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/afs
{%- endif %}
experiments:
  - name: exp
    jobs:
      - name: train
        cluster: gpu
        node_count: 1
        container:
          image: example.azurecr.io/e2e/train:1
          registry:
            server_url: example.azurecr.io
            username: e2e
            password: "{{ env.E2E_REGISTRY_PASSWORD }}"
        input_directories:
          SAMPLE: $AZ_BATCHAI_MOUNT_ROOT/afs/sample
        output_directories:
          - id: MODEL
            path_prefix: $AZ_BATCHAI_MOUNT_ROOT/afs
            path_suffix: Models
        std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/afs
        environment_variables:
          E2E_EXIT_CODE: "{{ vars.exit_code | default(0) }}"
          E2E_GATE: "{{ vars.job_gate | default('') }}"
        secrets:
          E2E_JOB_SECRET: "{{ env.E2E_JOB_SECRET }}"
        cntk:
          python_script_file_path: $AZ_BATCHAI_INPUT_SAMPLE/train.py
          command_line_args: $AZ_BATCHAI_INPUT_SAMPLE $AZ_BATCHAI_OUTPUT_MODEL
"""

# Stands in for the ConvNet: what matters here is what a job does to its share and its logs, not the training.
TRAIN_SCRIPT = """\
import os
import sys
import time

input_dir, model_dir = sys.argv[1], sys.argv[2]
gate = os.environ.get("E2E_GATE")
deadline = time.time() + 120  # a gate left shut by a test that was killed does not keep the job forever
while gate and not os.path.exists(gate) and time.time() < deadline:
    time.sleep(0.05)
for name in sorted(os.listdir(input_dir)):
    print("input:", name)
print("job secret received:", bool(os.environ.get("E2E_JOB_SECRET")))
os.makedirs(model_dir, exist_ok=True)
for epoch in range(3):
    print("Finished Epoch[%d of 3]: loss = %.3f" % (epoch + 1, 1.0 / (epoch + 1)), flush=True)
    with open(os.path.join(model_dir, "model_%d.dnn" % epoch), "wb") as model:
        model.write(("weights of epoch %d\\n" % epoch).encode() * 8)
print("stand-in: no real training here", file=sys.stderr)
sys.exit(int(os.environ.get("E2E_EXIT_CODE") or 0))
"""

DATA = {"train.txt": b"|labels 0 1 |features 0 0 255\n" * 20, "test.txt": b"|labels 1 0 |features 255 0 0\n" * 5}


def model_bytes(epoch: int) -> bytes:
    """What the stand-in writes as the model of an epoch."""
    return f"weights of epoch {epoch}\n".encode() * 8


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def events(self) -> list[dict[str, Any]]:
        """The JSON-lines events of a `--json` run; every line of stdout must be one."""
        return [json.loads(line) for line in self.stdout.splitlines()]

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events() if event["event"] == kind]

    def plan(self) -> dict[str, Any]:
        """The plan event of a `--json` apply."""
        (event,) = self.events_of("plan")
        return event["plan"]

    def __str__(self) -> str:
        return f"$ {' '.join(self.argv)}\n-> {self.returncode}\n{self.stdout}\n{self.stderr}"


def changes(plan: dict[str, Any]) -> dict[str, str]:
    """address -> action of a JSON plan, no-ops left out."""
    return {change["address"]: change["action"] for change in plan["changes"] if change["action"] != "no-op"}


def spec_for(service: str, text: str = SPEC) -> str:
    """A spec text that names its service (Batch AI, the default, is left unnamed)."""
    return text if service == "batchai" else text.replace("name: e2e\n", f"name: e2e\nservice: {service}\n", 1)


@dataclass(repr=False)
class Project:
    root: Path
    emulator: RunningEmulator
    service: str = "batchai"
    runs: list[Run] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Project({self.root}, {self.service})"

    def __post_init__(self) -> None:
        (self.root / "specs").mkdir(parents=True)
        (self.root / "training").mkdir()
        (self.root / "data").mkdir()
        (self.root / "pyproject.toml").write_text("[project]\nname = 'e2e-training'\n")
        self.spec.write_text(spec_for(self.service))
        (self.root / "training" / "train.py").write_text(TRAIN_SCRIPT)
        for name, content in DATA.items():
            (self.root / "data" / name).write_bytes(content)
        self.gates: list[Path] = []

    @property
    def spec(self) -> Path:
        return self.root / "specs" / "train.yaml"

    @property
    def state_dir(self) -> Path:
        return Path(self.emulator.endpoint.state_dir)

    def gate(self, name: str) -> Path:
        """A file a gated setup task or job waits for (two minutes at most); every gate opens when the test ends."""
        path = self.root / f"{name}.open"
        self.gates.append(path)
        return path

    def open_gates(self) -> None:
        for gate in self.gates:
            gate.touch()

    # -- the CLI ------------------------------------------------------------------------------------------------

    def argv(self, command: str, *args: str | Path, target: Path | None = None, options: tuple[str, ...] = ()) -> list[str]:
        """`options` go before the command (--no-color, --debug)."""
        return [
            sys.executable, "-m", "batchai_spec", *options, command, str(target or self.spec),
            *map(str, args), "--state-dir", str(self.state_dir),
        ]

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        environment = {key: value for key, value in os.environ.items() if not key.startswith(("NO_COLOR", "FORCE_COLOR", "BATCHAI_SPEC_SERVICE"))}
        environment.update(SECRETS)
        environment.update({"BATCHAI_EMULATOR_DELAY_SCALE": "0", "PYTHONPATH": str(REPOSITORY), "COLUMNS": "200"})
        environment.update(extra or {})
        return environment

    def cli(
        self,
        command: str,
        *args: str | Path,
        expect: int | None = 0,
        target: Path | None = None,
        env: dict[str, str] | None = None,
        options: tuple[str, ...] = (),
        cwd: Path = REPOSITORY,
    ) -> Run:
        argv = self.argv(command, *args, target=target, options=options)
        completed = subprocess.run(
            argv, cwd=cwd, env=self.environment(env), capture_output=True, text=True, timeout=CLI_TIMEOUT_S
        )
        run = self._checked(Run(argv[2:], completed.returncode, completed.stdout, completed.stderr))
        if expect is not None:
            assert run.returncode == expect, str(run)
        return run

    def start(self, command: str, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        """A CLI run in the background, its stdout read line by line by the test."""
        return subprocess.Popen(
            self.argv(command, *args), cwd=REPOSITORY, env=self.environment(env), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def finish(self, process: subprocess.Popen, stdout_read: str = "", *, expect: int | None = 0) -> Run:
        rest, stderr = process.communicate(timeout=CLI_TIMEOUT_S)
        run = self._checked(Run(list(process.args)[2:], process.returncode, stdout_read + rest, stderr))
        if expect is not None:
            assert run.returncode == expect, str(run)
        return run

    def kill(self, process: subprocess.Popen, stdout_read: str) -> Run:
        process.send_signal(signal.SIGKILL)
        return self.finish(process, stdout_read, expect=-signal.SIGKILL)

    def _checked(self, run: Run) -> Run:
        self.runs.append(run)
        assert "Traceback" not in run.output, str(run)
        for secret in SECRETS.values():
            assert secret not in run.output, f"a secret is shown by {run.argv}"
        return run

    # -- the live state, read with the SDKs ---------------------------------------------------------------------

    @cached_property
    def admin(self) -> AdminClient:
        return AdminClient(self.emulator.endpoint)

    @cached_property
    def resource_client(self):
        return resource_client_for(self.emulator.endpoint)

    @cached_property
    def storage_client(self):
        return storage_client_for(self.emulator.endpoint)

    @cached_property
    def batchai(self) -> BatchAI:
        endpoint = self.emulator.endpoint
        return BatchAI(StaticTokenCredential(endpoint.token), endpoint.subscription_id, **arm_clients_options(endpoint))

    @cached_property
    def batch_mgmt(self) -> BatchManagementClient:
        endpoint = self.emulator.endpoint
        return BatchManagementClient(StaticTokenCredential(endpoint.token), endpoint.subscription_id, **arm_clients_options(endpoint))

    @property
    def batch(self) -> BatchClient:
        """The data plane of the spec's Batch account, with its key of now (a destroyed and re-made account has new
        keys); no retries, so that a check sees every answer."""
        endpoint = self.emulator.endpoint
        key = self.batch_mgmt.batch_account.get_keys(RESOURCE_GROUP, WORKSPACE).primary
        return BatchClient(endpoint.batch_endpoint(WORKSPACE), AzureNamedKeyCredential(WORKSPACE, key),
                           connection_verify=endpoint.ca_cert, retry_total=0)

    def share(self, account: str = ACCOUNT, share: str = SHARE) -> ShareClient:
        key = self.storage_client.storage_accounts.list_keys(RESOURCE_GROUP, account).keys[0].value
        return share_service_for(self.emulator.endpoint, account, key).get_share_client(share)

    def share_file(self, path: str) -> bytes:
        return self.share().get_file_client(path).download_file().readall()

    def _batch_jobs(self, client: BatchClient | None = None) -> list[BatchJob]:
        """The spec's jobs in the Batch account: those whose metadata names them (a job made by hand has none)."""
        client = client or self.batch
        found = []
        for job in client.list_jobs():
            metadata = {item.name: item.value for item in job.metadata or ()}
            if "batchaispec_job" in metadata:
                try:
                    task = client.get_task(job.id, BATCH_TASK)
                except ResourceNotFoundError:
                    task = None
                found.append(BatchJob(job, task, metadata, self.emulator.endpoint.subscription_id))
        return found

    def jobs(self) -> list[Any]:
        if self.service == "batch":
            return self._batch_jobs()
        return list(self.batchai.jobs.list_by_experiment(RESOURCE_GROUP, WORKSPACE, EXPERIMENT))

    def job(self) -> Any:
        """The spec's job: Batch AI's model, or a `BatchJob` that answers the same attributes."""
        if self.service == "batch":
            found = [job for job in self._batch_jobs() if (job.experiment, job.name) == (EXPERIMENT, JOB)]
            if not found:
                raise ResourceNotFoundError(f"no Batch job of {JOB_NAME}")
            (job,) = found
            return job
        return self.batchai.jobs.get(RESOURCE_GROUP, WORKSPACE, EXPERIMENT, JOB)

    def delete_job(self) -> None:
        """The spec's job deleted behind the tool's back."""
        if self.service == "batch":
            batch = self.batch
            batch.begin_delete_job(self.job().id, polling_interval=0.05).result()
        else:
            self.batchai.jobs.begin_delete(RESOURCE_GROUP, WORKSPACE, EXPERIMENT, JOB).result()

    def wait_for_job(self, timeout_s: float = 60, states: tuple[str, ...] = ("succeeded", "failed")) -> Any:
        """The job once it is in one of `states`: by default, once it has ended (a killed CLI leaves it running)."""
        deadline = time.monotonic() + timeout_s
        backoff = Backoff(first=0.05, most=1.0)
        while (job := self.job()).execution_state not in states:
            assert time.monotonic() < deadline, f"the job is still {job.execution_state}"
            backoff.wait()
        return job

    def assert_converged(self, *plan_options: str) -> None:
        """Nothing left to do, one run of the job (succeeded), every upload byte-identical to its source."""
        self.cli("plan", "--detailed-exitcode", *plan_options)
        assert [job.name for job in self.jobs()] == [JOB]
        assert len(self.job_runs()) == 1
        assert self.job().execution_state == "succeeded"
        for name, content in DATA.items():
            assert self.share_file(f"sample/{name}") == content
        assert self.share_file("sample/train.py") == (self.root / "training" / "train.py").read_bytes()

    def cluster(self, name: str = CLUSTER) -> Any:
        """The cluster: Batch AI's model, or a `BatchPool` that answers the same attributes."""
        if self.service == "batch":
            return BatchPool(self.batch_mgmt.pool.get(RESOURCE_GROUP, WORKSPACE, name))
        return self.batchai.clusters.get(RESOURCE_GROUP, WORKSPACE, name)

    def cluster_nodes(self, name: str = CLUSTER) -> tuple[int, int]:
        """(the nodes asked for, the nodes there) of a manually scaled cluster."""
        cluster = self.cluster(name)
        if self.service == "batch":
            return cluster.target_node_count, cluster.current_node_count
        return cluster.scale_settings.manual.target_node_count, cluster.current_node_count

    def foreign_cluster(self, name: str) -> None:
        """A cluster of nobody's spec in the spec's workspace (someone else's, made with the SDK), with no nodes."""
        if self.service == "batch":
            body = {"properties": {
                "vmSize": "STANDARD_NC6",
                "deploymentConfiguration": {"virtualMachineConfiguration": {
                    "imageReference": {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204", "version": "latest"},
                    "nodeAgentSkuId": "batch.node.ubuntu 22.04",
                }},
                "scaleSettings": {"fixedScale": {"targetDedicatedNodes": 0}},
            }}
            self.batch_mgmt.pool.create(RESOURCE_GROUP, WORKSPACE, name, body)
            return
        parameters = batchai_models.ClusterCreateParameters(
            vm_size="STANDARD_NC6",
            scale_settings=batchai_models.ScaleSettings(manual=batchai_models.ManualScaleSettings(target_node_count=0)),
            user_account_settings=batchai_models.UserAccountSettings(admin_user_name="other", admin_user_password="x-Pw-1"),
        )
        self.batchai.clusters.begin_create(RESOURCE_GROUP, WORKSPACE, name, parameters).result()

    def workspaces(self) -> list[str]:
        """The names of the workspaces (Batch accounts) in the spec's resource group."""
        if self.service == "batch":
            return [account.name for account in self.batch_mgmt.batch_account.list_by_resource_group(RESOURCE_GROUP)]
        return [workspace.name for workspace in self.batchai.workspaces.list_by_resource_group(RESOURCE_GROUP)]

    def workspace_tags(self) -> dict[str, str]:
        if self.service == "batch":
            return dict(self.batch_mgmt.batch_account.get(RESOURCE_GROUP, WORKSPACE).tags or {})
        return dict(self.batchai.workspaces.get(RESOURCE_GROUP, WORKSPACE).tags or {})

    def job_runs(self) -> list[str]:
        """The output directories (one per run, named by its uuid) the job's runs left on the share."""
        segment = self.job().job_output_directory_path_segment
        parent = segment.rsplit("/", 1)[0]
        return sorted(item["name"] for item in self.share().get_directory_client(parent).list_directories_and_files())

    def state_files(self) -> Iterator[Path]:
        """Every file of the emulator's state dir except its SQLite database (which may hold what it must)."""
        for path in self.state_dir.rglob("*"):
            if path.is_file() and not path.name.startswith("state.sqlite3"):
                yield path


@dataclass
class BatchJob:
    """A Batch job of the spec and its task, answering what the tests read of a Batch AI job: its name, its
    execution state (Batch AI's words), its run's output directory segment (the run's uuid is in the job's
    metadata), its exit code, start and errors."""

    job: Any  # azure.batch.models.BatchJob
    task: Any  # its task, None before it is made
    metadata: dict[str, str]
    subscription_id: str

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def name(self) -> str:
        return self.metadata["batchaispec_job"]

    @property
    def experiment(self) -> str:
        return self.metadata["batchaispec_experiment"]

    @property
    def execution_state(self) -> str:
        """In Batch AI's words, as the adapter reads it (the tests check what the tool does with it)."""
        from batchai_spec.services.batch.watch import run_state

        return run_state(self.job, self.task)

    @property
    def job_output_directory_path_segment(self) -> str:
        return (
            f"{self.subscription_id}/{RESOURCE_GROUP}/workspaces/{WORKSPACE}/experiments/{self.experiment}"
            f"/jobs/{self.name}/{self.metadata['batchaispec_run']}"
        )

    @property
    def execution_info(self) -> SimpleNamespace:
        info = self.task.execution_info if self.task is not None else None
        errors = []
        if info is not None and info.failure_info is not None:
            errors.append(SimpleNamespace(code=info.failure_info.code, message=info.failure_info.message))
        if self.job.execution_info is not None and self.job.execution_info.termination_reason == "UserTerminate":
            errors.append(SimpleNamespace(code="JobTerminated", message="terminated by the user"))
        return SimpleNamespace(
            exit_code=info.exit_code if info is not None else None,
            start_time=(info.start_time if info is not None else None) or (self.job.execution_info.start_time if self.job.execution_info else None),
            end_time=info.end_time if info is not None else None,
            errors=errors,
        )


@dataclass
class BatchPool:
    """A pool as ARM answers it (azure-mgmt-batch), answering what the tests read of a Batch AI cluster."""

    pool: Any

    @property
    def name(self) -> str:
        return self.pool.name

    @property
    def properties(self) -> Any:
        return self.pool.properties

    @property
    def vm_size(self) -> str:
        return self.properties.vm_size

    @property
    def creation_time(self):
        return self.properties.creation_time

    @property
    def current_node_count(self) -> int:
        return (self.properties.current_dedicated_nodes or 0) + (self.properties.current_low_priority_nodes or 0)

    @property
    def target_node_count(self) -> int:
        fixed = self.properties.scale_settings.fixed_scale
        return (fixed.target_dedicated_nodes or 0) + (fixed.target_low_priority_nodes or 0)


def read_until(process: subprocess.Popen, predicate, limit: int = 10_000) -> tuple[str, dict[str, Any] | None]:
    """Read `--json` lines from a running CLI until one satisfies `predicate`; (text read, that event)."""
    read = []
    for _ in range(limit):
        line = process.stdout.readline()
        if not line:
            return "".join(read), None
        read.append(line)
        event = json.loads(line)
        if predicate(event):
            return "".join(read), event
    return "".join(read), None
