"""Data-parallel scaling of training/convnet_mnist.py on this machine: 1, 2 and 4 workers as local processes.

    python benchmarks/distributed_scaling.py [--workers 1 2 4] [--train-samples N] [--test-samples N]
                                             [--epochs N] [--seed N] [--threads N] [--repeat N] [--data DIR]

Each worker count runs the unmodified script: 1 worker is the plain single-process run (no distributed variables),
N > 1 are N processes started as the services start them (WORLD_SIZE, RANK, LOCAL_RANK and a file:// rendezvous in
a fresh temporary directory; gloo on the CPU). The global minibatch stays 64, so every row trains the same steps.
Intra-op threads: each process gets OMP_NUM_THREADS = usable CPUs // workers (at least 1) unless --threads says
otherwise, so N workers never oversubscribe the cores more than one worker does; the table shows the value.
The table gives, per worker count (best of --repeat runs, by steady samples/s): samples/s over all epochs and over
the epochs after the first (steady: the first pays the warm-up), the steady ratio to 1 worker measured in the same
run, the all-reduce time per step and its share of the training time (rank 0's own measure: the wall time of the
all-reduce call, which includes waiting for the slowest worker), and the final test error. Timings only; nothing
is asserted. Needs the MNIST CTF files in data/mnist (python training/prepare_mnist.py) or --data DIR.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO_ROOT, "training", "convnet_mnist.py")
LAUNCH_VARIABLES = (
    "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
    "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_SIZE", "PMI_RANK",
    "MPI_LOCALRANKID", "AZ_BATCHAI_PYTORCH_INIT_METHOD", "AZ_BATCHAI_PYTORCH_BACKEND", "AZ_BATCHAI_SHARED_JOB_TEMP",
)
EPOCH = re.compile(r"^Finished Epoch\[\d+ of \d+\]: .* \* (\d+) (\d+\.\d+)s \( *\d+\.\d samples/s\);$", re.M)
FINAL = re.compile(r"^Final Results: Minibatch\[1-\d+\]: errs = (\d+\.\d+)% \* \d+$", re.M)
ALL_REDUCE = re.compile(r"^All-reduce: (\d+\.\d+) ms per step \((\w+)\), (\d+)% of training time$", re.M)


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run(workers, threads, args):
    """One run of `workers` processes; returns rank 0's parsed numbers."""
    base = {name: value for name, value in os.environ.items() if name not in LAUNCH_VARIABLES}
    base["OMP_NUM_THREADS"] = str(threads)
    arguments = ["--epochs", str(args.epochs), "--train-samples", str(args.train_samples)]
    arguments += ["--test-samples", str(args.test_samples), "--seed", str(args.seed)]
    with tempfile.TemporaryDirectory(prefix="distributed_scaling_") as scratch:
        processes = []
        try:
            for rank in range(workers):
                env = dict(base)
                if workers > 1:
                    env.update(
                        WORLD_SIZE=str(workers), RANK=str(rank), LOCAL_RANK=str(rank),
                        AZ_BATCHAI_PYTORCH_INIT_METHOD="file://" + os.path.join(scratch, "rendezvous"),
                    )
                command = [sys.executable, SCRIPT, args.data, os.path.join(scratch, "models{}".format(rank))]
                processes.append(subprocess.Popen(
                    command + arguments, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            outputs = [process.communicate(timeout=args.timeout) for process in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.communicate()
    failed = [(rank, process.returncode) for rank, process in enumerate(processes) if process.returncode != 0]
    if failed:
        details = "".join(outputs[rank][1][-2000:] for rank, _ in failed)
        raise SystemExit("error: {} workers: rank(s) {} failed:\n{}".format(workers, failed, details))
    stdout = outputs[0][0]
    epochs = [(int(samples), float(seconds)) for samples, seconds in EPOCH.findall(stdout)]
    if len(epochs) != args.epochs or any(out for out, _ in outputs[1:]):
        raise SystemExit("error: {} workers: unexpected output:\n{}".format(workers, stdout))
    steady = epochs[1:]
    reduce = ALL_REDUCE.search(stdout)
    return {
        "samples_per_s": sum(n for n, _ in epochs) / sum(s for _, s in epochs),
        "steady_samples_per_s": sum(n for n, _ in steady) / sum(s for _, s in steady) if steady else None,
        "test_error": float(FINAL.search(stdout).group(1)),
        "all_reduce_ms": float(reduce.group(1)) if reduce else None,
        "all_reduce_share": int(reduce.group(3)) if reduce else None,
        "backend": reduce.group(2) if reduce else "-",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--train-samples", type=int, default=6400)
    parser.add_argument("--test-samples", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS per worker (default: usable CPUs // workers)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per worker count; the best is shown")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("--data", default=os.path.join(REPO_ROOT, "data", "mnist"))
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is the warm-up)")
    if not os.path.exists(os.path.join(args.data, "Train-28x28_cntk_text.txt")):
        print("error: no MNIST CTF files in {} (python training/prepare_mnist.py)".format(args.data))
        return 1

    cpus = usable_cpus()
    print("CPUs: os.cpu_count() = {}, usable (sched_getaffinity) = {}; {} epochs of {} samples, minibatch 64, "
          "seed {}; best of {}".format(os.cpu_count(), cpus, args.epochs, args.train_samples, args.seed, args.repeat))
    sys.stdout.flush()
    results = []
    for workers in args.workers:
        threads = args.threads or max(1, cpus // workers)
        best = None
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = run(workers, threads, args)
            result["wall_s"] = time.perf_counter() - started
            if best is None or result["steady_samples_per_s"] > best["steady_samples_per_s"]:
                best = result
        best.update(workers=workers, threads=threads)
        results.append(best)
        print("{} worker(s), {} thread(s) each: {:.0f} samples/s steady, wall {:.1f}s".format(
            workers, threads, best["steady_samples_per_s"], best["wall_s"]))
        sys.stdout.flush()

    print()
    header = "{:>7s} {:>8s} {:>10s} {:>10s} {:>7s} {:>14s} {:>9s} {:>11s}".format(
        "workers", "threads", "samples/s", "steady", "ratio", "all-reduce ms", "of train", "test error")
    print(header)
    print("-" * len(header))
    anchor = next((r["steady_samples_per_s"] for r in results if r["workers"] == 1), None)
    for result in results:
        ratio = "{:6.2f}x".format(result["steady_samples_per_s"] / anchor) if anchor else "      -"
        reduce_ms = "{:.2f} ({})".format(result["all_reduce_ms"], result["backend"]) if result["all_reduce_ms"] else "-"
        share = "{}%".format(result["all_reduce_share"]) if result["all_reduce_share"] is not None else "-"
        print("{:>7d} {:>8d} {:>10.0f} {:>10.0f} {:>7s} {:>14s} {:>9s} {:>10.2f}%".format(
            result["workers"], result["threads"], result["samples_per_s"], result["steady_samples_per_s"], ratio,
            reduce_ms, share, result["test_error"]))
    print("steady: samples/s over epochs 2..{}; ratio: steady against 1 worker in this run.".format(args.epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
