"""The node-side launcher of `--service batch` (batchai_spec/services/batch/launcher/launcher.py), run where Batch
runs it: as the task (or the pool's start task) on an emulated Batch node, from the share the pool mounts, through
the unmodified SDKs (see launcher_support.py). It must reproduce Batch AI's node contract: the AZ_BATCHAI_*
variables, the output layout on the share, job preparation, the toolkit's command with its output both in the
task's files and in stdouterr, exit codes, secrets that reach the processes and nothing else, the setup task's
logs, one clear line and exit code 2 for a bad description; and it must stay Python 3.5 source."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import shlex
import shutil
import sys
import tokenize
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from tests.services.batch.launcher_support import (  # noqa: F401  (fixtures by name)
    LAUNCHER_SOURCE,
    MOUNT,
    MOUNT_ROOT,
    LauncherWorld,
    batch_context,
    batch_mgmt,
    expected_gpus,
    launch_description,
    launcher_cluster,
    launcher_command,
    launcher_world,
    poll,
    pool_body,
    segment,
)
from tests.emulator_clients import unique_name

PROBE = """\
import json, os, sys
names = sorted(name for name in os.environ if name.startswith("AZ_BATCHAI_"))
values = ("AZ_BATCHAI_NUM_GPUS", "AZ_BATCHAI_TASK_INDEX", "AZ_BATCHAI_PYTORCH_INIT_METHOD", "AZ_BATCHAI_MPI_HOST_FILE")
report = {
    "env": {name: os.environ[name] for name in names},
    "directories": {name: os.path.isdir(os.environ[name]) for name in names if name not in values},
    "hostfile": open(os.environ["AZ_BATCHAI_MPI_HOST_FILE"]).read(),
    "other": {name: os.environ.get(name) for name in ("PYTHONUNBUFFERED", "GREETING")},
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "executable": sys.executable,
}
with open(os.path.join(os.environ["AZ_BATCHAI_OUTPUT_PROBE"], "report.json"), "w") as handle:
    json.dump(report, handle)
print("probed")
"""

TRAIN = """\
import os, sys, time
data, model, gate, code = sys.argv[1:5]
print("epoch 1 data=" + os.path.basename(data))
sys.stderr.write("progress 50%\\n")
deadline = time.time() + 60
while not os.path.exists(gate) and time.time() < deadline:
    time.sleep(0.02)
with open(os.path.join(model, "ConvNet_MNIST_0.dnn"), "w") as handle:
    handle.write("weights")
