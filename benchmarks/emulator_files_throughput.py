"""Azure Files throughput of the emulator next to a plain local copy of the same bytes.

Uploads and downloads a 100 MB file through azure-storage-file-share (max_concurrency=4, 4 MiB ranges, HTTPS on
127.0.0.1) against an in-process emulator, and copies the same bytes file-to-file with shutil. Prints MB/s and the
ratio local/emulator (how many times slower the emulator is). Run from the repository root:

    python benchmarks/emulator_files_throughput.py [--megabytes 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batchai_spec.emulator.server import start_in_process  # noqa: E402
from tests.emulator_clients import LOCATION, resource_client_for, share_service_for, storage_client_for  # noqa: E402

MEGABYTE = 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    data = os.urandom(options.megabytes * MEGABYTE)
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        local = _local_copy_seconds(scratch_dir, data, options.repeats)
        upload, download = _emulator_seconds(scratch_dir / "state", data, options.repeats)
    size_mb = len(data) / MEGABYTE
    print(f"file size: {size_mb:.0f} MB, median of {options.repeats} runs")
    print(f"local copy (shutil.copyfile): {size_mb / local:8.1f} MB/s")
    for name, seconds in (("emulator upload", upload), ("emulator download", download)):
        label = f"{name} (SDK, 4 threads)"
        print(f"{label:35s} {size_mb / seconds:8.1f} MB/s   local/emulator = {seconds / local:5.1f}x")


def _local_copy_seconds(scratch: Path, data: bytes, repeats: int) -> float:
    source = scratch / "source.bin"
    source.write_bytes(data)
    timings = []
    for index in range(repeats):
        target = scratch / f"copy-{index}.bin"
        start = time.perf_counter()
        shutil.copyfile(source, target)
        timings.append(time.perf_counter() - start)
        target.unlink()
    source.unlink()
    return statistics.median(timings)


def _emulator_seconds(state_dir: Path, data: bytes, repeats: int) -> tuple[float, float]:
    with start_in_process(state_dir) as emulator:
        endpoint = emulator.endpoint
        resource_client_for(endpoint).resource_groups.create_or_update("bench", {"location": LOCATION})
        storage = storage_client_for(endpoint)
        storage.storage_accounts.begin_create(
            "bench", "benchaccount", {"sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": LOCATION}
        ).result()
        key = storage.storage_accounts.list_keys("bench", "benchaccount").keys[0].value
        share = share_service_for(endpoint, "benchaccount", key).create_share("bench")
        uploads, downloads = [], []
        for index in range(repeats):
            file = share.get_file_client(f"file-{index}.bin")
            start = time.perf_counter()
            file.upload_file(data, max_concurrency=4)
            uploads.append(time.perf_counter() - start)
            start = time.perf_counter()
            downloaded = file.download_file(max_concurrency=4).readall()
            downloads.append(time.perf_counter() - start)
            if downloaded != data:
                raise SystemExit("downloaded bytes differ from the uploaded ones")
            file.delete_file()
    return statistics.median(uploads), statistics.median(downloads)


if __name__ == "__main__":
    main()
