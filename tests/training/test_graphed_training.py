"""The PyTorch back end's step path for CUDA (GraphedTraining): its pieces that need no GPU, and its steps against the
step-by-step loop. On the CPU the graphs' operations run eagerly; on a CUDA machine the same test replays the graphs."""

import sys
from pathlib import Path

import numpy as np
import pytest

import convnet_mnist

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import training_speed  # noqa: E402


def test_an_epoch_has_one_full_minibatch_size_and_at_most_one_short_one():
    assert convnet_mnist.minibatch_sizes(60000) == [64, 32]  # 937 * 64 + 32
    assert convnet_mnist.minibatch_sizes(4000) == [64, 32]
    assert convnet_mnist.minibatch_sizes(640) == [64]
    assert convnet_mnist.minibatch_sizes(64) == [64]
    assert convnet_mnist.minibatch_sizes(65) == [64, 1]
    assert convnet_mnist.minibatch_sizes(30) == [30]
    assert convnet_mnist.minibatch_sizes(1) == [1]


def test_step_schedule_is_the_eager_steps_lr_and_unit_gain_momentum():
    for epoch in range(40):
        lr = convnet_mnist.per_epoch(convnet_mnist.LR_PER_SAMPLE, epoch)
        tau = convnet_mnist.per_epoch(convnet_mnist.MOMENTUM_TIME_CONSTANT, epoch)
        for size in (64, 32):
            neg_lr, momentum, gain = convnet_mnist.step_schedule(epoch, size)
            assert neg_lr == -lr
            assert momentum == convnet_mnist.unit_gain_momentum(size, tau)
            assert gain == 1.0 - momentum
    assert convnet_mnist.step_schedule(0, 64) == (-0.001, 0.0, 1.0)
    assert convnet_mnist.step_schedule(39, 32)[1] == pytest.approx(np.exp(-32 / 1024))


def test_schedule_tensors_follow_the_epoch_and_each_minibatch_size():
    network = convnet_mnist.build_torch_network(torch, convnet_mnist.ARCHITECTURE, convnet_mnist.IMAGE_SHAPE)
    data = (torch.zeros((100,) + convnet_mnist.IMAGE_SHAPE, dtype=torch.uint8), torch.zeros(100, dtype=torch.int64))
    steps = convnet_mnist.GraphedTraining(torch, network, data, 100, use_graphs=False)
    assert steps.sizes == [64, 36]
    for epoch in (0, 4, 5, 10, 25):
        steps.set_schedule(epoch)
        for size in (64, 36):
            neg_lr, momentum, gain = convnet_mnist.step_schedule(epoch, size)
            assert float(steps.neg_lr) == pytest.approx(neg_lr, rel=1e-7)
            assert float(steps.momentum[size]) == pytest.approx(momentum, rel=1e-7)
            assert float(steps.gain[size]) == pytest.approx(gain, rel=1e-7)


def test_steps_scale_the_features_once_as_the_networks_first_layer_does():
    network = convnet_mnist.build_torch_network(torch, convnet_mnist.ARCHITECTURE, convnet_mnist.IMAGE_SHAPE)
    pixels = torch.from_numpy(np.random.RandomState(0).randint(0, 256, size=(5, 1, 28, 28)).astype(np.uint8))
    steps = convnet_mnist.GraphedTraining(torch, network, (pixels, torch.zeros(5, dtype=torch.int64)), 5, False)

    assert torch.equal(steps.features, network[0](pixels.float()))
    network.eval()
    assert torch.equal(steps.body(steps.features), network(pixels.float()))


def test_steps_take_the_step_by_step_loops_steps():
    """Three epochs (momentum off, on, a later learning rate) of 200 samples: three full minibatches and a short
    one of 8. On the CPU with the same dropout masks, so loss sums and errors match; with CUDA graphs dropout is
    off (the graphs draw their random numbers otherwise)."""
    results = training_speed.check_graphed_steps(torch)

    for eager_loss, graphed_loss, eager_errors, graphed_errors, difference in results:
        assert graphed_loss == pytest.approx(eager_loss, rel=1e-5)
        assert difference < (1e-4 if torch.cuda.is_available() else 1e-6)
        if not torch.cuda.is_available():
            assert graphed_errors == eager_errors


def test_the_cpu_trains_step_by_step_as_before():
    backend = convnet_mnist.TorchBackend(100, seed=1)
    if backend.device.type == "cuda":
        pytest.skip("this machine trains on CUDA")
    data = backend.dataset(convnet_mnist.Dataset(np.zeros((100, 784), np.uint8), np.zeros(100, np.int64)))

    assert backend.prepare_training(data, 100) is None
    assert backend.graphed is None


class FakeStream:
    def wait_stream(self, stream):
        pass


class FakeStreamContext:
    def __init__(self, stream):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_failed_capture_puts_the_weights_back_and_trains_step_by_step(monkeypatch):
    """The warm-up steps train; when the capture then fails, the run goes on step by step from the initial
    weights, saying why."""

    def no_graphs():
        raise RuntimeError("CUDA graphs are not supported here")

    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "stream", FakeStreamContext)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", no_graphs)
    backend = convnet_mnist.TorchBackend(100, seed=1)
    backend.device = torch.device("cuda")  # the data stay on the CPU: only the capture's path is taken
    rng = np.random.RandomState(0)
    dataset = convnet_mnist.Dataset(rng.randint(0, 256, size=(100, 784)).astype(np.uint8), np.arange(100) % 10)
    data = (torch.from_numpy(dataset.features).reshape((-1, 1, 28, 28)), torch.from_numpy(dataset.classes))
    before = [parameter.detach().clone() for parameter in backend.network.parameters()]

    how = backend.prepare_training(data, 100)

    assert how == (
        "Training steps: one by one (CUDA graph capture failed: RuntimeError: CUDA graphs are not supported here)"
    )
    assert backend.graphed is None
    for parameter, initial in zip(backend.network.parameters(), before):
        assert torch.equal(parameter, initial)
        assert parameter.grad is None