print("epoch 2")
sys.exit(int(code))
"""

SECRET_CHECK = """\
import hashlib, os, sys
from_env = hashlib.sha256(os.environ["API_TOKEN"].encode()).hexdigest()
from_argv = hashlib.sha256(sys.argv[2].encode()).hexdigest()
print(from_env)
print(from_argv)
sys.exit(0 if from_env == from_argv else 9)
"""


def scripts(world: LauncherWorld) -> str:
    """Upload the test programs (once per world); their directory as a launch path."""
    if not world.share_path("scripts/probe.py").exists():
        world.upload("scripts/probe.py", PROBE)
        world.upload("scripts/train.py", TRAIN)
        world.upload("scripts/secret_check.py", SECRET_CHECK)
    return f"{MOUNT_ROOT}/scripts"


# --------------------------------------------------------------------------------------------------- the contract


def test_the_node_contract_seen_from_inside_a_running_task(launcher_world: LauncherWorld):
    world = launcher_world
    launch = launch_description(
        "custom", {"commandLine": "python3 $AZ_BATCHAI_INPUT_SCRIPTS/probe.py custom"},
        input_directories=[{"id": "SCRIPTS", "path": "${AZ_BATCHAI_MOUNT_ROOT}/" + MOUNT + "/scripts"},
                           {"id": "LITERAL", "path": "$NOT_DEFINED_ANYWHERE/data"}],
        output_directories=[{"id": "PROBE", "pathPrefix": MOUNT_ROOT, "pathSuffix": "probe"},
                            {"id": "MODEL", "pathPrefix": MOUNT_ROOT}],
    )
    scripts(world)
    run = world.run(launch, env={"GREETING": "hello"})
    assert run.exit_code == 0, run.stderr
    assert (run.stdout, run.stderr) == ("probed\n", "")

    seg = launch["output_segment"]
    report = json.loads(world.download(f"{seg}/outputs/probe/report.json"))  # written into the output directory
    mounts = str(world.mounts_dir)
    wd = str(world.task_dir(run.job_id) / "wd")
    job_temp = f"{wd}/batchai/jobs/{seg.rsplit('/', 1)[1]}"
    assert report["env"] == {
        "AZ_BATCHAI_MOUNT_ROOT": mounts,
        "AZ_BATCHAI_JOB_MOUNT_ROOT": f"{wd}/batchai/mounts",
        "AZ_BATCHAI_JOB_TEMP_DIR": f"{wd}/batchai/jobs",
        "AZ_BATCHAI_JOB_TEMP": job_temp,
        "AZ_BATCHAI_SHARED_JOB_TEMP": f"{job_temp}/shared",
        "AZ_BATCHAI_MPI_HOST_FILE": f"{job_temp}/hostfile",
        "AZ_BATCHAI_NUM_GPUS": str(expected_gpus()),
        "AZ_BATCHAI_TASK_INDEX": "0",
        "AZ_BATCHAI_STDOUTERR_DIR": f"{mounts}/{MOUNT}/{seg}/stdouterr",
        "AZ_BATCHAI_INPUT_SCRIPTS": f"{mounts}/{MOUNT}/scripts",
        "AZ_BATCHAI_INPUT_LITERAL": "$NOT_DEFINED_ANYWHERE/data",  # names the node does not define stay
        "AZ_BATCHAI_OUTPUT_PROBE": f"{mounts}/{MOUNT}/{seg}/outputs/probe",
        "AZ_BATCHAI_OUTPUT_MODEL": f"{mounts}/{MOUNT}/{seg}/outputs",
    }
    assert report["directories"] == {name: name != "AZ_BATCHAI_INPUT_LITERAL" for name in report["directories"]}
    assert report["hostfile"] == f"localhost slots={max(expected_gpus(), 1)}\n"
    assert report["other"] == {"PYTHONUNBUFFERED": "1", "GREETING": "hello"}
    assert (report["argv"], report["cwd"]) == (["custom"], wd)
    # Batch AI's layout on the share, through the Files API.
    listing = {item.name for item in world.share_client.get_directory_client(f"{seg}/stdouterr")
               .list_directories_and_files()}
    assert listing == {"execution.log", "stdout.txt", "stderr.txt"}
    assert world.download(f"{seg}/stdouterr/stdout.txt") == "probed\n"

    # A per-node toolkit: its task index, PyTorch's init method, the launcher's Python when none is named.
    pytorch = launch_description(
        "pytorch", {"pythonScriptFilePath": "$AZ_BATCHAI_INPUT_SCRIPTS/probe.py",
                    "commandLineArgs": "pytorch $AZ_BATCHAI_TASK_INDEX"},
        input_directories=[{"id": "SCRIPTS", "path": f"{MOUNT_ROOT}/scripts"}],
        output_directories=[{"id": "PROBE", "pathPrefix": MOUNT_ROOT, "pathSuffix": "probe"}],
    )
    run = world.run(pytorch)
    assert run.exit_code == 0, run.stderr
    report = json.loads(world.download(f"{pytorch['output_segment']}/outputs/probe/report.json"))
    assert report["argv"] == ["pytorch", "0"]
    shared = report["env"]["AZ_BATCHAI_SHARED_JOB_TEMP"]
    assert report["env"]["AZ_BATCHAI_PYTORCH_INIT_METHOD"] == f"file://{shared}/pytorch_init"
    assert report["executable"] == sys.executable  # the node image's python3 (the emulator's job Python)


def test_a_python_script_toolkit_tees_its_output_live_and_passes_on_its_exit_code(launcher_world: LauncherWorld):
    world = launcher_world
    scripts(world)
    world.upload("sample/readme.txt", "MNIST")
    gate = f"gates/{unique_name('gate')}"
    launch = launch_description(
        "cntk", {"pythonScriptFilePath": "$AZ_BATCHAI_INPUT_SAMPLE/../scripts/train.py",
                 "pythonInterpreterPath": "/opt/no-such/python3",
                 "commandLineArgs": f"$AZ_BATCHAI_INPUT_SAMPLE $AZ_BATCHAI_OUTPUT_MODEL {MOUNT_ROOT}/{gate} 0"},
        input_directories=[{"id": "SAMPLE", "path": f"{MOUNT_ROOT}/sample"}],
        output_directories=[{"id": "MODEL", "pathPrefix": MOUNT_ROOT, "pathSuffix": "Models"}],
    )
    seg = launch["output_segment"]
    job_id, task_id = world.start(launch)
    # While it runs: the task's stdout.txt (a ranged read, as the tool tails it) and stdouterr on the share.
    poll(lambda: world.task_file_so_far(job_id, task_id, "stdout.txt"), lambda text: text == "epoch 1 data=sample\n",
         what="the task's stdout.txt")
    first = b"".join(world.client.download_task_file(job_id, task_id, "stdout.txt", ocp_range="bytes=0-6"))
    assert first == b"epoch 1"
    assert poll(lambda: world.download(f"{seg}/stdouterr/stdout.txt"), lambda text: bool(text)) == \
        "epoch 1 data=sample\n"
    assert poll(lambda: world.download(f"{seg}/stdouterr/stderr.txt"), lambda text: bool(text)) == "progress 50%\n"
    assert world.client.get_task(job_id, task_id).state == "running"

    world.upload(gate, "")
    run = world.wait(job_id, task_id)
    assert run.exit_code == 0 and run.task.execution_info.result == "success"
    assert run.stdout == world.download(f"{seg}/stdouterr/stdout.txt") == "epoch 1 data=sample\nepoch 2\n"
    assert run.stderr == world.download(f"{seg}/stdouterr/stderr.txt") == "progress 50%\n"
    assert world.download(f"{seg}/outputs/Models/ConvNet_MNIST_0.dnn") == "weights"
    log = world.download(f"{seg}/stdouterr/execution.log")
    mounts = world.mounts_dir
    assert f"pythonInterpreterPath /opt/no-such/python3 does not exist on this node; using {sys.executable}" in log
    assert (f"Command: {sys.executable} {mounts}/{MOUNT}/sample/../scripts/train.py {mounts}/{MOUNT}/sample"
            f" {mounts}/{MOUNT}/{seg}/outputs/Models {mounts}/{MOUNT}/{gate} 0") in log
    assert log.rstrip().endswith("Job ended with exit code 0")

    # A failing script: the launcher's exit code is the script's, and so the task's.
    failing = dict(launch, output_segment=segment("failing"), settings=dict(
        launch["settings"], commandLineArgs=f"$AZ_BATCHAI_INPUT_SAMPLE $AZ_BATCHAI_OUTPUT_MODEL {MOUNT_ROOT}/{gate} 3"))
    run = world.run(failing)
    assert run.exit_code == 3 and run.task.execution_info.result == "failure"
    assert world.download(f"{failing['output_segment']}/stdouterr/execution.log").rstrip().endswith(
        "Job ended with exit code 3")


def test_job_preparation_runs_first_and_its_failure_ends_the_job(launcher_world: LauncherWorld):
    world = launcher_world
    launch = launch_description("custom", {"commandLine": "echo main; cat prepared.txt"},
                                job_preparation="echo prepared; echo prep-warning >&2; echo ready > prepared.txt")
    run = world.run(launch)
    seg = launch["output_segment"]
    assert run.exit_code == 0, run.stderr
    assert run.stdout == world.download(f"{seg}/stdouterr/stdout.txt") == "main\nready\n"
    assert world.download(f"{seg}/stdouterr/stdout-job_prep.txt") == "prepared\n"
    assert world.download(f"{seg}/stdouterr/stderr-job_prep.txt") == "prep-warning\n"

    failing = launch_description("custom", {"commandLine": "echo main"},
                                 job_preparation="echo cannot prepare >&2; exit 4")
    run = world.run(failing)
    seg = failing["output_segment"]
    assert run.exit_code == 4
    assert run.stdout == ""
    assert run.stderr.startswith("batchai-spec launcher: the job preparation failed with exit code 4")
    assert world.download(f"{seg}/stdouterr/stderr-job_prep.txt") == "cannot prepare\n"
    assert not world.share_path(f"{seg}/stdouterr/stdout.txt").exists()  # the command never ran
    assert "Job preparation ended with exit code 4" in world.download(f"{seg}/stdouterr/execution.log")


def test_secrets_reach_the_processes_and_nothing_else(launcher_world: LauncherWorld):
    world = launcher_world
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    secrets_path = f".batchai-spec/secrets/{unique_name('job')}.json"
    world.upload(secrets_path, json.dumps({"API_TOKEN": secret}))
    launch = launch_description(
        "cntk", {"pythonScriptFilePath": f"{scripts(world)}/secret_check.py", "commandLineArgs": "--token $API_TOKEN"},
        job_preparation="python3 -c 'import hashlib, os; print(hashlib.sha256(os.environ[\"API_TOKEN\"].encode())"
                        ".hexdigest())'",
        secrets_file=f"{MOUNT_ROOT}/{secrets_path}",
    )
    run = world.run(launch, env={"VISIBLE": "plain"})
    seg = launch["output_segment"]
    assert run.exit_code == 0, run.stderr
    assert run.stdout == f"{digest}\n{digest}\n"
    assert world.download(f"{seg}/stdouterr/stdout-job_prep.txt") == f"{digest}\n"
    log = world.download(f"{seg}/stdouterr/execution.log")
    assert "--token ***" in log and f"Secrets from {world.mounts_dir}/{MOUNT}/{secrets_path}: API_TOKEN" in log

    # Nowhere else: not on the share (but in its own file), not in the task's directory, not in the task's GET.
    leaks = [path for path in world.share.directory.rglob("*")
             if path.is_file() and path != world.share_path(secrets_path) and secret.encode() in path.read_bytes()]
    leaks += [path for path in world.task_dir(run.job_id).rglob("*")
              if path.is_file() and secret.encode() in path.read_bytes()]
    assert leaks == []
    task = world.client.get_task(run.job_id, run.task_id).as_dict()
    assert secret not in json.dumps(task)
    assert {"name": "VISIBLE", "value": "plain"} in task["environmentSettings"]


def test_a_terminated_task_passes_sigterm_on_to_the_command(launcher_world: LauncherWorld):
    world = launcher_world
    launch = launch_description("custom", {"commandLine": (
        "trap 'echo stopping; exit 7' TERM; echo waiting; for i in $(seq 1200); do sleep 0.05; done; exit 1")})
    seg = launch["output_segment"]
    job_id, task_id = world.start(launch)
    poll(lambda: world.task_file_so_far(job_id, task_id, "stdout.txt"), lambda text: text == "waiting\n",
         what="the command to start")
    world.client.terminate_task(job_id, task_id)
    run = world.wait(job_id, task_id)
    assert run.task.execution_info.failure_info.code == "TaskEnded"
    log = poll(lambda: world.download(f"{seg}/stdouterr/execution.log"),
               lambda text: "Job ended" in text, what="the launcher's last line")
    assert "Signal 15 was passed on to process group" in log
    assert log.rstrip().endswith("Job ended with exit code 7")
    assert world.download(f"{seg}/stdouterr/stdout.txt") == "waiting\nstopping\n"


def test_a_multi_process_job_without_mpirun_fails_clearly_with_127(launcher_world: LauncherWorld, batch_context,
                                                                   tmp_path: Path):
    """An image without MPI: the emulator's node image has the job Python's mpirun, so the job Python here is one
    whose directory has none, and the task's PATH is the system's."""
    world = launcher_world
    system_path = "/usr/bin:/bin"
    if shutil.which("mpirun", path=system_path):
        pytest.skip("this machine's system PATH has an mpirun")
    python = tmp_path / "image" / "python3"
    python.parent.mkdir()
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(0o755)
    before = batch_context.config
    batch_context.config = replace(before, job_python=str(python))
    try:
        launch = launch_description("cntk", {"pythonScriptFilePath": f"{scripts(world)}/probe.py", "processCount": 2})
        run = world.run(launch, env={"PATH": system_path})
    finally:
        batch_context.config = before
    assert run.exit_code == 127
    assert run.stderr.startswith("batchai-spec launcher: this job needs MPI (mpirun)")
    assert "mpirun is not on the node's PATH" in world.download(f"{launch['output_segment']}/stdouterr/stderr.txt")


# --------------------------------------------------------------------------------------------------- setup


def test_the_setup_task_logs_in_batch_ais_layout(launcher_world: LauncherWorld):
    world = launcher_world
    secret = f"setup-{uuid.uuid4().hex}"
    secrets_path = f".batchai-spec/secrets/{unique_name('cluster')}.json"
    world.upload(secrets_path, json.dumps({"SETUP_SECRET": secret}))
    pools = {}
    for name, tail in (("setup-ok", "exit 0"), ("setup-fail", "exit 6")):
        seg = segment(name, "clusters")
        description = {
            "version": 1,
            "command_line": ('echo setup on $AZ_BATCH_NODE_ID; echo "root=$AZ_BATCHAI_MOUNT_ROOT'
                             ' gpus=$AZ_BATCHAI_NUM_GPUS"; echo warning >&2;'
                             ' [ "${#SETUP_SECRET}" -gt 0 ] && echo secret seen; ' + tail),
            "std_out_err_path_prefix": MOUNT_ROOT, "output_segment": seg,
            "secrets_file": f"{MOUNT_ROOT}/{secrets_path}",
        }
        world.mgmt.pool.create(world.resource_group, world.account, name, pool_body(
            dedicated=1, mountConfiguration=[world.share.mount(MOUNT)],
            startTask={"commandLine": launcher_command("setup"), "waitForSuccess": True,
                       "environmentSettings": [{"name": "BATCHAI_SPEC_SETUP", "value": json.dumps(description)}]}))
        pools[name] = seg
    for name, seg in pools.items():
        [node] = poll(lambda: list(world.client.list_nodes(name)),
                      lambda found: len(found) == 1 and found[0].state in ("idle", "starttaskfailed"),
                      what=f"the node of {name}")
        mounts = world.mounts_dir.parent.parent.parent / name / node.id / "fsmounts"
        expected = (f"setup on {node.id}\nroot={mounts} gpus={expected_gpus()}\nsecret seen\n")
        assert world.download(f"{seg}/stdout-{node.id}.txt") == expected
        assert world.download(f"{seg}/stderr-{node.id}.txt") == "warning\n"
        assert b"".join(world.client.download_node_file(name, node.id, "startup/stdout.txt")).decode() == expected
        info = node.start_task_info
        if name == "setup-ok":
            assert (node.state, info.exit_code, info.result) == ("idle", 0, "success")
        else:
            assert (node.state, info.exit_code, info.result) == ("starttaskfailed", 6, "failure")
        assert not [path for path in (world.share.directory / seg).rglob("*")
                    if path.is_file() and secret.encode() in path.read_bytes()]


# --------------------------------------------------------------------------------------------------- refusals


def _good() -> dict:
    return launch_description("custom", {"commandLine": "echo never"})


BAD_DESCRIPTIONS = {
    "missing": (None, None, "the environment variable BATCHAI_SPEC_LAUNCH is not set"),
    "not json": (None, "{version: 1", "BATCHAI_SPEC_LAUNCH is not valid JSON"),
    "not an object": (None, "[1]", "BATCHAI_SPEC_LAUNCH must be a JSON object"),
    "unknown version": (dict(_good(), version=2), None, "BATCHAI_SPEC_LAUNCH has version 2; this launcher knows"
                                                        " version 1"),
    "unknown toolkit": (dict(_good(), tool_type="theano"), None, 'tool_type "theano" is not one of'),
    "no script": (launch_description("pytorch", {}), None, "lacks pythonScriptFilePath"),
    "segment escapes": (dict(_good(), output_segment="../elsewhere"), None, "output_segment must be a relative"),
    "no secrets file": (dict(_good(), secrets_file=f"{MOUNT_ROOT}/.batchai-spec/secrets/none.json"), None,
                        "the secrets file "),
}


@pytest.mark.parametrize("case", sorted(BAD_DESCRIPTIONS))
def test_a_bad_description_is_one_line_and_exit_code_2(launcher_world: LauncherWorld, case: str):
    launch, raw, message = BAD_DESCRIPTIONS[case]
    run = launcher_world.run(launch, raw_launch=raw)
    assert run.exit_code == 2, run.stderr
    assert run.stdout == ""
    assert run.stderr.startswith("batchai-spec launcher: ") and message in run.stderr, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_a_bad_setup_description_is_exit_code_2(launcher_world: LauncherWorld):
    world = launcher_world
    world.mgmt.pool.create(world.resource_group, world.account, "setup-bad", pool_body(
        dedicated=1, mountConfiguration=[world.share.mount(MOUNT)],
        startTask={"commandLine": launcher_command("setup"), "waitForSuccess": True, "environmentSettings": [
            {"name": "BATCHAI_SPEC_SETUP", "value": json.dumps({"version": 1, "command_line": "true"})}]}))
    [node] = poll(lambda: list(world.client.list_nodes("setup-bad")),
                  lambda found: len(found) == 1 and found[0].state == "starttaskfailed", what="the node")
    assert node.start_task_info.exit_code == 2
    stderr = b"".join(world.client.download_node_file("setup-bad", node.id, "startup/stderr.txt")).decode()
    assert stderr == "batchai-spec launcher: BATCHAI_SPEC_SETUP lacks std_out_err_path_prefix\n"


# --------------------------------------------------------------------------------------------------- Python 3.5


def test_the_launcher_is_python_3_5_source():
    """Old images run it (the quickstart's has Python 3.5): 3.5 grammar (no f-strings, annotations, walrus...),
    checked by the parser itself and by tokens, and, where vermin is installed, no library use newer than 3.5."""
    ast.parse(LAUNCHER_SOURCE, feature_version=(3, 5))
    for token in tokenize.generate_tokens(io.StringIO(LAUNCHER_SOURCE).readline):
        if token.type == tokenize.STRING:
            prefix = token.string[:token.string.index(token.string[-1])].lower()
            assert "f" not in prefix, f"an f-string at line {token.start[0]}"
        assert getattr(tokenize, "FSTRING_START", None) != token.type, f"an f-string at line {token.start[0]}"
    tree = ast.parse(LAUNCHER_SOURCE)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.AnnAssign, ast.NamedExpr))]
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.arg) and node.annotation is not None]


def test_the_launcher_needs_no_library_newer_than_python_3_5():
    vermin = pytest.importorskip("vermin", reason="vermin (PyPI) checks library use by version")
    python2, python3 = vermin.detect(LAUNCHER_SOURCE, config=vermin.Config(), path="launcher.py")
    assert python3 is not None and python3 <= (3, 5), f"vermin: the launcher needs Python {python3}"
    # The check itself sees what the launcher must not use.
    assert vermin.detect("import subprocess\nsubprocess.run([], capture_output=True)\n",
                         config=vermin.Config())[1] == (3, 7)


def test_the_launcher_ships_as_package_data():
    path = Path(__file__).resolve().parents[3] / "batchai_spec" / "services" / "batch" / "launcher" / "launcher.py"
    assert path.read_text(encoding="utf-8") == LAUNCHER_SOURCE
    assert not (path.parent / "__init__.py").exists()  # a data directory, read with importlib.resources
