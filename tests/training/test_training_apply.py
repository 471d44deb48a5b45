"""The quickstart end to end: the sample spec applied through the CLI trains the real script on real MNIST digits
(a slice, to stay fast) in the emulator, and a job that fails on bad data makes apply exit 3 with the script's words."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from itertools import islice
from pathlib import Path

import pytest

from batchai_spec.emulator.server import start_in_process

REPO = Path(__file__).resolve().parents[2]
TRAIN_FILE, TEST_FILE = "Train-28x28_cntk_text.txt", "Test-28x28_cntk_text.txt"


def copy_lines(source: Path, destination: Path, count: int) -> None:
    with source.open() as reading, destination.open("w") as writing:
        writing.writelines(islice(reading, count))


def sample_project(root: Path, mnist_dir: Path, spec: str) -> Path:
    """One of the repository's sample specs and the training script, with the first 3,000 / 500 digits as the
    data files."""
    (root / "pyproject.toml").write_text("")
    for relative in (spec, "training/convnet_mnist.py"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / relative, root / relative)
    data = root / "data" / "mnist"
    data.mkdir(parents=True)
    copy_lines(mnist_dir / TRAIN_FILE, data / TRAIN_FILE, 3000)
    copy_lines(mnist_dir / TEST_FILE, data / TEST_FILE, 500)
    return root


@pytest.fixture
def project(tmp_path: Path, mnist_dir: Path) -> Path:
    return sample_project(tmp_path, mnist_dir, "specs/mnist-cntk.yaml")


@pytest.fixture
def state_dir(project: Path, monkeypatch) -> Path:
    """An emulator of this test's own; the CLI finds it through its endpoint.json."""
    monkeypatch.setenv("BATCHAI_EMULATOR_DELAY_SCALE", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one thread trains faster on two busy cores
    with start_in_process(project / ".batchai-spec") as running:
        yield Path(running.endpoint.state_dir)


def cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "batchai_spec", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
    )


def test_apply_trains_the_convnet_on_real_digits(project: Path, state_dir: Path):
    downloads = project / "downloads"
    result = cli(project, "apply", "specs/mnist-cntk.yaml", "-y", "--var", "epochs=2", "--download", str(downloads))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "Finished Epoch[1 of 2]: [Training] loss = " in result.stdout
    error = float(re.search(r"Final Results: Minibatch\[1-\d+\]: errs = ([0-9.]+)% \* 500", result.stdout).group(1))
    assert error < 60.0, f"test error {error}% after two epochs on 3,000 digits"  # chance is 90%
    assert "job.quickstart/myjob: succeeded, exit code 0" in result.stdout
    models = downloads / "quickstart" / "myjob" / "MODEL"
    assert sorted(path.name for path in models.glob("*.dnn")) == ["ConvNet_MNIST_0.dnn", "ConvNet_MNIST_1.dnn"]
    assert all(path.stat().st_size > 300_000 for path in models.glob("*.dnn"))  # 98,778 float32 parameters

    again = cli(project, "plan", "specs/mnist-cntk.yaml", "--var", "epochs=2", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes." in again.stdout


def test_a_job_failing_on_corrupt_data_makes_apply_exit_3_with_the_scripts_message(project: Path, state_dir: Path):
    test_file = project / "data" / "mnist" / TEST_FILE
    lines = test_file.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace(" 0 0 0\n", " 0 0\n", 1)  # 783 features
    test_file.write_text("".join(lines))
    result = cli(project, "apply", "specs/mnist-cntk.yaml", "-y", "--var", "epochs=1")
    assert result.returncode == 3, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert f"{TEST_FILE}, line 3: |features has 783 values, expected 784" in output
    assert "job.quickstart/myjob failed" in output
