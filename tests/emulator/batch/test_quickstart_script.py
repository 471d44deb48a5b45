"""examples/azure_batch_quickstart.py, the Azure Batch quickstart, run as a user runs it: its own process, configured
by nothing but the emulator's endpoint.json, the unmodified SDKs all the way (storage, Batch account, pool of 2 nodes
with a share mounted, a task read while it runs, a multi-instance task, scale-down, cleanup).

The emulator is this module's own (`start_in_process` on a fresh state dir, delays 0), so its endpoint.json is the
one the script reads. While the script runs, the test reads the keys it makes through the SDKs, to check that no
secret reaches the script's output."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError

from batchai_spec.emulator.admin_client import AdminClient
from batchai_spec.emulator.batchai.config import DELAY_SCALE_VARIABLE
from batchai_spec.emulator.endpoint import ENDPOINT_FILE, Endpoint
from batchai_spec.emulator.server import RunningEmulator, start_in_process
from tests.emulator.batch.conftest import batch_mgmt_for
from tests.emulator_clients import resource_client_for, storage_client_for, unique_name

REPOSITORY = Path(__file__).resolve().parents[3]
SCRIPT = REPOSITORY / "examples" / "azure_batch_quickstart.py"


@pytest.fixture(scope="module")
def quickstart_emulator(tmp_path_factory) -> Iterator[RunningEmulator]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DELAY_SCALE_VARIABLE, "0")
        with start_in_process(tmp_path_factory.mktemp("quickstart-state")) as running:
            yield running


@dataclass
class Names:
    group: str = field(default_factory=lambda: unique_name("rg"))
    storage: str = field(default_factory=lambda: unique_name("sa"))
    batch: str = field(default_factory=lambda: unique_name("ba"))

    def arguments(self) -> list[str]:
        return ["--resource-group", self.group, "--storage-account", self.storage, "--batch-account", self.batch]


class KeyWatcher:
    """Reads, through the SDKs, the keys of the accounts the script makes, while it runs (they are gone after)."""

    def __init__(self, endpoint: Endpoint, names: Names):
        self.names = names
        self.storage = storage_client_for(endpoint, retry_total=0)
        self.batch = batch_mgmt_for(endpoint, retry_total=0)
        self.storage_keys: list[str] = []
        self.batch_keys: list[str] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.is_set() and not (self.storage_keys and self.batch_keys):
            if not self.storage_keys:
                try:
                    keys = self.storage.storage_accounts.list_keys(self.names.group, self.names.storage).keys
                    self.storage_keys = [key.value for key in keys]
                except Exception:  # noqa: BLE001 - not made yet
                    pass
            if not self.batch_keys:
                try:
                    keys = self.batch.batch_account.get_keys(self.names.group, self.names.batch)
                    self.batch_keys = [keys.primary, keys.secondary]
                except Exception:  # noqa: BLE001
                    pass
            time.sleep(0.02)

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=10)


def run_script(endpoint_file: Path, *arguments: str, timeout: float = 60) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--endpoint-file", str(endpoint_file), *arguments],
        cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=timeout,
    )


def test_the_script_uses_the_sdks_only():
    tree = ast.parse(SCRIPT.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name for name in imported if name.split(".")[0] in ("batchai_spec", "tests")}
    assert {name.split(".")[0] for name in imported} <= set(sys.stdlib_module_names) | {"azure"}


def test_quickstart_against_the_emulator(quickstart_emulator: RunningEmulator):
    endpoint = quickstart_emulator.endpoint
    endpoint_file = Path(endpoint.state_dir) / ENDPOINT_FILE
    names = Names()
    watcher = KeyWatcher(endpoint, names)
    try:
        result = run_script(endpoint_file, *names.arguments(), "--task-seconds", "3")
    finally:
        watcher.stop()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert result.stderr == ""

    # The task's stdout read with ranged GETs while it ran: at least two reads, each after the last.
    reads = [(int(first), int(last), state) for first, last, state in
             re.findall(r"stdout\.txt bytes (\d+)-(\d+) \(task (\w+)\)", result.stdout)]
    running = [(first, last) for first, last, state in reads if state == "running"]
    assert len(running) >= 2, result.stdout
    assert all(later[0] == earlier[1] + 1 for earlier, later in zip(running, running[1:])), reads
    assert "| tick 1 of 3" in result.stdout and "| bye" in result.stdout
    assert "| start task ran on tvmps_" in result.stdout
    assert "task hello completed: exit code 0 (success)" in result.stdout
    assert re.search(r"quickstart/hello/from-task\.txt: written by task hello on node tvmps_\w+", result.stdout)

    # The multi-instance task: the primary's host list and the subtask on the other node.
    assert "task pair completed: exit code 0 (success)" in result.stdout
    assert re.search(r"primary on tvmps_\w+: hosts=127\.10\.0\.\d+,127\.10\.0\.\d+ master=true", result.stdout)
    assert re.search(r"subtask 1 on node tvmps_\w+: completed, exit code 0", result.stdout)

    # Scale-down and cleanup.
    assert "pool quickstart-pool: allocation Steady, 0 dedicated nodes" in result.stdout
    assert f"Batch account {names.batch} is gone" in result.stdout
    assert f"resource group {names.group} is gone" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("quickstart succeeded in ")
    # A duration on every step's line.
    assert all(re.search(r" \(\d+\.\d s\)$", line) for line in result.stdout.splitlines() if "done: " in line)
    with pytest.raises(ResourceNotFoundError):
        batch_mgmt_for(endpoint, retry_total=0).batch_account.get(names.group, names.batch)
    assert not resource_client_for(endpoint).resource_groups.check_existence(names.group)

    # No secret in the output: the token, the storage keys, the Batch keys (read through the SDKs above).
    assert len(watcher.storage_keys) == 2 and len(watcher.batch_keys) == 2
    for secret in [endpoint.token, *watcher.storage_keys, *watcher.batch_keys]:
        assert secret and secret not in output


def test_a_failure_is_one_line_and_still_cleans_up(quickstart_emulator: RunningEmulator):
    endpoint = quickstart_emulator.endpoint
    admin = AdminClient(endpoint)
    names = Names()
    # The job cannot be added (the data plane refuses it once): the script stops there and deletes what it made.
    admin.add_fault(r"/jobs$", "status", method="POST", service="batch", status=409, code="JobExists",
                    message="The specified job already exists.", count=1)
    try:
        result = run_script(Path(endpoint.state_dir) / ENDPOINT_FILE, *names.arguments())
    finally:
        admin.clear_faults()
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: step 'add job quickstart-job on pool quickstart-pool' failed:"), line
    assert "JobExists" in line
    assert f"Batch account {names.batch} is gone" in result.stdout
    assert f"resource group {names.group} is gone" in result.stdout
    assert not resource_client_for(endpoint).resource_groups.check_existence(names.group)
    assert endpoint.token not in result.stdout + result.stderr


def test_help_documents_both_modes():
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30,
                            cwd=REPOSITORY)
    assert result.returncode == 0
    for needle in ("--endpoint-file", "--azure", "DefaultAzureCredential", "AZURE_SUBSCRIPTION_ID", "--location",
                   "--keep", "accountEndpoint"):
        assert needle in result.stdout
