"""How long `batchai-spec plan` takes on a converged spec, and how many HTTP requests it makes.

Two specs, each applied first (`apply -y --no-wait`, then its jobs waited for) against an emulator served by
`batchai-spec emulator serve` in a subprocess (delays scaled to zero):
- the sample spec (specs/mnist-cntk.yaml) copied into a temporary project, with stand-ins for its script and data
  files of the real sizes (25,445 / 111,735,994 / 18,649,443 bytes; `--small` makes them a few bytes), since plan
  hashes every file it uploads;
- a generated sweep: 200 custom_toolkit jobs, each reading one of 200 small files in 20 directories.

For each, the wall time of `plan` as a CLI subprocess (median of --runs), next to `batchai-spec --version` as the
start-up baseline (and as a ratio to it: the goal of issue 11 was 3x for the sample); then, in this process, the plan's own time split into building the graph (spec, file hashes)
and reading the live state, and the number of HTTP requests it made (counted by wrapping requests.Session.send).
Subprocesses get a bytecode cache in a temporary directory (PYTHONPYCACHEPREFIX), as an installed tool has one,
even where PYTHONDONTWRITEBYTECODE is set. `--checkout DIR` measures the batchai_spec package found in DIR instead
of this repository's (e.g. an older commit unpacked with `git archive COMMIT batchai_spec | tar -x -C DIR`), for
before/after comparisons. Run from the repository root:

    python benchmarks/plan_benchmark.py [--runs 5] [--small] [--profile] [--checkout DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]

SAMPLE_FILES = {  # the sample's uploads and their real sizes
    "training/convnet_mnist.py": 25_445,
    "data/mnist/Train-28x28_cntk_text.txt": 111_735_994,
    "data/mnist/Test-28x28_cntk_text.txt": 18_649_443,
}
SWEEP_JOBS = 200
SWEEP_DIRECTORIES = 20
CHECKOUT = REPOSITORY
ENVIRONMENT = {**os.environ, "NO_COLOR": "1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="CLI runs per measurement (the median is shown)")
    parser.add_argument("--small", action="store_true", help="stand-ins of a few bytes instead of the real sizes")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of the sample's plan")
    parser.add_argument("--checkout", type=Path, default=REPOSITORY, help="directory holding the batchai_spec to measure")
    options = parser.parse_args()
    global CHECKOUT
    CHECKOUT = options.checkout.resolve()
    sys.path.insert(0, str(CHECKOUT))
    with tempfile.TemporaryDirectory(prefix="plan-benchmark-") as scratch:
        root = Path(scratch)
        ENVIRONMENT.update(PYTHONDONTWRITEBYTECODE="", PYTHONPYCACHEPREFIX=str(root / "bytecode"))
        state_dir = root / "state"
        specs = {
            f"sample ({'small' if options.small else 'real-size'} stand-ins)": _sample_project(root / "sample", options.small),
            f"sweep ({SWEEP_JOBS} jobs, {SWEEP_JOBS} files)": _sweep_project(root / "sweep"),
        }
        with _served_emulator(state_dir):
            for spec in specs.values():
                _converge(spec, state_dir)
            baseline, baseline_cpu = _median_seconds(["--version"], options.runs)
            print(f"checkout: {CHECKOUT}; medians of {options.runs} runs; wall (CPU of the command) in seconds")
            print(f"batchai-spec --version: {baseline:6.3f} ({baseline_cpu:.3f})")
            for name, spec in specs.items():
                cli, cli_cpu = _median_seconds(["plan", str(spec), "--state-dir", str(state_dir)], options.runs)
                load_s, graph_s, read_s, requests = _in_process_plan(spec, state_dir)
                print(
                    f"plan, {name}: {cli:6.3f} ({cli_cpu:.3f}), {cli - baseline:+.3f} over --version, "
                    f"{cli / baseline:.1f}x its wall ({cli_cpu / baseline_cpu:.1f}x its CPU); in process: "
                    f"load {load_s:.3f}, graph {graph_s:.3f}, live read + diff {read_s:.3f}; "
                    f"{sum(requests.values())} HTTP requests "
                    f"({', '.join(f'{count} {kind}' for kind, count in requests.most_common())})"
                )
            if options.profile:
                _profile(next(iter(specs.values())), state_dir)


def _sample_project(root: Path, small: bool) -> Path:
    (root / "specs").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    spec = root / "specs" / "mnist-cntk.yaml"
    shutil.copy(REPOSITORY / "specs" / "mnist-cntk.yaml", spec)
    block = bytes(range(32, 127)) * 11_000 + b"\n"  # ~1 MB of text-like bytes
    for path, size in SAMPLE_FILES.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as handle:
            remaining = 3 if small else size
            while remaining > 0:
                handle.write(block[:remaining])
                remaining -= len(block)
    return spec


def _sweep_project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    for index in range(SWEEP_JOBS):
        path = root / "inputs" / f"part{index % SWEEP_DIRECTORIES:02d}" / f"file{index:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"input {index}\n")
    spec = root / "sweep.yaml"
    spec.write_text(
        f"""\
