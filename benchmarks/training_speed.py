"""Training speed of training/convnet_mnist.py's loop next to a plain eager PyTorch loop of the same model.

    python benchmarks/training_speed.py [--device auto|cpu|cuda] [--epochs N] [--seeds S ...]
                                        [--train-samples N] [--test-samples N] [--variants] [--check]

Each loop runs in its own process on the same device, from the same seeded initial weights and sample order:
- eager: the anchor, a plain PyTorch loop (index the minibatch, forward, summed cross-entropy, backward, the
  script's unit-gain momentum step), as the script ran before its CUDA graphs;
- script: the script's own training loop (TorchBackend.prepare_training, then train_epoch per epoch): CUDA graphs
  on a GPU, the eager loop on the CPU;
- script-cl (--variants, CUDA only, first seed): the script's loop with the network in channels-last memory format.
The table gives samples/s over all epochs (training time only, each epoch ended by its loss read-back), the ratio
to the eager loop of the same seed, the time to first step (process start to the first epoch's start: imports,
CUDA start, data load, model build, graph capture) and the final test error over the test set.
--check first compares the script's steps with the eager loop's on the device (dropout off, where the CUDA graphs
draw other random numbers) and fails when the weights differ beyond float rounding.
Needs the MNIST CTF files in data/mnist (python training/prepare_mnist.py) or --data DIR.
"""

import argparse
import copy
import json
import os
import subprocess
import sys
import time
import traceback

LAUNCHED = time.time()
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_ROOT, "training"))

LOOPS = ("eager", "script")
VARIANTS = ("script-cl",)


def load(data_dir, train_samples, test_samples):
    import convnet_mnist

    train = convnet_mnist.load_dataset(os.path.join(data_dir, convnet_mnist.TRAIN_FILE), train_samples)
    test = convnet_mnist.load_dataset(os.path.join(data_dir, convnet_mnist.TEST_FILE), test_samples)
    return train, test


def eager_epoch(backend, data, order, epoch):
    """The anchor: one epoch of the plain eager loop, step by step."""
    import convnet_mnist as cm

    torch = backend.torch
    features, classes = data
    lr = cm.per_epoch(cm.LR_PER_SAMPLE, epoch)
    time_constant = cm.per_epoch(cm.MOMENTUM_TIME_CONSTANT, epoch)
    order = torch.from_numpy(order).to(backend.device)
    loss_sum = torch.zeros((), device=backend.device)
    errors = torch.zeros((), dtype=torch.int64, device=backend.device)
    backend.network.train()
    for start in range(0, len(order), cm.MINIBATCH_SIZE):
        batch = order[start : start + cm.MINIBATCH_SIZE]
        targets = classes[batch]
        outputs = backend.network(features[batch].float())
        loss = torch.nn.functional.cross_entropy(outputs, targets, reduction="sum")
        backend.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        backend.optimizer.step(lr, cm.unit_gain_momentum(len(batch), time_constant))
        loss_sum += loss.detach()
        errors += (outputs.detach().argmax(dim=1) != targets).sum()
    return float(loss_sum), int(errors)


