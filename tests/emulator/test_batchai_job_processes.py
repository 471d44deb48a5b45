"""No process of a job survives it: terminate, delete, the wall-clock limit, a job's own end and emulator shutdown
stop the job's process group and the daemons it forked (double fork + setsid), SIGKILL after the grace period for
those that ignore SIGTERM, and execution.log says what was done.

Each job records its pids in a file on the share (`KIND PID` lines); a test ends with none of them running (a
zombie counts as gone: its parent may be init, which reaps when it will).
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import azure.mgmt.batchai.models as models
import pytest
from azure.core.exceptions import ResourceNotFoundError

from batchai_spec.emulator.batchai import processes
from batchai_spec.emulator.server import start_in_process
from tests.emulator.batchai_support import EXPERIMENT, MOUNT, TEST_GRACE_S, WORKSPACE, batchai, custom  # noqa: F401
from tests.emulator.batchai_support import batchai_client_for, sandbox, standalone_sandbox  # noqa: F401
from tests.emulator.batchai_support import running, wait_for, wall_clock, zero_delays

SHARE_ROOT = f"$AZ_BATCHAI_MOUNT_ROOT/{MOUNT}"

# Double fork + setsid: the daemon leaves the job's session and process group, its parent exits (init adopts it),
# and it ignores SIGTERM. With `scrub` it then runs `sleep` with an empty environment (no marker left to find).
DAEMON = """\
import os, signal, sys, time
pids, scrub = sys.argv[1], sys.argv[2:] == ["scrub"]
# The first process returns only once the daemon is ready (SIGTERM ignored, pid written): a job that ends, or is
# stopped, right after it must find the daemon there, however loaded the machine is.
ready_read, ready_write = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if scrub:
            os.set_inheritable(ready_write, True)
            command = "echo daemon $$ >> %s; echo >&%d; exec sleep 300" % (pids, ready_write)
            os.execve("/bin/sh", ["sh", "-c", command], {})
        with open(pids, "a") as handle:
            handle.write("daemon %d\\n" % os.getpid())
        os.write(ready_write, b"x")
        time.sleep(300)
    os._exit(0)
