"""The Batch AI quickstart's ConvNet_MNIST.py: a convolutional network for MNIST in CNTK text format.

    python ConvNet_MNIST.py <data dir> <model dir> [--epochs N] [--train-samples N] [--test-samples N] [--seed N]

<data dir> holds Train-28x28_cntk_text.txt and Test-28x28_cntk_text.txt (training/prepare_mnist.py writes them).
The defaults are the quickstart's full run: 40 epochs over the whole training file (an epoch is one pass over it,
in a fresh random order), then one test pass over the whole test file in minibatches of 1024. --train-samples and
--test-samples take the first N samples of a file instead (an epoch is then N samples); --seed makes the initial
weights, the order and the dropout repeatable. One model per epoch goes to <model dir>/ConvNet_MNIST_{epoch}.dnn,
numbered from 0 as in the quickstart, then ConvNet_MNIST.onnx where an ONNX exporter is installed. Missing or
malformed data ends the run with one message naming the file and line, and exit status 1.

The file is uploaded alone to the job's share and runs with the job's Python, so it needs nothing but the standard
library, numpy and one framework, and keeps to Python 3.6 syntax (the only CNTK wheels are for CPython 3.6).
It trains with CNTK where `import cntk` works and with PyTorch otherwise: the network is written once, as the
declarative ARCHITECTURE below, and each back end turns it into its own layers. Under PyTorch the .dnn files hold
the network's state dict (torch.save); under CNTK they are CNTK models (Function.save).

How CNTK's learner maps to PyTorch:
- CNTK's criterion is the SUM of the per-sample losses of a minibatch and its learning rate is per sample, so a
  step is w -= lr_per_sample * sum_i grad_i. The PyTorch back end takes the same step from a sum-reduced
  cross-entropy. (With PyTorch's usual mean reduction the same step needs lr = lr_per_sample * minibatch size.)
- CNTK's momentum is a time constant tau in samples: the per-minibatch momentum is m = exp(-n / tau) for a
  minibatch of n samples (0 when tau is 0). It is unit-gain: v = m * v + (1 - m) * g, then w -= lr * v, with v
  starting at zero. That is PyTorch's SGD with dampening = momentum, except that PyTorch seeds v with the first
  gradient instead of zero, so the back end carries its own ten-line optimiser that follows CNTK exactly.
- The last minibatch of an epoch may be short (60,000 = 937 * 64 + 32); lr and m follow from its size as above.
- Weights start Glorot-uniform (CNTK's default initialiser), biases at zero; dropout is off in the test pass.

On a CUDA GPU the PyTorch back end takes each training step as one CUDA graph replay (GraphedTraining below): the
network is tiny, so step by step the run is bound by kernel launches and Python, not by the GPU. The steps are the
same: minibatches of 64 in the same order, the same learner, dropout; what differs is only how dropout's random
numbers are drawn (the graph's replays advance the generator in their own way) and the rounding of the fused update.
If the capture fails, the run says so and goes on step by step.
"""

import argparse
import math
import os
import sys
import time
import warnings
from itertools import islice
from typing import NamedTuple

import numpy as np

TRAIN_FILE = "Train-28x28_cntk_text.txt"
TEST_FILE = "Test-28x28_cntk_text.txt"
MODEL_FILE = "ConvNet_MNIST_{}.dnn"
ONNX_FILE = "ConvNet_MNIST.onnx"

IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
STREAMS = (("labels", NUM_CLASSES), ("features", 28 * 28))

MAX_EPOCHS = 40
MINIBATCH_SIZE = 64
TEST_MINIBATCH_SIZE = 1024
# Per-epoch schedules; the last entry holds for every later epoch.
LR_PER_SAMPLE = [0.001] * 10 + [0.0005] * 10 + [0.0001]
MOMENTUM_TIME_CONSTANT = [0] * 5 + [1024]

DATA_ERROR_EXIT = 1


class Scale(NamedTuple):
    factor: float


