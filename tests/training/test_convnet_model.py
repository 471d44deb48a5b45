"""The quickstart's network and learner as the training script builds them under PyTorch."""

import ast
import sys

import pytest

import convnet_mnist

torch = pytest.importorskip("torch")


def test_network_has_the_quickstarts_98778_parameters():
    network = convnet_mnist.build_torch_network(torch, convnet_mnist.ARCHITECTURE, convnet_mnist.IMAGE_SHAPE)

    shapes = [tuple(parameter.shape) for parameter in network.parameters()]
    assert shapes == [
        (32, 1, 5, 5), (32,), (48, 32, 3, 3), (48,), (64, 48, 3, 3), (64,), (96, 576), (96,), (10, 96), (10,)
    ]
    assert sum(parameter.numel() for parameter in network.parameters()) == 98_778
    assert network(torch.full((3, 1, 28, 28), 255.0)).shape == (3, 10)


def test_schedule_is_the_quickstarts():
    learning_rates = [convnet_mnist.per_epoch(convnet_mnist.LR_PER_SAMPLE, epoch) for epoch in range(40)]
    time_constants = [convnet_mnist.per_epoch(convnet_mnist.MOMENTUM_TIME_CONSTANT, epoch) for epoch in range(40)]

    assert learning_rates == [0.001] * 10 + [0.0005] * 10 + [0.0001] * 20
    assert time_constants == [0] * 5 + [1024] * 35
    assert convnet_mnist.unit_gain_momentum(64, 0) == 0.0
    assert convnet_mnist.unit_gain_momentum(64, 1024) == pytest.approx(0.9990239141819757**64)


def test_optimizer_takes_cntks_unit_gain_momentum_steps():
    """v = m v + (1 - m) g with v from zero, then w -= lr v: two steps worked out by hand."""
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = convnet_mnist.make_unit_gain_sgd(torch, [weight])

    weight.grad = torch.tensor([10.0, 20.0])
    optimizer.step(lr=0.1, momentum=0.5)  # v = 0.5 * [10, 20] = [5, 10]
    assert weight.tolist() == pytest.approx([0.5, -3.0])

    weight.grad = torch.tensor([2.0, 0.0])
    optimizer.step(lr=0.1, momentum=0.5)  # v = 0.5 * [5, 10] + 0.5 * [2, 0] = [3.5, 5]
    assert weight.tolist() == pytest.approx([0.15, -3.5])


def test_summary_lines_have_cntks_format():
    line = convnet_mnist.epoch_summary(0, 40, 0.25 * 60000, 600, 60000, 30.0)
    assert line == (
        "Finished Epoch[1 of 40]: [Training] loss = 0.250000 * 60000, metric = 1.00% * 60000 "
        "30.000s (2000.0 samples/s);"
    )
    assert convnet_mnist.final_results(10, 54, 10000) == "Final Results: Minibatch[1-11]: errs = 0.54% * 10000"


def test_script_runs_on_the_job_images_python_with_numpy_and_a_framework_only():
    """The script is uploaded alone and runs under the CNTK image's CPython 3.6 (mpi4py is optional: workers
    started by mpirun meet through it where it is installed, else in the job's shared directory)."""
    source = open(convnet_mnist.__file__).read()
    tree = ast.parse(source, feature_version=(3, 6))

    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"numpy", "torch", "cntk", "mpi4py"}
