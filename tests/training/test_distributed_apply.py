"""The distributed sample end to end, on both services: `specs/mnist-distributed.yaml` applied through the CLI
trains the real script on two emulated nodes (a slice of the real digits, to stay fast), with PyTorch's one process
per node or with `mpirun`; a rank that fails fails the job, and apply shows that rank's words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from batchai_spec.emulator.server import start_in_process
from batchai_spec.services import SERVICES
from tests.training.test_training_apply import cli, sample_project

SPEC = "specs/mnist-distributed.yaml"
EPOCH_LINE = re.compile(r"^Finished Epoch\[1 of 1\]: \[Training\] loss = [0-9.]+ \* 3000, ", re.MULTILINE)
RUN_ID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
FINAL_LINE = re.compile(r"Final Results: Minibatch\[1-\d+\]: errs = ([0-9.]+)% \* 500")


@pytest.fixture
def project(tmp_path: Path, mnist_dir: Path) -> Path:
    return sample_project(tmp_path, mnist_dir, SPEC)


@pytest.fixture
def emulator(project: Path, monkeypatch) -> None:
    """An emulator of this test's own; the CLI finds it through its endpoint.json."""
    monkeypatch.setenv("BATCHAI_EMULATOR_DELAY_SCALE", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two processes on two cores: one thread each
    with start_in_process(project / ".batchai-spec"):
        yield


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("toolkit", ["pytorch", "custom_mpi"])
def test_the_sample_trains_on_two_nodes_and_prints_one_run(project: Path, emulator, service: str, toolkit: str):
    downloads = project / "downloads"
    result = cli(project, "apply", SPEC, "-y", "--service", service, "--var", "epochs=1", "--var", f"toolkit={toolkit}",
                 "--download", str(downloads))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert len(EPOCH_LINE.findall(result.stdout)) == 1, result.stdout  # rank 0 alone speaks
    assert "Distributed: 2 workers" in result.stdout
    # One epoch on 3,000 digits ends anywhere between 30% and 62% (chance: 90%); that the workers together take the
    # single process's steps is checked in test_distributed_training.py.
    error = float(FINAL_LINE.search(result.stdout).group(1))
    assert error < 80.0, f"test error {error}% after one epoch on 3,000 digits"
    assert "job.distributed/convnet: succeeded, exit code 0" in result.stdout
    run = downloads / "distributed" / "convnet"
    assert sorted(path.name for path in (run / "MODEL").iterdir()) == ["ConvNet_MNIST.onnx", "ConvNet_MNIST_0.dnn"]
    logs = {path.name: path.read_text() for path in (run / "stdouterr").iterdir()}
    if toolkit == "pytorch":  # one process per node, each with its own files; the second says nothing
        assert EPOCH_LINE.search(logs["stdout-0.txt"]) and logs["stdout-1.txt"] == ""
    else:  # mpirun on the first node: both ranks' output in one file
        assert len(EPOCH_LINE.findall(logs["stdout.txt"])) == 1
        assert "MPI: " in logs["execution.log"]


FAILING_RANK = """\
import os
import sys

import torch.distributed as dist

if os.environ["RANK"] == "1":
    sys.exit("rank 1 gave up: no GPU found")  # before the collective that rank 0 waits in
dist.init_process_group("gloo", init_method=os.environ["AZ_BATCHAI_PYTORCH_INIT_METHOD"],
                        rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]))
"""


@pytest.mark.parametrize("service", SERVICES)
def test_a_rank_that_fails_fails_the_job_with_its_words(project: Path, emulator, service: str):
    (project / "training" / "convnet_mnist.py").write_text(FAILING_RANK)
    result = cli(project, "apply", SPEC, "-y", "--service", service, "--var", "epochs=1")
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "Traceback" not in output
    assert "rank 1 gave up: no GPU found" in output
    assert "job.distributed/convnet failed with exit code 1" in output

    # A run that is no longer the job's is read from the share: its files, and nothing of the launcher's records.
    again = cli(project, "apply", SPEC, "-y", "--service", service, "--var", "epochs=2")
    assert again.returncode == 3, again.stdout + again.stderr
    runs = cli(project, "outputs", SPEC, "distributed/convnet", "--service", service)
    listed_runs = list(dict.fromkeys(RUN_ID.findall(runs.stdout)))  # the table's, newest first
    assert len(listed_runs) == 2, runs.stdout
    earlier = listed_runs[1]
    listed = cli(project, "outputs", SPEC, "distributed/convnet", "--service", service, "--run", earlier)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "stderr-1.txt" in listed.stdout and ".ranks" not in listed.stdout