os.wait()
os.close(ready_write)
os.read(ready_read, 1)
"""


def stubborn_job(pids_file: str, *daemon_args: str) -> str:
    """A job that forks a daemon, ignores SIGTERM and keeps a child: 4 pids (leader, job, child, daemon)."""
    daemon = " ".join([sys.executable, f"{SHARE_ROOT}/daemon.py", f"{SHARE_ROOT}/{pids_file}", *daemon_args])
    return (f"{daemon}; trap '' TERM; echo leader $PPID >> {SHARE_ROOT}/{pids_file};"
            f" echo job $$ >> {SHARE_ROOT}/{pids_file}; sleep 300 & echo child $! >> {SHARE_ROOT}/{pids_file}; wait")


def recorded(path: Path, count: int) -> dict[str, int]:
    """The `KIND PID` lines of a pids file, once it has `count` of them."""
    text = wait_for(lambda: path.read_text() if path.exists() else "",
                    lambda text: len(text.splitlines()) >= count and text.endswith("\n"))
    return {kind: int(pid) for kind, pid in (line.split() for line in text.splitlines())}


def assert_gone(pids: dict[str, int], timeout_s: float = 10.0) -> None:
    left = wait_for(lambda: {kind: pid for kind, pid in pids.items() if running(pid)}, lambda left: not left,
                    timeout_s=timeout_s)
    assert left == {}


@pytest.fixture
def leftovers() -> Iterator[list[Path]]:
    """Pids files whose processes a failing test must not leave running on the machine."""
    files: list[Path] = []
    yield files
    for path in files:
        for line in path.read_text().splitlines() if path.exists() else []:
            pid = int(line.split()[1])
            if running(pid) and (processes.TASK_MARKER.encode() in _environ(pid)
                                 or _cmdline(pid).startswith(b"sleep")):
                os.kill(pid, signal.SIGKILL)


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.fixture(params=["cgroup", "environment"])
def tracking(request, sandbox):  # noqa: F811
    """Each task in a cgroup of its own, or (as where none can be created) found by process group + environment."""
    if request.param == "cgroup" and processes.cgroup_parent() is None:
        pytest.skip("this machine does not let the emulator create cgroups")
    zero_delays(sandbox.emulator, use_cgroups=request.param == "cgroup")
    yield request.param
    zero_delays(sandbox.emulator)


def execution_log(sandbox, job: models.Job) -> str:  # noqa: F811
    return (sandbox.stdouterr(job) / "execution.log").read_text()


def assert_stopped_in_two_steps(log: str, pids: dict[str, int], reason: str) -> None:
    """SIGTERM to the group and the daemon outside it; SIGKILL to what ignored it; all ended."""
    assert f"Stopping the job's processes: {reason}" in log
    assert f"sent SIGTERM to process group {pids['leader']}" in log
    assert f"and to 1 process outside it (pid {pids['daemon']})" in log
    [waited] = re.findall(rf"still running (\d+\.\d)s after SIGTERM \(pids [\d, ]+\); sent SIGKILL to process group"
                          rf" {pids['leader']} \(pids [\d, ]+\) and to 1 process outside it"
                          rf" \(pid {pids['daemon']}\)", log)
    assert float(waited) >= TEST_GRACE_S
    assert re.search(r"All of the job's processes have ended, \d+\.\ds after SIGKILL", log)


@pytest.mark.parametrize("stop", ["terminate", "delete", "wall clock"])
def test_a_stopped_job_leaves_no_process_behind(sandbox, tracking, leftovers, stop):  # noqa: F811
    cluster = sandbox.create_cluster()
    sandbox.write("daemon.py", DAEMON)
    leftovers.append(sandbox.share_dir / "stubborn.pids")
    limits = {"constraints": wall_clock(3)} if stop == "wall clock" else {}
    sandbox.submit(cluster, "stubborn", **custom(stubborn_job("stubborn.pids")), **limits)
    job = sandbox.wait_job("stubborn", ("running",))
    pids = recorded(sandbox.share_dir / "stubborn.pids", 4)
    assert all(running(pid) for pid in pids.values())
    assert os.getsid(pids["daemon"]) != os.getsid(pids["job"]) == pids["leader"]

    if stop == "terminate":
        sandbox.client.jobs.begin_terminate(sandbox.group, WORKSPACE, EXPERIMENT, "stubborn").result()
        ended = sandbox.job("stubborn")
        assert ended.execution_state == "failed" and ended.execution_info.errors[0].code == "JobTerminated"
        reason = "the job was terminated"
    elif stop == "delete":
        sandbox.client.jobs.begin_delete(sandbox.group, WORKSPACE, EXPERIMENT, "stubborn").result()
        with pytest.raises(ResourceNotFoundError):
            sandbox.job("stubborn")
        reason = "the job is being deleted"
    else:
        ended = sandbox.wait_job("stubborn")
        assert ended.execution_state == "failed" and ended.execution_info.errors[0].code == "MaxWallClockTimeExceeded"
        reason = "it ran past its constraints.maxWallClockTime"
    # The job ended (or was deleted) only once its processes were gone: nothing to wait for but init's reaping.
    assert_gone(pids)
    log = execution_log(sandbox, job)
    assert_stopped_in_two_steps(log, pids, reason)
    assert ("own cgroup" in log) == (tracking == "cgroup")
    sandbox.wait_cluster("cluster", lambda c: c.node_state_counts.idle_node_count == 1)


def test_what_a_finished_job_left_running_is_stopped(sandbox, tracking, leftovers):  # noqa: F811
    cluster = sandbox.create_cluster()
    sandbox.write("daemon.py", DAEMON)
    leftovers.append(sandbox.share_dir / "leaves.pids")
    pids_file = f"{SHARE_ROOT}/leaves.pids"
    sandbox.submit(cluster, "leaves", **custom(
        f"{sys.executable} {SHARE_ROOT}/daemon.py {pids_file}; (trap '' TERM; exec sleep 300) &"
        f" echo child $! >> {pids_file}; echo done"))
    job = sandbox.wait_job("leaves")
    assert job.execution_state == "succeeded" and job.execution_info.exit_code == 0
    pids = recorded(sandbox.share_dir / "leaves.pids", 2)
    assert_gone(pids, timeout_s=5.0)
    log = execution_log(sandbox, job)
    assert "Stopping the job's processes: its commands ended but left processes running" in log
    # The child stayed in the job's process group (its leader has exited); the daemon left it.
    assert re.search(rf"sent SIGTERM to process group \d+ \(pid {pids['child']}\) and to 1 process outside it"
                     rf" \(pid {pids['daemon']}\)", log)
    assert "sent SIGKILL" in log and "All of the job's processes have ended" in log
    assert log.rstrip().endswith("Job succeeded (exit code 0)")


def test_a_job_that_ends_cleanly_logs_no_stopping(sandbox):  # noqa: F811
    cluster = sandbox.create_cluster()
    sandbox.submit(cluster, "clean", **custom("sleep 0.1 & wait; echo done"))
    job = sandbox.wait_job("clean")
    assert job.execution_state == "succeeded"
    assert "Stopping" not in execution_log(sandbox, job)


def test_the_cgroup_catches_a_daemon_that_scrubs_its_environment(sandbox, leftovers):  # noqa: F811
    if processes.cgroup_parent() is None:
        pytest.skip("this machine does not let the emulator create cgroups")
    zero_delays(sandbox.emulator, use_cgroups=True)
    cluster = sandbox.create_cluster()
    sandbox.write("daemon.py", DAEMON)
    leftovers.append(sandbox.share_dir / "scrubbed.pids")
    sandbox.submit(cluster, "scrubbed", **custom(stubborn_job("scrubbed.pids", "scrub")))
    job = sandbox.wait_job("scrubbed", ("running",))
    pids = recorded(sandbox.share_dir / "scrubbed.pids", 4)
    wait_for(lambda: _cmdline(pids["daemon"]), lambda cmdline: cmdline.startswith(b"sleep"))
    assert processes.TASK_MARKER.encode() not in _environ(pids["daemon"])
    sandbox.client.jobs.begin_terminate(sandbox.group, WORKSPACE, EXPERIMENT, "scrubbed").result()
    assert_gone(pids)
    assert f"outside it (pid {pids['daemon']})" in execution_log(sandbox, job)


def test_a_setup_task_daemon_lives_with_its_node(sandbox, leftovers):  # noqa: F811
    sandbox.write("daemon.py", DAEMON)
    leftovers.append(sandbox.share_dir / "setup.pids")
    task = models.SetupTask(command_line=f"{sys.executable} {SHARE_ROOT}/daemon.py {SHARE_ROOT}/setup.pids",
                            std_out_err_path_prefix=SHARE_ROOT)
    sandbox.create_cluster(nodes=1, setup_task=task)
    pids = recorded(sandbox.share_dir / "setup.pids", 1)
    assert running(pids["daemon"])  # a node's service, as a setup task may start one
    sandbox.client.clusters.begin_delete(sandbox.group, WORKSPACE, "cluster").result()
    assert_gone(pids)


def test_emulator_shutdown_stops_every_job_and_setup_task(tmp_path, leftovers):
    with start_in_process(tmp_path / "state") as emulator:
        zero_delays(emulator)
        box = standalone_sandbox(emulator)
        box.write("daemon.py", DAEMON)
        leftovers.extend([box.share_dir / "stubborn.pids", box.share_dir / "setup.pids"])
        task = models.SetupTask(command_line=f"{sys.executable} {SHARE_ROOT}/daemon.py {SHARE_ROOT}/setup.pids",
                                std_out_err_path_prefix=SHARE_ROOT)
        cluster = box.create_cluster(setup_task=task)
        box.submit(cluster, "stubborn", **custom(stubborn_job("stubborn.pids")))
        job = box.wait_job("stubborn", ("running",))
        pids = recorded(box.share_dir / "stubborn.pids", 4)
        setup = recorded(box.share_dir / "setup.pids", 1)
        assert all(running(pid) for pid in [*pids.values(), *setup.values()])
        log_path = box.stdouterr(job) / "execution.log"
    # Stopping returned: no job process is re-parented to init and left running.
    assert_gone({**pids, "setup daemon": setup["daemon"]}, timeout_s=5.0)
    log = log_path.read_text()
    assert_stopped_in_two_steps(log, pids, "the emulator is stopping")
    assert "Job failed: EmulatorStopped" in log

    with start_in_process(tmp_path / "state") as emulator:  # the next emulator finds the job ended
        zero_delays(emulator)
        client = batchai_client_for(emulator.endpoint)
        ended = client.jobs.get(box.group, WORKSPACE, EXPERIMENT, "stubborn")
        assert ended.execution_state == "failed" and ended.execution_info.errors[0].code == "EmulatorStopped"
        client.workspaces.begin_delete(box.group, WORKSPACE).result()