class Conv(NamedTuple):
    """A 2-D convolution followed by ReLU (the quickstart sets ReLU as the default activation)."""

    filters: int
    kernel: int
    pad: bool = False


class MaxPool(NamedTuple):
    window: int
    stride: int


class Dense(NamedTuple):
    units: int
    relu: bool = True


class Dropout(NamedTuple):
    rate: float


ARCHITECTURE = (
    Scale(1 / 256),
    Conv(32, 5, pad=True),
    MaxPool(3, 2),
    Conv(48, 3),
    MaxPool(3, 2),
    Conv(64, 3),
    Dense(96),
    Dropout(0.5),
    Dense(NUM_CLASSES, relu=False),
)


class DataError(Exception):
    """Missing or malformed data (or no framework to train with): the script prints the message alone, exit 1."""


def per_epoch(schedule, epoch):
    return schedule[min(epoch, len(schedule) - 1)]


def unit_gain_momentum(minibatch_samples, time_constant):
    return math.exp(-minibatch_samples / time_constant) if time_constant else 0.0


# ---------------------------------------------------------------------------------------------------------------
# CNTK Text Format reader


def read_ctf(path, streams=STREAMS, limit=None):
    """Read dense CTF samples (`|labels 0 1 ... |features 0 0 ...`, one per line) into arrays by stream.

    Reads the first `limit` lines when given. Raises DataError naming the file and line of the first bad sample.
    """
    lines = _read_lines(path, limit)
    if not lines:
        raise DataError("{} holds no samples".format(path))
    values_by_stream = _split_streams(path, lines, streams)
    arrays = {}
    for name, dim in streams:
        arrays[name] = _parse_numbers(path, values_by_stream[name], name, dim)
    return arrays


def _read_lines(path, limit):
    try:
        with open(path, "rb") as ctf:
            if limit is not None:
                lines = list(islice(ctf, limit))
            else:
                lines = ctf.read().split(b"\n")
                if lines and not lines[-1].strip():
                    lines.pop()
    except FileNotFoundError:
        raise DataError("data file not found: {}".format(path)) from None
    except OSError as error:
        raise DataError("cannot read {}: {}".format(path, error.strerror or error)) from None
    return lines


def _split_streams(path, lines, streams):
    """Cut each line into its streams' value texts, checking each stream's value count on the way."""
    values_by_stream = {name: [] for name, _ in streams}
    wanted = [(name.encode(), values_by_stream[name], dim) for name, dim in streams]
    for number, line in enumerate(lines, 1):
        fields = line.split(b"|")
        if fields[0].strip():
            raise DataError("{}, line {}: text before the first '|'".format(path, number))
        found = {}
        for field in fields[1:]:
            name, _, values = field.partition(b" ")
            found[name] = values.strip()
        for name, bucket, dim in wanted:
            values = found.get(name)
            if values is None:
                raise DataError("{}, line {}: no |{} field".format(path, number, name.decode()))
            # One space between values is the format's norm; anything else gets the exact (slower) count.
            if (values.count(b" ") + 1 if values else 0) != dim and len(values.split()) != dim:
                raise DataError(
                    "{}, line {}: |{} has {} values, expected {}".format(
                        path, number, name.decode(), len(values.split()), dim
                    )
                )
            bucket.append(values)
    return values_by_stream


