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

Distributed (data-parallel) training. The same command runs as one process, as N processes started by mpirun, or as
one process per node started by the service; the environment says which, and no argument changes:
- The workers: WORLD_SIZE and RANK (torch.distributed's, which the services set for PyTorch jobs; LOCAL_RANK too)
  first, else Open MPI's OMPI_COMM_WORLD_SIZE / _RANK / _LOCAL_RANK, else PMI_SIZE / PMI_RANK (MPICH, Intel MPI;
  local rank MPI_LOCALRANKID). None of them, or a size of 1, is the single-process run, unchanged.
- The rendezvous (PyTorch): AZ_BATCHAI_PYTORCH_INIT_METHOD (Batch AI's: file://... or tcp://host:port), else env://
  when MASTER_ADDR is set (with MASTER_PORT), else, for workers started by mpirun, tcp:// to rank 0's host name
  and a free port there, which rank 0 tells the others through MPI (mpi4py, installed with the train extra; mpirun
  passes no variable to the workers it starts on other machines), else
  file://$AZ_BATCHAI_SHARED_JOB_TEMP/torch_distributed_init (a directory all workers of a job share; a file left
  there by a crashed run must go before the next run uses the directory), else the run stops with one error line,
  exit 1. The backend is
  AZ_BATCHAI_PYTORCH_BACKEND lower-cased ('tcp', PyTorch 0.3's, is gloo), else nccl on CUDA, gloo on the CPU; a
  worker on CUDA uses GPU LOCAL_RANK % device count (its rank where no local rank is given).
  BATCHAI_TRAINING_DISTRIBUTED_TIMEOUT_S (default 300) bounds the rendezvous and every collective: a worker that
  never comes ends the run with one error line, exit 1, after that long; a worker that fails or dies later breaks
  its connections, and the others stop at their next all-reduce with one error line, exit 1.
- The optimisation is the single process's, minibatch of 64 and all: every worker builds the same initial weights
  (rank 0's are broadcast) and draws the same order each epoch (the same seed everywhere: --seed, or rank 0's
  random pick, broadcast), and takes its contiguous shard of each minibatch (64 / N samples, sizes differing by
  one where N does not divide it; a short last minibatch is shared the same way; a shard may be empty). Each
  worker's summed gradient goes into one flat buffer and ONE all-reduce (sum) per step gives the whole minibatch's
  gradient sum; the learner's step is then the single process's, with lr and momentum from the whole minibatch's
  size. Dropout draws the mask of the whole minibatch on every worker (the generators are seeded alike) and each
  worker applies its shard's rows, so with --seed the workers on CPUs take the single process's steps up to float
  rounding (the sum's order; as with 2 threads instead of 1, a ReLU on the edge may flip later and the runs drift
  apart a little); on CUDA, dropout's random numbers are drawn differently, so the runs agree only within noise.
  On CUDA the distributed steps run eagerly (no CUDA graphs: the all-reduce sits between backward
  and update).
- Rank 0 alone prints (the others print nothing on stdout: under mpirun all stdouts land in one file), writes the
  per-epoch models and the ONNX file, and runs the test pass. Its epoch lines report the whole epoch (loss and
  error sums all-reduced); it adds one line after the parameter count, `Distributed: N workers (backend, init
  method), n samples of each minibatch of 64 per worker`, and a last one, `All-reduce: x ms per step (backend),
  y% of training time` (the wall time of the all-reduce call, waiting for the slowest worker included; on CUDA,
  NCCL's work may go on after the call returns). Any worker's error goes to its own stderr, exit 1.
- CNTK, under MPI only (CNTK's own distributed training; its communicator is the authority on the workers): the
  learner is wrapped in data_parallel_distributed_learner (32 bits, from the first sample), each worker feeds its
  shard of each minibatch, rank 0 reports, saves and tests, and Communicator.finalize() ends a successful run.
  CNTK cannot broadcast a seed, so without --seed its workers order the samples with the fixed seed 0.
"""

import argparse
import math
import os
import sys
import time
import warnings
from itertools import islice
from typing import NamedTuple, Optional

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


class DistributedError(Exception):
    """A distributed run that cannot start (no rendezvous, no peers in time) or that lost a worker: the script
    prints the message alone, exit 1."""


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
    def __init__(self, train_samples, seed, distributed=None):
        import torch

        self.torch = torch
        self.distributed = distributed  # TorchDistributed in a distributed run, else None
        if seed is not None:
            torch.manual_seed(seed)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        else:
            torch.backends.cudnn.benchmark = True
            if distributed is not None:
                torch.manual_seed(distributed.seed)  # rank 0's pick: the same weights and dropout draws everywhere
        if distributed is not None:
            self.device = distributed.device
        else:
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        where = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"
        self.description = "PyTorch {} on {}".format(torch.__version__, where)
        self.network = build_torch_network(torch, ARCHITECTURE, IMAGE_SHAPE).to(self.device)
        self.dropouts = []
        if distributed is not None:
            distributed.broadcast_parameters(self.network)
            self.dropouts = use_shard_dropout(torch, self.network)
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
        if self.device.type != "cuda" or self.distributed is not None:
            return None  # distributed: eager steps, the all-reduce sits between backward and update
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
        """One epoch over the samples in `order`; returns (loss sum, errors). In a distributed run this worker
        takes its shard of each global minibatch and the gradients are summed over the workers (one all-reduce)
        between backward and update; lr and momentum follow the global minibatch's size, and the sums returned
        are the whole epoch's, all workers' together."""
        if self.graphed is not None:
            return self.graphed.train_epoch(order, epoch)
        torch, distributed = self.torch, self.distributed
        features, classes = data
        lr_per_sample = per_epoch(LR_PER_SAMPLE, epoch)
        time_constant = per_epoch(MOMENTUM_TIME_CONSTANT, epoch)
        order = torch.from_numpy(order).to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        errors = torch.zeros((), dtype=torch.int64, device=self.device)
        parameters = list(self.network.parameters())
        self.network.train()
        for start in range(0, len(order), MINIBATCH_SIZE):
            batch = mine = order[start : start + MINIBATCH_SIZE]
            if distributed is not None:
                first, stop = shard_bounds(len(batch), distributed.size, distributed.rank)
                for dropout in self.dropouts:
                    dropout.rows = (len(batch), first, stop)
                mine = batch[first:stop]  # may be empty (more workers than samples): a zero gradient, as it should
            targets = classes[mine]
            outputs = self.network(features[mine].float())
            loss = torch.nn.functional.cross_entropy(outputs, targets, reduction="sum")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if distributed is not None:
                distributed.all_reduce_gradients(parameters)
            self.optimizer.step(lr_per_sample, unit_gain_momentum(len(batch), time_constant))
            loss_sum += loss.detach()
            errors += (outputs.detach().argmax(dim=1) != targets).sum()
        if distributed is not None:
            return distributed.sum_over_workers(loss_sum, errors)
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


def use_shard_dropout(torch, network):
    """Replace the network's dropout layers (a distributed run's) by ShardDropout; returns the new layers."""

    class ShardDropout(torch.nn.Module):
        """Dropout for one worker's shard of a global minibatch: it draws the mask of the WHOLE minibatch, as one
        process's dropout draws it from the same generator (every worker's is seeded alike), and applies the rows
        of its shard, so the workers together drop what the single process drops. The training loop sets `rows`
        to (global minibatch size, shard start, shard stop) before each step."""

        def __init__(self, rate):
            super().__init__()
            self.rate = rate
            self.rows = None

        def forward(self, inputs):
            if not self.training or self.rate == 0:
                return inputs
            total, start, stop = self.rows
            noise = torch.empty((total,) + tuple(inputs.shape[1:]), dtype=inputs.dtype, device=inputs.device)
            noise.bernoulli_(1 - self.rate).div_(1 - self.rate)
            return inputs * noise[start:stop]

    replaced = []
    for index, module in enumerate(network):
        if isinstance(module, torch.nn.Dropout):
            network[index] = ShardDropout(module.p)
            replaced.append(network[index])
    return replaced


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
    def __init__(self, train_samples, seed, distributed=None):
        import cntk as C

        self.C = C
        self.distributed = distributed  # CntkDistributed in a distributed run (under MPI), else None
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
        if distributed is not None:
            # The gradients are summed over the workers (32 bits: no quantisation) from the first sample on; the
            # schedules then count the samples of all workers, so epoch_size stays the whole training set.
            learner = distributed.data_parallel(learner)
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
        if self.distributed is not None:
            return self.train_epoch_distributed(data, order)
        features, labels = data
        loss_sum = error_sum = 0.0
        for start in range(0, len(order), MINIBATCH_SIZE):
            batch = order[start : start + MINIBATCH_SIZE]
            batch_features = features[batch].astype(np.float32)
            self.trainer.train_minibatch({self.features: batch_features, self.labels: labels[batch]})
            loss_sum += self.trainer.previous_minibatch_loss_average * len(batch)
            error_sum += self.trainer.previous_minibatch_evaluation_average * len(batch)
        return loss_sum, int(round(error_sum))

    def train_epoch_distributed(self, data, order):
        """Each worker feeds its shard of each global minibatch; the distributed learner sums the gradients, and
        the trainer's loss and metric averages are then over the whole minibatch (all workers' samples)."""
        features, labels = data
        size, rank = self.distributed.size, self.distributed.rank
        loss_sum = error_sum = 0.0
        for start in range(0, len(order), MINIBATCH_SIZE):
            batch = order[start : start + MINIBATCH_SIZE]
            first, stop = shard_bounds(len(batch), size, rank)
            mine = batch[first:stop]
            if len(mine):
                arguments = {self.features: features[mine].astype(np.float32), self.labels: labels[mine]}
                self.trainer.train_minibatch(arguments)
            else:  # more workers than samples: an empty minibatch still takes part in the aggregation
                self.trainer.train_minibatch({})
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


def choose_backend(train_samples, seed, distributed=None):
    if distributed is not None:  # start_distributed has chosen the framework
        return distributed.backend_class(train_samples, seed, distributed)
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
# Distributed training: data parallelism over the workers of one job, chosen from the environment


class World(NamedTuple):
    size: int
    rank: int
    local_rank: Optional[int]  # None where the launcher does not say
    source: str  # the variable the size came from ("" for a single process)


SINGLE_PROCESS = World(1, 0, 0, "")

# (size, rank, local rank) by launcher, in order of precedence: torch.distributed's (the services set them for
# PyTorch jobs), Open MPI's (mpirun), then PMI's (MPICH, Intel MPI; their local rank is MPI_LOCALRANKID).
WORLD_VARIABLES = (
    ("WORLD_SIZE", "RANK", "LOCAL_RANK"),
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"),
)
MPI_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")  # the workers were started by mpirun
INIT_METHOD_VARIABLE = "AZ_BATCHAI_PYTORCH_INIT_METHOD"
BACKEND_VARIABLE = "AZ_BATCHAI_PYTORCH_BACKEND"
SHARED_JOB_TEMP_VARIABLE = "AZ_BATCHAI_SHARED_JOB_TEMP"
RENDEZVOUS_FILE = "torch_distributed_init"
TIMEOUT_VARIABLE = "BATCHAI_TRAINING_DISTRIBUTED_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 300.0
CNTK_ORDER_SEED = 0  # CNTK's workers cannot share a random pick: without --seed their common order seed is this


def _integer_variable(environ, name, minimum):
    text = environ.get(name, "").strip()
    try:
        value = int(text)
    except ValueError:
        raise DistributedError("{}={!r} is not a whole number".format(name, text)) from None
    if value < minimum:
        raise DistributedError("{}={} is below {}".format(name, value, minimum))
    return value


def detect_world(environ):
    """This process's place among the workers of a run, from the first launcher's variables that are set; a
    world of one (the plain single-process run) where none are."""
    for size_name, rank_name, local_name in WORLD_VARIABLES:
        if not environ.get(size_name, "").strip():
            continue
        size = _integer_variable(environ, size_name, 1)
        if size == 1:
            return SINGLE_PROCESS
        if not environ.get(rank_name, "").strip():
            raise DistributedError("{}={} but {} is not set".format(size_name, size, rank_name))
        rank = _integer_variable(environ, rank_name, 0)
        if rank >= size:
            raise DistributedError("{}={} is not below {}={}".format(rank_name, rank, size_name, size))
        local_rank = _integer_variable(environ, local_name, 0) if environ.get(local_name, "").strip() else None
        return World(size, rank, local_rank, size_name)
    return SINGLE_PROCESS


def shard_bounds(count, workers, rank):
    """The slice [start, stop) of a minibatch of `count` samples that worker `rank` of `workers` takes: contiguous,
    sizes differing by at most one, together the whole minibatch (a worker's share may be empty)."""
    return count * rank // workers, count * (rank + 1) // workers


def shard_sizes(count, workers):
    """How many samples of a minibatch of `count` the workers take, as a phrase: '32', '21 or 22'."""
    low, high = count // workers, -(-count // workers)
    return str(low) if low == high else "{} or {}".format(low, high)


def rendezvous(environ, started_by_mpi=False):
    """torch.distributed's init_method: Batch AI's own variable, else env:// (MASTER_ADDR and MASTER_PORT), else,
    for workers that mpirun started, rank 0's address as MPI tells it (mpi_rendezvous), else a file in the job's
    shared temporary directory."""
    method = environ.get(INIT_METHOD_VARIABLE, "").strip()
    if method:
        return method
    if environ.get("MASTER_ADDR", "").strip():
        if not environ.get("MASTER_PORT", "").strip():
            raise DistributedError("MASTER_ADDR is set but MASTER_PORT is not")
        return "env://"
    found = mpi_rendezvous() if started_by_mpi else None
    if found:
        return found
    shared = environ.get(SHARED_JOB_TEMP_VARIABLE, "").strip()
    if shared:
        return "file://" + os.path.join(os.path.abspath(shared), RENDEZVOUS_FILE)
    raise DistributedError(
        "a distributed run needs a rendezvous: set {}, or MASTER_ADDR and MASTER_PORT, or {}{}".format(
            INIT_METHOD_VARIABLE, SHARED_JOB_TEMP_VARIABLE, " (or install mpi4py)" if started_by_mpi else ""
        )
    )


def mpi_rendezvous():
    """`tcp://<rank 0's host name>:<a free port there>`, told to every worker by MPI itself (mpi4py's broadcast):
    workers that mpirun started on other machines get neither the job's variables nor a directory they share, but
    they can reach rank 0 by its host name. None where mpi4py (or the MPI library it needs) is missing."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError):
        return None
    import socket

    world = MPI.COMM_WORLD
    address = None
    if world.Get_rank() == 0:
        probe = socket.socket()
        try:
            probe.bind(("", 0))  # the port is free now; rank 0's store takes it in a moment
            address = "tcp://{}:{}".format(socket.gethostname(), probe.getsockname()[1])
        finally:
            probe.close()
    return world.bcast(address, root=0)


def communication_backend(environ, cuda):
    """AZ_BATCHAI_PYTORCH_BACKEND lower-cased ('tcp', PyTorch 0.3's backend, is gloo now), else nccl on CUDA and
    gloo on the CPU."""
    name = environ.get(BACKEND_VARIABLE, "").strip().lower()
    if name == "tcp":
        return "gloo"
    return name or ("nccl" if cuda else "gloo")


def distributed_timeout(environ):
    text = environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise DistributedError("{}={!r} is not a positive number of seconds".format(TIMEOUT_VARIABLE, text))
    return seconds


def _first_line(error):
    lines = str(error).strip().splitlines()
    return "{}: {}".format(type(error).__name__, lines[0] if lines else "")


def start_distributed(world, environ, seed):
    """Join the other workers with the framework the run will train with (chosen as choose_backend does)."""
    try:
        import cntk  # noqa: F401
    except ImportError:
        return TorchDistributed(world, environ, seed)
    return CntkDistributed(world, seed)


class TorchDistributed:
    """torch.distributed for the PyTorch back end: the process group, the shared seed, and the all-reduces."""

    def __init__(self, world, environ, seed):
        import datetime

        self.backend_class = TorchBackend
        self.size, self.rank = world.size, world.rank
        self.init_method = rendezvous(environ, started_by_mpi=world.source in MPI_SIZE_VARIABLES)
        self.shown = self.init_method
        if self.init_method == "env://":
            self.shown = "env://{}:{}".format(environ["MASTER_ADDR"].strip(), environ["MASTER_PORT"].strip())
        timeout = distributed_timeout(environ)
        try:
            import torch
            import torch.distributed as dist
        except ImportError:
            raise DataError("neither CNTK nor PyTorch is installed for {}".format(sys.executable)) from None
        self.torch, self.dist = torch, dist
        cuda = torch.cuda.is_available()
        self.backend = communication_backend(environ, cuda)
        if cuda:
            local_rank = world.local_rank if world.local_rank is not None else world.rank
            self.device = torch.device("cuda", local_rank % torch.cuda.device_count())
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        self.allreduce_seconds = 0.0
        self.allreduce_steps = 0
        try:
            dist.init_process_group(
                self.backend,
                init_method=self.init_method,
                world_size=self.size,
                rank=self.rank,
                timeout=datetime.timedelta(seconds=timeout),
            )
        except Exception as error:
            message = "worker {} of {} could not meet the others through {} ({}) within {:g}s: {}"
            raise DistributedError(
                message.format(self.rank, self.size, self.shown, self.backend, timeout, _first_line(error))
            ) from None
        self.seed = seed if seed is not None else self._shared_seed()

    def _failed(self, what, error):
        message = "worker {} of {}: {} failed (another worker stopped?): {}"
        return DistributedError(message.format(self.rank, self.size, what, _first_line(error)))

    def _shared_seed(self):
        """Rank 0's random seed, for every worker: the same weights, orders and dropout draws everywhere."""
        pick = int.from_bytes(os.urandom(4), "little") >> 1 if self.rank == 0 else 0
        value = self.torch.tensor([pick], dtype=self.torch.int64, device=self.device)
        try:
            self.dist.broadcast(value, 0)
        except Exception as error:
            raise self._failed("sharing the seed", error) from None
        return int(value[0])

    def broadcast_parameters(self, network):
        try:
            with self.torch.no_grad():
                for parameter in network.parameters():
                    self.dist.broadcast(parameter, 0)
        except Exception as error:
            raise self._failed("sharing the initial weights", error) from None

    def all_reduce_gradients(self, parameters):
        """Sum each gradient over the workers in ONE all-reduce of them all in one flat buffer; the parameters'
        .grad become views of the sums."""
        torch = self.torch
        flat = torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in parameters]
        )
        started = time.perf_counter()
        try:
            self.dist.all_reduce(flat)
        except Exception as error:
            raise self._failed("the gradients' all-reduce", error) from None
        self.allreduce_seconds += time.perf_counter() - started
        self.allreduce_steps += 1
        offset = 0
        for parameter in parameters:
            count = parameter.numel()
            parameter.grad = flat[offset : offset + count].view_as(parameter)
            offset += count

    def sum_over_workers(self, loss_sum, errors):
        totals = self.torch.stack([loss_sum.double(), errors.double()])
        try:
            self.dist.all_reduce(totals)
        except Exception as error:
            raise self._failed("the epoch's loss all-reduce", error) from None
        return float(totals[0]), int(round(float(totals[1])))

    def describe(self):
        return "Distributed: {} workers ({}, {}), {} samples of each minibatch of {} per worker".format(
            self.size, self.backend, self.shown, shard_sizes(MINIBATCH_SIZE, self.size), MINIBATCH_SIZE
        )

    def summary(self, train_seconds):
        """The all-reduce's wall time per step (the call's time: on CUDA, NCCL's may run on after it returns)."""
        per_step = self.allreduce_seconds / max(self.allreduce_steps, 1)
        share = self.allreduce_seconds / train_seconds * 100.0 if train_seconds > 0 else 0.0
        return "All-reduce: {:0.2f} ms per step ({}), {:0.0f}% of training time".format(
            per_step * 1e3, self.backend, share
        )

    def close(self, finished):
        try:
            if finished:
                # The workers leave together, after which no one needs the rendezvous: its file (file://) goes now,
                # since the workers leave without the finalization that would remove it (see leave()).
                self.dist.barrier()
            self.dist.destroy_process_group()
        except Exception as error:
            if finished:
                raise self._failed("leaving together", error) from None
        if finished and self.rank == 0 and self.init_method.startswith("file://"):
            try:
                os.remove(self.init_method[len("file://"):])
            except OSError:
                pass