version: 1
name: plan-benchmark-sweep
resource_group: {{name: rg-sweep, location: eastus}}
storage:
  account: {{name: sweepstore}}
  file_shares:
    - name: sweep
      quota_gb: 10
      uploads: [{{source: "inputs/**/*", destination: inputs/}}]
workspace: {{name: ws-sweep}}
clusters:
  - name: cpu
    vm_size: STANDARD_D2_V2
    scale: {{manual: {{target_node_count: 4}}}}
    user_account: {{admin_user_name: sweeper, ssh_public_key: ssh-ed25519 AAAAbenchmark}}
    node_setup:
      mount_volumes:
        azure_file_shares: [{{share: sweep, relative_mount_path: sweep}}]
experiments:
  - name: sweep
    jobs:
{{% for index in range({SWEEP_JOBS}) %}}
      - name: job{{{{ '%03d' % index }}}}
        cluster: cpu
        node_count: 1
        input_directories:
          DATA: $AZ_BATCHAI_MOUNT_ROOT/sweep/inputs/part{{{{ '%02d' % (index % {SWEEP_DIRECTORIES}) }}}}
        std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/sweep
        custom_toolkit:
          command_line: cat $AZ_BATCHAI_INPUT_DATA/file{{{{ '%03d' % index }}}}.txt
{{% endfor %}}
"""
    )
    return spec


@contextmanager
def _served_emulator(state_dir: Path):
    environment = {**ENVIRONMENT, "BATCHAI_EMULATOR_DELAY_SCALE": "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "batchai_spec", "emulator", "serve", "--state-dir", str(state_dir)],
        cwd=CHECKOUT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        _poll(lambda: (state_dir / "endpoint.json").exists() or server.poll() is not None, "the emulator to start")
        if server.poll() is not None:
            raise SystemExit(f"the emulator did not start: {server.stderr.read().decode()}")
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


def _poll(done, what: str, timeout_s: float = 600.0) -> None:
    deadline, pause = time.monotonic() + timeout_s, 0.05
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def _cli(arguments: list[str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "batchai_spec", *arguments], cwd=CHECKOUT, capture_output=True, text=True,
        env=ENVIRONMENT,
    )
    if check and result.returncode != 0:
        raise SystemExit(f"batchai-spec {' '.join(arguments)} failed ({result.returncode}): {result.stderr}")
    return result


def _converge(spec: Path, state_dir: Path) -> None:
    """Apply, wait until no job is queued or running (so that no job competes for the CPU), check the plan is empty."""
    from batchai_spec.services.azure.clients import Clients
    from batchai_spec.services.azure.endpoint import local_endpoint
    from batchai_spec.spec import load_spec

    _cli(["apply", str(spec), "-y", "--no-wait", "--state-dir", str(state_dir)])
    spec_model = load_spec(spec).spec
    clients = Clients(local_endpoint(state_dir))
    rg, workspace = spec_model.resource_group.name, spec_model.workspace.name

    def jobs_ended() -> bool:
        return all(
            job.execution_state in ("succeeded", "failed")
            for experiment in spec_model.experiments
            for job in clients.batchai.jobs.list_by_experiment(rg, workspace, experiment.name)
        )

    _poll(jobs_ended, f"the jobs of {spec.name} to end")
    check = _cli(["plan", str(spec), "--state-dir", str(state_dir), "--detailed-exitcode"], check=False)
    if check.returncode != 0:
        raise SystemExit(f"{spec.name} did not converge: exit {check.returncode}\n{check.stdout}{check.stderr}")


def _median_seconds(arguments: list[str], runs: int) -> tuple[float, float]:
    """Median wall time and CPU time (user + system) of the command, after one run that fills the bytecode cache."""
    _cli(arguments)
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        _cli(arguments)
        wall.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(wall), statistics.median(cpu)


@contextmanager
def _counted_requests():
    """requests.Session.send wrapped: every HTTP request the SDKs make, by service and method."""
    import requests

    counts: Counter[str] = Counter()
    original = requests.Session.send

    def send(self, request, **options):
        service = "files" if "/providers/" not in request.url and "/subscriptions/" not in request.url else "ARM"
        counts[f"{service} {request.method}"] += 1
        return original(self, request, **options)

    requests.Session.send = send
    try:
        yield counts
    finally:
        requests.Session.send = original


def _in_process_plan(spec: Path, state_dir: Path) -> tuple[float, float, float, Counter]:
    """A second plan in this process (imports and code paths warm): load, graph and read+diff times, requests."""
    from batchai_spec.services.azure.endpoint import EndpointChoice
    from batchai_spec.session import Session
    from batchai_spec.spec import load_spec

    Session(load_spec(spec), EndpointChoice("local", state_dir)).plan()
    started = time.perf_counter()
    loaded = load_spec(spec)
    load_s = time.perf_counter() - started
    session = Session(loaded, EndpointChoice("local", state_dir))
    session.endpoint  # connecting reads endpoint.json only
    started = time.perf_counter()
    session.graph
    graph_s = time.perf_counter() - started
    with _counted_requests() as counts:
        started = time.perf_counter()
        plan, _ = session.plan()
        read_s = time.perf_counter() - started
    if plan.has_changes:
        raise SystemExit(f"{spec.name}: the in-process plan has changes: {plan.summary()}")
    return load_s, graph_s, read_s, counts


def _profile(spec: Path, state_dir: Path) -> None:
    """Where a CLI plan's time goes: cProfile of the whole command, then import time by top-level package."""
    arguments = ["-m", "batchai_spec", "plan", str(spec), "--state-dir", str(state_dir)]
    with tempfile.TemporaryDirectory() as scratch:
        profile = Path(scratch) / "plan.prof"
        subprocess.run([sys.executable, "-m", "cProfile", "-o", str(profile), *arguments], cwd=CHECKOUT,
                       env=ENVIRONMENT, capture_output=True, check=True)
        report = io.StringIO()
        pstats.Stats(str(profile), stream=report).sort_stats("cumulative").print_stats(30)
        print(report.getvalue())
    imports = subprocess.run([sys.executable, "-X", "importtime", *arguments], cwd=CHECKOUT, env=ENVIRONMENT,
                             capture_output=True, text=True, check=True).stderr
    by_package: Counter[str] = Counter()
    for line in imports.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[0].strip().isdigit():
            name = fields[2].strip()
            parts = name.split(".")
            by_package[".".join(parts[:3] if parts[0] == "azure" else parts[:2] if parts[0] == "batchai_spec" else parts[:1])] += int(fields[0])
    print(f"import time (self, -X importtime): {sum(by_package.values()) / 1e6:.3f} s in all; the largest:")
    for package, microseconds in by_package.most_common(15):
        print(f"  {microseconds / 1e3:7.1f} ms  {package}")


if __name__ == "__main__":
    main()