def _parse_numbers(path, texts, name, dim):
    """The values as an (n, dim) array: uint8 when they are all integers 0..255 (pixels, one-hot labels), else
    float32. Integer-only text parses ten times faster than general numbers."""
    joined = b" ".join(texts)
    integers_only = not joined.translate(None, b"0123456789 \t\r\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            numbers = np.fromstring(joined, dtype=np.int32 if integers_only else np.float64, sep=" ")
        except (ValueError, DeprecationWarning):
            numbers = None
    if numbers is None or numbers.size != len(texts) * dim:
        _raise_first_unparsable(path, texts, name, dim)
    fits_bytes = integers_only and numbers.max() <= 255
    return numbers.astype(np.uint8 if fits_bytes else np.float32).reshape(len(texts), dim)


def _raise_first_unparsable(path, texts, name, dim):
    for number, text in enumerate(texts, 1):
        tokens = text.split()
        if len(tokens) != dim:
            raise DataError("{}, line {}: |{} has {} values, expected {}".format(path, number, name, len(tokens), dim))
        for token in tokens:
            try:
                float(token)
            except ValueError:
                shown = token.decode(errors="replace")
                message = "{}, line {}: |{} value {!r} is not a number".format(path, number, name, shown)
                raise DataError(message) from None
    raise DataError("{}: cannot parse the |{} values".format(path, name))


def one_hot_classes(path, labels):
    """The class index of each one-hot label row; DataError names the first row that is not one-hot."""
    valid = ((labels == 0) | (labels == 1)).all(axis=1) & (labels.sum(axis=1) == 1)
    if not valid.all():
        line = int(np.argmin(valid)) + 1
        raise DataError("{}, line {}: |labels is not one-hot".format(path, line))
    return labels.argmax(axis=1)


class Dataset(NamedTuple):
    features: np.ndarray  # (n, 784) raw pixel values: uint8, or float32 where the file holds other numbers
    classes: np.ndarray  # int64 (n,)


def load_dataset(path, samples):
    """The first `samples` samples of a CTF file (all when None); DataError when the file holds fewer."""
    arrays = read_ctf(path, limit=samples)
    if samples is not None and len(arrays["features"]) < samples:
        found = len(arrays["features"])
        raise DataError("{} holds {} samples, fewer than the {} asked for".format(path, found, samples))
    return Dataset(arrays["features"], one_hot_classes(path, arrays["labels"]))


# ---------------------------------------------------------------------------------------------------------------
# Back ends: each builds ARCHITECTURE in its framework and trains it with the quickstart's learner.


class ExportUnavailable(Exception):
    """No ONNX exporter is installed for the framework in use."""


class TorchBackend:
    def __init__(self, train_samples, seed):
        import torch

        self.torch = torch
        if seed is not None:
            torch.manual_seed(seed)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = True
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        where = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"
        self.description = "PyTorch {} on {}".format(torch.__version__, where)
        self.network = build_torch_network(torch, ARCHITECTURE, IMAGE_SHAPE).to(self.device)
        self.optimizer = make_unit_gain_sgd(torch, self.network.parameters())
        self.graphed = None  # GraphedTraining once prepare_training has captured the steps (CUDA only)

    def parameter_shapes(self):
        return [tuple(parameter.shape) for parameter in self.network.parameters()]

    def dataset(self, data):
        # uint8 pixels stay uint8 on the device (a quarter of the memory) and become floats per minibatch.
        features = self.torch.from_numpy(data.features).reshape((-1,) + IMAGE_SHAPE).to(self.device)
        return features, self.torch.from_numpy(data.classes).to(self.device)

    def prepare_training(self, data, epoch_size):
        """On CUDA, capture the training steps as CUDA graphs; returns a line saying how the steps run (None on
        the CPU, which trains step by step as ever)."""
        if self.device.type != "cuda":
            return None
        started = time.perf_counter()
        try:
            self.graphed = GraphedTraining(self.torch, self.network, data, epoch_size, use_graphs=True)
        except Exception as error:  # a driver or PyTorch that cannot capture: train step by step instead
            self.graphed = None
            return "Training steps: one by one (CUDA graph capture failed: {}: {})".format(type(error).__name__, error)
        sizes = " and ".join(str(size) for size in self.graphed.sizes)
        seconds = time.perf_counter() - started
        return "Training steps: CUDA graphs for minibatches of {} samples, captured in {:0.2f}s".format(sizes, seconds)

    def train_epoch(self, data, order, epoch):
        if self.graphed is not None:
            return self.graphed.train_epoch(order, epoch)
        torch = self.torch
        features, classes = data
        lr_per_sample = per_epoch(LR_PER_SAMPLE, epoch)
        time_constant = per_epoch(MOMENTUM_TIME_CONSTANT, epoch)
        order = torch.from_numpy(order).to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        errors = torch.zeros((), dtype=torch.int64, device=self.device)
        self.network.train()
        for start in range(0, len(order), MINIBATCH_SIZE):
            batch = order[start : start + MINIBATCH_SIZE]
            targets = classes[batch]
            outputs = self.network(features[batch].float())
            loss = torch.nn.functional.cross_entropy(outputs, targets, reduction="sum")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step(lr_per_sample, unit_gain_momentum(len(batch), time_constant))
            loss_sum += loss.detach()
            errors += (outputs.detach().argmax(dim=1) != targets).sum()
        return float(loss_sum), int(errors)

    def count_errors(self, data, start, stop):
        features, classes = data
        self.network.eval()
        with self.torch.no_grad():
            outputs = self.network(features[start:stop].float())
            return int((outputs.argmax(dim=1) != classes[start:stop]).sum())

    def save(self, path):
        self.torch.save(self.network.state_dict(), path)

    def export_onnx(self, path):
        import importlib.util
        import inspect

        if importlib.util.find_spec("onnx") is None:
            raise ExportUnavailable("the onnx package is not installed")
        options = {
            "input_names": ["features"],
            "output_names": ["z"],
            "dynamic_axes": {"features": {0: "batch"}, "z": {0: "batch"}},
            "verbose": False,
        }
        if "dynamo" in inspect.signature(self.torch.onnx.export).parameters:
            # The torch.export-based exporter needs onnxscript; the TorchScript one needs onnx alone.
            # Weights go inside the one .onnx file, not beside it.
            options.update(dynamo=importlib.util.find_spec("onnxscript") is not None, external_data=False)
        sample = self.torch.zeros((1,) + IMAGE_SHAPE, device=self.device)
        self.network.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.torch.onnx.export(self.network, (sample,), path, **options)


def build_torch_network(torch, architecture, input_shape):
    nn = torch.nn

    class ScaleInput(nn.Module):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def forward(self, inputs):
            return inputs * self.factor

    channels, height, width = input_shape
    flat_size = None  # set once the spatial input has been flattened for a dense layer
    modules = []
    for layer in architecture:
        if isinstance(layer, Scale):
            modules.append(ScaleInput(layer.factor))
        elif isinstance(layer, Conv):
            padding = layer.kernel // 2 if layer.pad else 0
            modules += [nn.Conv2d(channels, layer.filters, layer.kernel, padding=padding), nn.ReLU()]
            channels = layer.filters
            height, width = height + 2 * padding - layer.kernel + 1, width + 2 * padding - layer.kernel + 1
        elif isinstance(layer, MaxPool):
            modules.append(nn.MaxPool2d(layer.window, layer.stride))
            height, width = (height - layer.window) // layer.stride + 1, (width - layer.window) // layer.stride + 1
        elif isinstance(layer, Dense):
            if flat_size is None:
                modules.append(nn.Flatten())
                flat_size = channels * height * width
            modules.append(nn.Linear(flat_size, layer.units))
            if layer.relu:
                modules.append(nn.ReLU())
            flat_size = layer.units
        elif isinstance(layer, Dropout):
            modules.append(nn.Dropout(layer.rate))
        else:
            raise TypeError("no PyTorch layer for {!r}".format(layer))
    network = nn.Sequential(*modules)
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return network


def make_unit_gain_sgd(torch, parameters):
    class UnitGainMomentumSGD(torch.optim.Optimizer):
        """CNTK's momentum_sgd with unit gain: v = m * v + (1 - m) * g; w -= lr * v; v starts at zero."""

        def __init__(self, params):
            super().__init__(params, {})

        @torch.no_grad()
        def step(self, lr, momentum):
            for group in self.param_groups:
                for parameter in group["params"]:
                    if parameter.grad is None:
                        continue
                    velocity = self.state[parameter].get("velocity")
                    if velocity is None:
                        velocity = self.state[parameter]["velocity"] = torch.zeros_like(parameter)
                    velocity.mul_(momentum).add_(parameter.grad, alpha=1.0 - momentum)
                    parameter.add_(velocity, alpha=-lr)

    return UnitGainMomentumSGD(parameters)


def minibatch_sizes(epoch_size, minibatch_size=MINIBATCH_SIZE):
    """The distinct minibatch sizes of an epoch, full size first: [64, 32] for 60,000 samples, [64] for 640."""
    full = min(minibatch_size, epoch_size)
    tail = epoch_size % minibatch_size if epoch_size > minibatch_size else 0
    return [full, tail] if tail else [full]


def step_schedule(epoch, minibatch_samples):
    """The learner's constants for one minibatch: (-lr per sample, momentum m, gain 1 - m), as the eager step has
    them (lr from the epoch's schedule, m = exp(-n / tau) for a minibatch of n samples)."""
    momentum = unit_gain_momentum(minibatch_samples, per_epoch(MOMENTUM_TIME_CONSTANT, epoch))
    return -per_epoch(LR_PER_SAMPLE, epoch), momentum, 1.0 - momentum


class GraphedTraining:
    """The training steps of the PyTorch back end with no per-step overhead, for CUDA.

    One step (gather the minibatch from the training set already on the device, forward, sum cross-entropy,
    backward, CNTK's unit-gain momentum update as three foreach operations, and the epoch's loss and error sums)
    is captured once per minibatch size as a CUDA graph: one for the full minibatch of 64, one for an epoch's short
    last minibatch when there is one. A step then costs one copy of the minibatch's 64 sample indices into the
    graph's static index buffer and one replay. The learning rate and momentum live in device tensors that the
    graphs read, so a change of schedule between epochs is a fill, not a new capture. The features are scaled by the
    network's first layer once, when loaded (the same multiplication, so the same numbers), and the steps run the
    network from its second layer.

    With use_graphs=False the same steps run eagerly (any device): the tests compare them with the step-by-step
    loop on the CPU, so the graphs hold exactly the operations that were checked.
    """

    WARMUP_STEPS = 3

    def __init__(self, torch, network, data, epoch_size, use_graphs):
        self.torch = torch
        self.use_graphs = use_graphs
        features, classes = data
        self.params = list(network.parameters())
        device = self.params[0].device
        first = network[0] if isinstance(network, torch.nn.Sequential) and len(network) else None
        scale = getattr(first, "factor", None)
        with torch.no_grad():
            if scale is not None:
                self.features = features.float() * scale
                self.body = network[1:]
            else:
                self.features = features.float()
                self.body = network
        self.classes = classes
        self.network = network
        self.velocities = [torch.zeros_like(parameter) for parameter in self.params]
        self.neg_lr = torch.zeros((), device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.errors = torch.zeros((), dtype=torch.int64, device=device)
        self.sizes = minibatch_sizes(epoch_size)
        self.indices = {size: torch.arange(size, device=device) for size in self.sizes}
        self.momentum = {size: torch.zeros((), device=device) for size in self.sizes}
        self.gain = {size: torch.zeros((), device=device) for size in self.sizes}
        self.graphs = {}
        self.graph_grads = {}  # each graph's gradients (in its private memory pool), kept for the graph's life
        if use_graphs:
            self._capture()

    def _step(self, size):
        """One minibatch: forward, backward, update, sums; the operations a graph captures."""
        torch = self.torch
        for parameter in self.params:
            parameter.grad = None
        indices = self.indices[size]
        targets = self.classes.index_select(0, indices)
        outputs = self.body(self.features.index_select(0, indices))
        loss = torch.nn.functional.cross_entropy(outputs, targets, reduction="sum")
        loss.backward()
        grads = [parameter.grad for parameter in self.params]
        with torch.no_grad():
            # v = m * v + (1 - m) * g; w -= lr * v
            torch._foreach_mul_(self.velocities, self.momentum[size])
            torch._foreach_add_(self.velocities, torch._foreach_mul(grads, self.gain[size]))
            torch._foreach_add_(self.params, torch._foreach_mul(self.velocities, self.neg_lr))
            self.loss_sum.add_(loss.detach())
            self.errors.add_((outputs.detach().argmax(dim=1) != targets).sum())
        return grads

    def _capture(self):
        torch = self.torch
        self.network.train()
        with torch.no_grad():
            saved = [parameter.detach().clone() for parameter in self.params]
        try:
            # Warm up on a side stream (lazy initialisation, cuDNN's choice of algorithms) as CUDA graphs require;
            # the warm-up steps change the weights, which are then put back.
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for size in self.sizes:
                    self.set_schedule(0)
                    for _ in range(self.WARMUP_STEPS):
                        self._step(size)
            torch.cuda.current_stream().wait_stream(side)
            for size in self.sizes:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    self.graph_grads[size] = self._step(size)
                self.graphs[size] = graph
        finally:
            try:
                torch.cuda.synchronize()
            except Exception:  # the capture's own error is the one to report
                pass
            for parameter in self.params:
                parameter.grad = None
            with torch.no_grad():
                for parameter, value in zip(self.params, saved):
                    parameter.copy_(value)
                for velocity in self.velocities:
                    velocity.zero_()
                self.loss_sum.zero_()
                self.errors.zero_()
            torch.cuda.synchronize()

    def set_schedule(self, epoch):
        for size in self.sizes:
            neg_lr, momentum, gain = step_schedule(epoch, size)
            self.momentum[size].fill_(momentum)
            self.gain[size].fill_(gain)
        self.neg_lr.fill_(neg_lr)

    def train_epoch(self, order, epoch):
        """One epoch over the samples in `order` (a numpy permutation); returns (loss sum, errors) as the eager
        loop does."""
        torch = self.torch
        self.set_schedule(epoch)
        self.loss_sum.zero_()
        self.errors.zero_()
        self.network.train()
        order = torch.from_numpy(order).to(self.features.device)
        epoch_size = len(order)
        for start in range(0, epoch_size, MINIBATCH_SIZE):
            size = min(MINIBATCH_SIZE, epoch_size - start)
            self.indices[size].copy_(order[start : start + size])
            if self.use_graphs:
                self.graphs[size].replay()
            else:
                self._step(size)
        if not self.use_graphs:
            for parameter in self.params:
                parameter.grad = None
        return float(self.loss_sum), int(self.errors)


class CntkBackend:
    def __init__(self, train_samples, seed):
        import cntk as C

        self.C = C
        if seed is not None:
            # Not force_deterministic_algorithms(): CNTK has no deterministic overlapped max pooling (3x3, stride 2).
            C.cntk_py.set_fixed_random_seed(seed)
        device = C.device.use_default_device()
        where = "GPU {}".format(device.id()) if device.type() == C.device.DeviceKind.GPU else "CPU"
        self.description = "CNTK {} on {}".format(C.__version__, where)
        self.features = C.input_variable(IMAGE_SHAPE, np.float32)
        self.labels = C.input_variable(NUM_CLASSES, np.float32)
        self.network = build_cntk_network(C, ARCHITECTURE, self.features)
        criterion = C.cross_entropy_with_softmax(self.network, self.labels)
        metric = C.classification_error(self.network, self.labels)
        learner = C.learners.momentum_sgd(
            self.network.parameters,
            C.learners.learning_parameter_schedule_per_sample(LR_PER_SAMPLE, epoch_size=train_samples),
            C.learners.momentum_as_time_constant_schedule(MOMENTUM_TIME_CONSTANT, epoch_size=train_samples),
            unit_gain=True,
        )
        self.trainer = C.Trainer(self.network, (criterion, metric), [learner])

    def parameter_shapes(self):
        return [tuple(parameter.shape) for parameter in self.network.parameters]

    def prepare_training(self, data, epoch_size):
        return None

    def dataset(self, data):
        features = data.features.reshape((-1,) + IMAGE_SHAPE)
        return features, np.eye(NUM_CLASSES, dtype=np.float32)[data.classes]

    def train_epoch(self, data, order, epoch):
        # The learner's schedules advance by samples seen, one epoch_size per epoch, so `epoch` is implied.
        features, labels = data
        loss_sum = error_sum = 0.0
        for start in range(0, len(order), MINIBATCH_SIZE):
            batch = order[start : start + MINIBATCH_SIZE]
            batch_features = features[batch].astype(np.float32)
            self.trainer.train_minibatch({self.features: batch_features, self.labels: labels[batch]})
            loss_sum += self.trainer.previous_minibatch_loss_average * len(batch)
            error_sum += self.trainer.previous_minibatch_evaluation_average * len(batch)
        return loss_sum, int(round(error_sum))

    def count_errors(self, data, start, stop):
        features, labels = data
        batch = {self.features: features[start:stop].astype(np.float32), self.labels: labels[start:stop]}
        error_rate = self.trainer.test_minibatch(batch)
        return int(round(error_rate * (stop - start)))

    def save(self, path):
        self.network.save(path)

    def export_onnx(self, path):
        self.network.save(path, format=self.C.ModelFormat.ONNX)


def build_cntk_network(C, architecture, features):
    output = features
    for layer in architecture:
        if isinstance(layer, Scale):
            output = C.element_times(C.constant(layer.factor), output)
        elif isinstance(layer, Conv):
            kernel = (layer.kernel, layer.kernel)
            output = C.layers.Convolution2D(kernel, layer.filters, activation=C.relu, pad=layer.pad)(output)
        elif isinstance(layer, MaxPool):
            output = C.layers.MaxPooling((layer.window, layer.window), (layer.stride, layer.stride))(output)
        elif isinstance(layer, Dense):
            output = C.layers.Dense(layer.units, activation=C.relu if layer.relu else None)(output)
        elif isinstance(layer, Dropout):
            output = C.layers.Dropout(layer.rate)(output)
        else:
            raise TypeError("no CNTK layer for {!r}".format(layer))
    return output


def choose_backend(train_samples, seed):
    try:
        import cntk  # noqa: F401  (the job image's framework)
    except ImportError:
        pass
    else:
        return CntkBackend(train_samples, seed)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise DataError("neither CNTK nor PyTorch is installed for {}".format(sys.executable)) from None
    return TorchBackend(train_samples, seed)


# ---------------------------------------------------------------------------------------------------------------
# The quickstart's run


def epoch_summary(epoch, epochs, loss_sum, errors, samples, seconds):
    """CNTK ProgressPrinter's line for a finished epoch."""
    line = (
        "Finished Epoch[{} of {}]: [Training] loss = {:0.6f} * {}, metric = {:0.2f}% * {} "
        "{:0.3f}s ({:5.1f} samples/s);"
    )
    loss, error_percent, speed = loss_sum / samples, errors * 100.0 / samples, samples / seconds
    return line.format(epoch + 1, epochs, loss, samples, error_percent, samples, seconds, speed)


def final_results(minibatches, errors, samples):
    # "+ 1" is the quickstart's own: its 10 test minibatches print as Minibatch[1-11].
    line = "Final Results: Minibatch[1-{}]: errs = {:0.2f}% * {}"
    return line.format(minibatches + 1, errors * 100.0 / samples, samples)


def convnet_mnist(data_dir, model_dir, epochs=MAX_EPOCHS, train_samples=None, test_samples=None, seed=None):
    """Train, save one model per epoch, test; return the test error rate."""
    started = time.perf_counter()
    train = load_dataset(os.path.join(data_dir, TRAIN_FILE), train_samples)
    test = load_dataset(os.path.join(data_dir, TEST_FILE), test_samples)
    print(
        "Read {} training and {} test samples from {} in {:0.1f}s".format(
            len(train.classes), len(test.classes), data_dir, time.perf_counter() - started
        )
    )
    try:
        os.makedirs(model_dir, exist_ok=True)
    except OSError as error:
        raise DataError("cannot create the model directory {}: {}".format(model_dir, error.strerror or error)) from None

    epoch_size = len(train.classes)
    backend = choose_backend(epoch_size, seed)
    print("Framework: {}".format(backend.description))
    shapes = backend.parameter_shapes()
    print("Training {} parameters in {} parameter tensors.".format(sum(int(np.prod(s)) for s in shapes), len(shapes)))
    train_data = backend.dataset(train)
    how = backend.prepare_training(train_data, epoch_size)
    if how:
        print(how)
    print()
    sys.stdout.flush()

    shuffle = np.random.RandomState(seed)
    for epoch in range(epochs):
        if epoch == 0 or per_epoch(LR_PER_SAMPLE, epoch) != per_epoch(LR_PER_SAMPLE, epoch - 1):
            print("Learning rate per 1 samples: {}".format(per_epoch(LR_PER_SAMPLE, epoch)))
        if epoch == 0 or per_epoch(MOMENTUM_TIME_CONSTANT, epoch) != per_epoch(MOMENTUM_TIME_CONSTANT, epoch - 1):
            print("Momentum time constant: {} samples".format(per_epoch(MOMENTUM_TIME_CONSTANT, epoch)))
        epoch_started = time.perf_counter()
        loss_sum, errors = backend.train_epoch(train_data, shuffle.permutation(epoch_size), epoch)
        seconds = time.perf_counter() - epoch_started
        print(epoch_summary(epoch, epochs, loss_sum, errors, epoch_size, seconds))
        sys.stdout.flush()
        backend.save(os.path.join(model_dir, MODEL_FILE.format(epoch)))

    test_data = backend.dataset(test)
    test_size = len(test.classes)
    minibatches = errors = 0
    for start in range(0, test_size, TEST_MINIBATCH_SIZE):
        errors += backend.count_errors(test_data, start, min(start + TEST_MINIBATCH_SIZE, test_size))
        minibatches += 1
    print()
    print(final_results(minibatches, errors, test_size))
    print()

    onnx_path = os.path.join(model_dir, ONNX_FILE)
    try:
        backend.export_onnx(onnx_path)
    except ExportUnavailable as reason:
        print("ONNX export skipped: {}".format(reason))
    except Exception as error:  # the export is an extra: its failure must not fail a finished training run
        print("ONNX export failed: {}: {}".format(type(error).__name__, error))
    else:
        print("ONNX model: {}".format(onnx_path))
    print("Models: {} ({} .. {})".format(model_dir, MODEL_FILE.format(0), MODEL_FILE.format(epochs - 1)))
    return errors / test_size


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1, not {}".format(value))
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train the quickstart's ConvNet on MNIST in CNTK text format.")
    parser.add_argument("data_dir", help="directory holding {} and {}".format(TRAIN_FILE, TEST_FILE))
    parser.add_argument("model_dir", help="directory for the per-epoch models")
    parser.add_argument("--epochs", type=positive_int, default=MAX_EPOCHS, help="default: %(default)s")
    parser.add_argument("--train-samples", type=positive_int, help="train on the first N samples (default: all)")
    parser.add_argument("--test-samples", type=positive_int, help="test on the first N samples (default: all)")
    parser.add_argument("--seed", type=int, help="seed the initial weights, shuffling and dropout")
    args = parser.parse_args(argv)
    try:
        convnet_mnist(args.data_dir, args.model_dir, args.epochs, args.train_samples, args.test_samples, args.seed)
    except DataError as error:
        sys.stdout.flush()
        print("{}: error: {}".format(parser.prog, error), file=sys.stderr)
        return DATA_ERROR_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