class CntkDistributed:
    """CNTK's own data-parallel training under MPI (mpirun): CNTK's communicator is the authority on the workers."""

    def __init__(self, world, seed):
        import cntk.train.distributed as cntk_distributed

        self.backend_class = CntkBackend
        self.cntk_distributed = cntk_distributed
        communicator = cntk_distributed.Communicator
        self.size, self.rank = communicator.num_workers(), communicator.rank()
        if self.size != world.size:
            message = "{} says {} workers but CNTK's MPI sees {}: CNTK trains distributed only when started by mpirun"
            raise DistributedError(message.format(world.source, world.size, self.size))
        self.seed = seed if seed is not None else CNTK_ORDER_SEED
        self.backend = "CNTK over MPI"

    def data_parallel(self, learner):
        return self.cntk_distributed.data_parallel_distributed_learner(
            learner, num_quantization_bits=32, distributed_after=0
        )

    def describe(self):
        return "Distributed: {} workers ({}), {} samples of each minibatch of {} per worker".format(
            self.size, self.backend, shard_sizes(MINIBATCH_SIZE, self.size), MINIBATCH_SIZE
        )

    def summary(self, train_seconds):
        return None  # CNTK does not expose its aggregation's time

    def close(self, finished):
        if finished:  # CNTK: finalize after a successful run only
            self.cntk_distributed.Communicator.finalize()


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


