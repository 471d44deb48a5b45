"""A small training project in a temporary directory, and the CLI run on it as a user runs it: a subprocess
`python -m batchai_spec ... --state-dir DIR` against the emulator the test serves on DIR.

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
from typing import Any, Iterator

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

RESOURCE_GROUP, ACCOUNT, SHARE, WORKSPACE, CLUSTER, EXPERIMENT, JOB = (
    "e2e-rg", "e2estore", "e2eshare", "e2e-ws", "gpu", "exp", "train"
)
JOB_NAME = f"{EXPERIMENT}/{JOB}"

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
  name: e2e-ws
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
{%- if vars.setup_gate is defined %}
      setup_task:
        command_line: "for wait in $(seq 1200); do [ -e {{ vars.setup_gate }} ] && exit 0; sleep 0.1; done; exit 1"
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


@dataclass(repr=False)
class Project:
    root: Path
    emulator: RunningEmulator
    runs: list[Run] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Project({self.root})"

    def __post_init__(self) -> None:
        (self.root / "specs").mkdir(parents=True)
        (self.root / "training").mkdir()
        (self.root / "data").mkdir()
        (self.root / "pyproject.toml").write_text("[project]\nname = 'e2e-training'\n")
        self.spec.write_text(SPEC)
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
        environment = {key: value for key, value in os.environ.items() if not key.startswith(("NO_COLOR", "FORCE_COLOR"))}
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

    def share(self, account: str = ACCOUNT, share: str = SHARE) -> ShareClient:
        key = self.storage_client.storage_accounts.list_keys(RESOURCE_GROUP, account).keys[0].value
        return share_service_for(self.emulator.endpoint, account, key).get_share_client(share)

    def share_file(self, path: str) -> bytes:
        return self.share().get_file_client(path).download_file().readall()

    def jobs(self) -> list[batchai_models.Job]:
        return list(self.batchai.jobs.list_by_experiment(RESOURCE_GROUP, WORKSPACE, EXPERIMENT))

    def job(self) -> batchai_models.Job:
        return self.batchai.jobs.get(RESOURCE_GROUP, WORKSPACE, EXPERIMENT, JOB)

    def wait_for_job(self, timeout_s: float = 60, states: tuple[str, ...] = ("succeeded", "failed")) -> batchai_models.Job:
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

    def cluster(self, name: str = CLUSTER) -> batchai_models.Cluster:
        return self.batchai.clusters.get(RESOURCE_GROUP, WORKSPACE, name)

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
