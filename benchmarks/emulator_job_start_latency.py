"""Batch AI job start latency in the emulator: job created -> its process started, on an idle cluster.

Starts an in-process emulator (default delays: none of them applies to an idle cluster), makes a one-node cluster
with an Azure File share mounted, then submits N custom-toolkit jobs one after another. Each job's first act is to
write the wall-clock time into the share; the latency is that time minus the time just before the SDK sent the
job's PUT. Also prints how long the SDK's begin_create(...).result() took and how long until a client polling
jobs.get (every 50 ms) saw `succeeded`. Run from the repository root:

    python benchmarks/emulator_job_start_latency.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import azure.mgmt.batchai.models as models  # noqa: E402

from batchai_spec.emulator.files.store import share_directory  # noqa: E402
from batchai_spec.emulator.server import start_in_process  # noqa: E402
from tests.emulator.batchai_support import batchai_client_for, cluster_parameters  # noqa: E402
from tests.emulator_clients import LOCATION, resource_client_for, share_service_for, storage_client_for  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, start_in_process(Path(scratch) / "state") as emulator:
        endpoint = emulator.endpoint
        resource_client_for(endpoint).resource_groups.create_or_update("bench", {"location": LOCATION})
        storage = storage_client_for(endpoint)
        storage.storage_accounts.begin_create(
            "bench", "benchacct", {"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": LOCATION}
        ).result()
        key = storage.storage_accounts.list_keys("bench", "benchacct").keys[0].value
        share_service_for(endpoint, "benchacct", key).create_share("share")
        share = share_directory(emulator.state, "benchacct", "share")
        client = batchai_client_for(endpoint)
        client.workspaces.begin_create("bench", "ws", models.WorkspaceCreateParameters(location=LOCATION)).result()
        client.experiments.begin_create("bench", "ws", "exp").result()
        cluster = client.clusters.begin_create(
            "bench", "ws", "cluster", cluster_parameters("benchacct", key, "share", mount="afs")
        ).result()
        _poll(lambda: client.clusters.get("bench", "ws", "cluster").node_state_counts.idle_node_count == 1)

        started, submitted, finished = [], [], []
        for run in range(options.runs):
            name = f"job{run}"
            marker = share / f"{name}.started"
            parameters = models.JobCreateParameters(
                cluster=models.ResourceId(id=cluster.id), node_count=1,
                std_out_err_path_prefix="$AZ_BATCHAI_MOUNT_ROOT/afs",
                custom_toolkit_settings=models.CustomToolkitSettings(
                    command_line=f"date +%s.%N > $AZ_BATCHAI_MOUNT_ROOT/afs/{name}.started"),
            )
            before = time.time()
            client.jobs.begin_create("bench", "ws", "exp", name, parameters).result()
            submitted.append(time.time() - before)
            _poll(lambda: marker.exists() and marker.read_text().endswith("\n"), interval=0.001)
            started.append(float(marker.read_text()) - before)
            _poll(lambda: client.jobs.get("bench", "ws", "exp", name).execution_state == "succeeded")
            finished.append(time.time() - before)
    print(f"{options.runs} jobs on an idle one-node cluster (milliseconds: median / p90 / min / max)")
    for label, values in (("created -> process started", started), ("begin_create(...).result()", submitted),
                          ("created -> client sees succeeded", finished)):
        values = sorted(value * 1000 for value in values)
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        print(f"  {label:34s} {statistics.median(values):7.1f} / {p90:7.1f} / {values[0]:7.1f} / {values[-1]:7.1f}")


def _poll(condition, interval: float = 0.05, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the emulator did not get there in time")
        time.sleep(interval)


if __name__ == "__main__":
    main()