def _quiet(*args, **kwargs):
    pass


def convnet_mnist(
    data_dir, model_dir, epochs=MAX_EPOCHS, train_samples=None, test_samples=None, seed=None, environ=None
):
    """Train, save one model per epoch, test; return the test error rate. In a distributed run (the environment
    says so, see the module's docstring) this process is one worker: only rank 0 reports, saves and tests, and the
    other workers return None."""
    environ = os.environ if environ is None else environ
    world = detect_world(environ)
    if world.size == 1:
        return _convnet_mnist(data_dir, model_dir, epochs, train_samples, test_samples, seed, None)
    distributed = start_distributed(world, environ, seed)
    finished = False
    try:
        result = _convnet_mnist(data_dir, model_dir, epochs, train_samples, test_samples, seed, distributed)
        finished = True
    finally:
        distributed.close(finished)
    return result


def _convnet_mnist(data_dir, model_dir, epochs, train_samples, test_samples, seed, distributed):
    leader = distributed is None or distributed.rank == 0
    report = print if leader else _quiet  # under mpirun every worker's stdout goes to one file: rank 0's alone
    started = time.perf_counter()
    train = load_dataset(os.path.join(data_dir, TRAIN_FILE), train_samples)
    test = load_dataset(os.path.join(data_dir, TEST_FILE), test_samples)
    report(
        "Read {} training and {} test samples from {} in {:0.1f}s".format(
            len(train.classes), len(test.classes), data_dir, time.perf_counter() - started
        )
    )
    if leader:
        try:
            os.makedirs(model_dir, exist_ok=True)
        except OSError as error:
            message = "cannot create the model directory {}: {}".format(model_dir, error.strerror or error)
            raise DataError(message) from None

    epoch_size = len(train.classes)
    backend = choose_backend(epoch_size, seed, distributed)
    report("Framework: {}".format(backend.description))
    shapes = backend.parameter_shapes()
    report("Training {} parameters in {} parameter tensors.".format(sum(int(np.prod(s)) for s in shapes), len(shapes)))
    if distributed is not None:
        report(distributed.describe())
    train_data = backend.dataset(train)
    how = backend.prepare_training(train_data, epoch_size)
    if how:
        report(how)
    report()
    sys.stdout.flush()

    shuffle = np.random.RandomState(seed if distributed is None else distributed.seed)
    train_seconds = 0.0
    for epoch in range(epochs):
        if epoch == 0 or per_epoch(LR_PER_SAMPLE, epoch) != per_epoch(LR_PER_SAMPLE, epoch - 1):
            report("Learning rate per 1 samples: {}".format(per_epoch(LR_PER_SAMPLE, epoch)))
        if epoch == 0 or per_epoch(MOMENTUM_TIME_CONSTANT, epoch) != per_epoch(MOMENTUM_TIME_CONSTANT, epoch - 1):
            report("Momentum time constant: {} samples".format(per_epoch(MOMENTUM_TIME_CONSTANT, epoch)))
        epoch_started = time.perf_counter()
        loss_sum, errors = backend.train_epoch(train_data, shuffle.permutation(epoch_size), epoch)
        seconds = time.perf_counter() - epoch_started
        train_seconds += seconds
        report(epoch_summary(epoch, epochs, loss_sum, errors, epoch_size, seconds))
        sys.stdout.flush()
        if leader:
            backend.save(os.path.join(model_dir, MODEL_FILE.format(epoch)))
    if not leader:
        return None  # every worker holds the same weights: rank 0 tests and exports them

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
    summary = distributed.summary(train_seconds) if distributed is not None else None
    if summary:
        print(summary)
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
    except (DataError, DistributedError) as error:
        sys.stdout.flush()
        print("{}: error: {}".format(parser.prog, error), file=sys.stderr)
        return DATA_ERROR_EXIT
    return 0


def leave(code):
    """Exit with `code`. A worker of a distributed run leaves without the interpreter's finalization: gloo's worker
    threads may still hold tensors then, and releasing them once the interpreter is gone aborts the process ("terminate
    called without an active exception", exit 134, seen in about one run in ten here; PyTorch's own proposed fix,
    destroying the group at exit, is what close() already does). Everything the run wrote is flushed first, and MPI,
    where mpi4py started it, is finalized (mpirun counts a rank that skips it as failed)."""
    try:
        distributed = detect_world(os.environ).size > 1
    except DistributedError:
        distributed = False
    if not distributed:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        mpi.Finalize()
    os._exit(code)


if __name__ == "__main__":
    leave(main())
