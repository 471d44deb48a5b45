"""Wall time of `batchai-spec apply` on the sample project, and its upload throughput next to a local file copy.

A fresh state dir is served by this process, as `batchai-spec emulator serve` would serve it, with the emulator's
simulated delays at zero so the times are the tool's own. The project is the sample: specs/mnist-cntk.yaml with its
three uploads, the MNIST text files from data/mnist/ when they exist (130 MB; else random files of the same sizes),
and a stand-in for the training script so that the job takes no time. The CLI runs as a user runs it (a new
process per command). Prints:

- the wall time of the first apply (from nothing: provisioning, 130 MB of uploads, the job, its outputs listed);
- the wall time of an apply with nothing to do, and the bytes it uploaded (from its --json events: 0);
- the upload throughput of the two data files (`apply --replace` of both) next to shutil.copyfile of the same bytes.

    python benchmarks/apply_benchmark.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from batchai_spec.emulator.batchai.config import DELAY_SCALE_VARIABLE  # noqa: E402
from batchai_spec.emulator.server import start_in_process  # noqa: E402

MEGABYTE = 1_000_000
DATA_FILES = {"Train-28x28_cntk_text.txt": 111_735_994, "Test-28x28_cntk_text.txt": 18_649_443}
SHARE_DIRECTORY = "file.batchaiquickstart/mnistcntksample"
# Takes the sample's arguments (<input dir> <model dir> --epochs N) and trains nothing.
STAND_IN_SCRIPT = """\
import os, sys
model_dir = sys.argv[2]
os.makedirs(model_dir, exist_ok=True)
print("Finished Epoch[1 of 1]: stand-in")
with open(os.path.join(model_dir, "ConvNet_MNIST_0.dnn"), "wb") as model:
    model.write(b"stand-in model")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="Runs of the no-change apply and of the upload.")
    options = parser.parse_args()
    os.environ[DELAY_SCALE_VARIABLE] = "0"
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        project, data_origin = _sample_project(scratch_dir / "project")
        with start_in_process(scratch_dir / "state") as emulator:
            cli = Cli(project / "specs" / "mnist-cntk.yaml", Path(emulator.endpoint.state_dir))
            first_s, _ = cli.apply()
            no_change = [cli.apply() for _ in range(options.repeats)]
            replaced = [f"--replace={SHARE_DIRECTORY}/{name}" for name in DATA_FILES]
            uploads = [_upload_seconds(cli.apply(*replaced)[1]) for _ in range(options.repeats)]
        copy_s = statistics.median(_copy_seconds(project / "data" / "mnist", scratch_dir) for _ in range(options.repeats))
    total_mb = sum(DATA_FILES.values()) / MEGABYTE
    upload_s = statistics.median(uploads)
    print(f"sample project, data: {data_origin}; emulator delays 0; median of {options.repeats} runs where repeated")
    print(f"first apply (from nothing, {total_mb:.0f} MB uploaded, job run): {first_s:6.2f} s")
    print(f"no-change apply:                                    {statistics.median(s for s, _ in no_change):6.2f} s,"
          f" {max(_uploaded_bytes(events) for _, events in no_change):,} bytes uploaded")
    print(f"upload of the data files ({total_mb:.0f} MB, apply --replace): {total_mb / upload_s:8.1f} MB/s")
    print(f"local copy of the same bytes (shutil.copyfile):     {total_mb / copy_s:8.1f} MB/s"
          f"   copy/upload = {upload_s / copy_s:.1f}x")


class Cli:
    def __init__(self, spec: Path, state_dir: Path):
        self.spec = spec
        self.state_dir = state_dir

    def apply(self, *options: str) -> tuple[float, list[dict]]:
        """(wall seconds, --json events) of one `apply -y`."""
        argv = [sys.executable, "-m", "batchai_spec", "apply", str(self.spec), "-y", "--json", *options,
                "--state-dir", str(self.state_dir)]
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=REPOSITORY, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"apply failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return seconds, [json.loads(line) for line in done.stdout.splitlines()]


def _sample_project(root: Path) -> tuple[Path, str]:
    (root / "specs").mkdir(parents=True)
    (root / "training").mkdir()
    (root / "data" / "mnist").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'benchmark'\n")
    shutil.copyfile(REPOSITORY / "specs" / "mnist-cntk.yaml", root / "specs" / "mnist-cntk.yaml")
    (root / "training" / "convnet_mnist.py").write_text(STAND_IN_SCRIPT)
    real = REPOSITORY / "data" / "mnist"
    if all((real / name).is_file() for name in DATA_FILES):
        for name in DATA_FILES:
            shutil.copyfile(real / name, root / "data" / "mnist" / name)
        return root, f"MNIST text files from {real}"
    generator = random.Random(7)
    for name, size in DATA_FILES.items():
        (root / "data" / "mnist" / name).write_bytes(generator.randbytes(size))
    return root, "random files of the MNIST files' sizes (data/mnist/*.txt missing)"


def _uploaded_bytes(events: list[dict]) -> int:
    """The bytes a run uploaded: the last progress of every file it uploaded."""
    done: dict[str, int] = {}
    for event in events:
        if event["event"] == "upload.progress":
            done[event["address"]] = max(done.get(event["address"], 0), event["done"])
    return sum(done.values())


def _upload_seconds(events: list[dict]) -> float:
    """From the first upload's start to the last one's end (the files go up in parallel)."""
    uploads = [event for event in events if event.get("operation") == "upload"]
    started = [event["time"] for event in uploads if event["event"] == "change.started"]
    finished = [event["time"] for event in uploads if event["event"] == "change.finished"]
    if len(finished) != len(DATA_FILES) or _uploaded_bytes(events) != sum(DATA_FILES.values()):
        raise SystemExit("apply --replace did not upload the data files")
    return max(finished) - min(started)


def _copy_seconds(source_dir: Path, scratch: Path) -> float:
    start = time.perf_counter()
    for name in DATA_FILES:
        shutil.copyfile(source_dir / name, scratch / name)
    seconds = time.perf_counter() - start
    for name in DATA_FILES:
        (scratch / name).unlink()
    return seconds


if __name__ == "__main__":
    main()