def worker(args):
    """One loop, one seed, in this process; prints one JSON line."""
    import numpy as np

    import torch

    import convnet_mnist as cm

    imported = time.time()
    train, test = load(args.data, args.train_samples, args.test_samples)
    loaded = time.time()
    epoch_size = len(train.classes)
    backend = cm.TorchBackend(epoch_size, args.seed)
    if args.worker == "script-cl":
        if backend.device.type != "cuda":
            raise SystemExit("script-cl runs on CUDA only")
        backend.network.to(memory_format=torch.channels_last)
    train_data = backend.dataset(train)
    how = None
    if args.worker != "eager":
        how = backend.prepare_training(train_data, epoch_size)
    if backend.device.type == "cuda":
        torch.cuda.synchronize()
    ready = time.time()
    shuffle = np.random.RandomState(args.seed)
    epochs = []
    for epoch in range(args.epochs):
        order = shuffle.permutation(epoch_size)
        started = time.perf_counter()
        if args.worker == "eager":
            loss_sum, errors = eager_epoch(backend, train_data, order, epoch)
        else:
            loss_sum, errors = backend.train_epoch(train_data, order, epoch)
        epochs.append((time.perf_counter() - started, loss_sum / epoch_size, errors * 100.0 / epoch_size))
    test_data = backend.dataset(test)
    test_size = len(test.classes)
    test_errors = sum(
        backend.count_errors(test_data, start, min(start + cm.TEST_MINIBATCH_SIZE, test_size))
        for start in range(0, test_size, cm.TEST_MINIBATCH_SIZE)
    )
    train_seconds = sum(seconds for seconds, _, _ in epochs)
    result = {
        "loop": args.worker,
        "seed": args.seed,
        "device": backend.description,
        "how": how,
        "epochs": args.epochs,
        "samples_per_s": epoch_size * args.epochs / train_seconds,
        "steady_samples_per_s": (
            epoch_size * (args.epochs - 1) / (train_seconds - epochs[0][0]) if args.epochs > 1 else None
        ),
        "train_s": train_seconds,
        "step_us": train_seconds / (args.epochs * -(-epoch_size // cm.MINIBATCH_SIZE)) * 1e6,
        "first_step_s": ready - args.launched,
        "import_s": imported - args.launched,
        "load_s": loaded - imported,
        "setup_s": ready - loaded,
        "epoch_loss": [round(loss, 6) for _, loss, _ in epochs],
        "epoch_metric_percent": [round(metric, 3) for _, _, metric in epochs],
        "test_error_percent": test_errors * 100.0 / test_size,
    }
    print("RESULT " + json.dumps(result))


def check_graphed_steps(torch, samples=200, epochs=(0, 5, 12), seed=3, dropout=None):
    """The script's steps (GraphedTraining: CUDA graphs on a GPU, the same operations eagerly on the CPU) against
    the eager loop, from the same weights over the same orders, over epochs of both momentum settings with a short
    last minibatch. Dropout stays on where both draw the same random numbers (the CPU), and is off by default with
    CUDA graphs. Returns per epoch (eager loss sum, graphed loss sum, eager errors, graphed errors, largest weight
    difference)."""
    import numpy as np

    import convnet_mnist as cm

    backend = cm.TorchBackend(samples, seed)
    use_graphs = backend.device.type == "cuda"
    if dropout is None:
        dropout = not use_graphs
    if not dropout:
        for module in backend.network.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    rng = np.random.RandomState(seed)
    features = rng.randint(0, 256, size=(samples, 784)).astype(np.uint8)
    classes = rng.randint(0, cm.NUM_CLASSES, size=samples).astype(np.int64)
    data = backend.dataset(cm.Dataset(features, classes))
    twin = copy.deepcopy(backend.network)
    graphed = cm.GraphedTraining(torch, twin, data, samples, use_graphs=use_graphs)
    results = []
    for epoch in epochs:
        order = rng.permutation(samples)
        torch.manual_seed(seed + epoch)
        eager = backend.train_epoch(data, order, epoch)
        torch.manual_seed(seed + epoch)
        steps = graphed.train_epoch(order, epoch)
        with torch.no_grad():
            difference = max(
                float((mine - theirs).abs().max())
                for mine, theirs in zip(backend.network.parameters(), twin.parameters())
            )
        results.append((eager[0], steps[0], eager[1], steps[1], difference))
    return results


def run_check(args):
    """Prints the check's lines; returns whether it passed (an exception is printed and fails it)."""
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    on_cuda = torch.cuda.is_available()
    label = "CUDA graphs, dropout off" if on_cuda else "CPU, the graphs' operations run eagerly, dropout on"
    try:
        results = check_graphed_steps(torch)
    except Exception:
        traceback.print_exc(file=sys.stdout)
        print("check FAILED: the script's steps could not run")
        return False
    for epoch, (eager_loss, graphed_loss, eager_errors, graphed_errors, difference) in zip((0, 5, 12), results):
        print(
            "check ({}), epoch {:2d}: loss sum eager {:.4f} script {:.4f}; errors {} / {}; "
            "largest weight difference {:.2e}".format(
                label, epoch, eager_loss, graphed_loss, eager_errors, graphed_errors, difference
            )
        )
    worst = max(result[4] for result in results)
    loss_gap = max(abs(result[0] - result[1]) / max(abs(result[0]), 1e-9) for result in results)
    if worst > 1e-4 or loss_gap > 1e-4:
        print("check FAILED: the script's steps differ from the eager loop's")
        return False
    print("check passed: the script's steps take the eager loop's steps")
    return True


def profile(args):
    """Where a CUDA-graph step's time goes: the Python loop's time to enqueue N steps against their time on the GPU
    (enqueue close to total: bound by the CPU), then the step's kernels as the profiler sees them."""
    import numpy as np
    import torch

    import convnet_mnist as cm

    train, _ = load(args.data, args.train_samples, 1)
    epoch_size = len(train.classes)
    backend = cm.TorchBackend(epoch_size, args.seeds[0])
    if backend.device.type != "cuda":
        raise SystemExit("--profile needs CUDA")
    data = backend.dataset(train)
    print(backend.prepare_training(data, epoch_size))
    steps = backend.graphed
    if steps is None:
        raise SystemExit("no CUDA graphs to profile")
    order = np.random.RandomState(0).permutation(epoch_size)
    steps.train_epoch(order, 0)
    graph, indices = steps.graphs[cm.MINIBATCH_SIZE], steps.indices[cm.MINIBATCH_SIZE]
    source = torch.from_numpy(order).to(backend.device)
    count = 900
    for attempt in range(2):
        torch.cuda.synchronize()
        started = time.perf_counter()
        for step in range(count):
            indices.copy_(source[step * 64 : step * 64 + 64])
            graph.replay()
        enqueued = time.perf_counter()
        torch.cuda.synchronize()
        finished = time.perf_counter()
    print("{} steps: enqueue {:.1f} us/step, total {:.1f} us/step ({:,.0f} samples/s)".format(
        count, (enqueued - started) / count * 1e6, (finished - started) / count * 1e6,
        count * 64 / (finished - started)))
    replays_only = time.perf_counter()
    for step in range(count):
        graph.replay()
    torch.cuda.synchronize()
    print("replay alone: {:.1f} us/step".format((time.perf_counter() - replays_only) / count * 1e6))
    try:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        replays = 20
        with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for step in range(replays):
                indices.copy_(source[step * 64 : step * 64 + 64])
                graph.replay()
            torch.cuda.synchronize()
        averages = prof.key_averages()
        kernels = [event for event in averages if "CUDA" in str(getattr(event, "device_type", ""))]
        total = sum(getattr(event, "self_device_time_total", 0) or 0 for event in kernels)
        print("profiler: {:.1f} kernels and {:.1f} us of GPU time per step".format(
            sum(event.count for event in kernels) / replays, total / replays))
        print(averages.table(sort_by="self_device_time_total", row_limit=45, max_name_column_width=70))
    except Exception as error:  # a diagnostic only
        print("profiler failed: {}: {}".format(type(error).__name__, error))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--data", default=os.path.join(REPO_ROOT, "data", "mnist"))
    parser.add_argument("--train-samples", type=int)
    parser.add_argument("--test-samples", type=int)
    parser.add_argument("--variants", action="store_true", help="also time script-cl (channels-last, CUDA)")
    parser.add_argument("--check", action="store_true", help="first check the script's steps against eager ones")
    parser.add_argument("--profile", action="store_true", help="only profile the CUDA graph's step (CUDA)")
    parser.add_argument("--worker", choices=LOOPS + VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0
    if args.profile:
        profile(args)
        return 0

    env = dict(os.environ)
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif args.device == "cuda":
        probe = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
            env=env, capture_output=True, text=True, check=False,
        )
        if probe.stdout.strip() != "True":
            print("error: --device cuda, but torch sees no CUDA device ({})".format(probe.stderr.strip()[-300:]))
            return 1
    check_passed = run_check(args) if args.check else True
    sys.stdout.flush()

    results = []
    for seed in args.seeds:
        with_variants = args.variants and args.device != "cpu" and seed == args.seeds[0]
        for loop in LOOPS + (VARIANTS if with_variants else ()):
            command = [sys.executable, os.path.abspath(__file__), "--worker", loop, "--seed", str(seed)]
            command += ["--epochs", str(args.epochs), "--data", args.data]
            if args.train_samples:
                command += ["--train-samples", str(args.train_samples)]
            if args.test_samples:
                command += ["--test-samples", str(args.test_samples)]
            command += ["--launched", repr(time.time())]
            run = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
            if run.returncode != 0 or not lines:
                print("error: the {} loop (seed {}) failed, exit {}:\n{}{}".format(
                    loop, seed, run.returncode, run.stdout[-2000:], run.stderr[-4000:]))
                return 1
            result = json.loads(lines[-1][len("RESULT ") :])
            results.append(result)
            print("{} seed {}: {}".format(loop, seed, json.dumps(result)))
            sys.stdout.flush()

    print()
    print("Device: {}; {} epochs of {} samples, minibatch 64".format(
        results[0]["device"], args.epochs, args.train_samples or 60000))
    header = "{:10s} {:>4s} {:>11s} {:>8s} {:>8s} {:>13s} {:>9s} {:>11s}".format(
        "loop", "seed", "samples/s", "steady", "ratio", "first step s", "step us", "test error")
    print(header)
    print("-" * len(header))
    anchors = {result["seed"]: result["samples_per_s"] for result in results if result["loop"] == "eager"}
    for result in results:
        steady = result["steady_samples_per_s"]
        print("{:10s} {:>4d} {:>11.0f} {:>8s} {:>7.2f}x {:>13.2f} {:>9.1f} {:>10.2f}%".format(
            result["loop"], result["seed"], result["samples_per_s"],
            "{:.0f}".format(steady) if steady else "-",
            result["samples_per_s"] / anchors[result["seed"]], result["first_step_s"], result["step_us"],
            result["test_error_percent"]))
    for result in results:
        if result["how"]:
            print("{} seed {}: {}".format(result["loop"], result["seed"], result["how"]))
    return 0 if check_passed else 1


if __name__ == "__main__":
    sys.exit(main())
