"""The local target as a user meets it: no emulator runs, the first command starts one in the background, every
later command (at once or after it) uses that one, jobs and `logs -f` outlive every command, it stops by itself
when idle, `emulator status|stop` manage it, and a command whose emulator dies says so within seconds."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from batchai_spec.emulator.endpoint import ENDPOINT_FILE, live_endpoint, pid_alive
from batchai_spec.engine.waits import Backoff
from tests.cli.running import modules_loaded
from tests.e2e.conftest import BackgroundProject
from tests.e2e.project import CLI_TIMEOUT_S, REPOSITORY, read_until

IDLE = {"BATCHAI_SPEC_EMULATOR_IDLE_TIMEOUT": "1s"}


def _wait_until(done, what: str, timeout_s: float = 30.0) -> None:
    deadline, backoff = time.monotonic() + timeout_s, Backoff(first=0.02, most=0.5)
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        backoff.wait()


def _ends_with_the_jobs_last_line(output: str) -> None:
    """`logs -f` printed the job's last line (its stderr), then its end."""
    lines = output.splitlines()
    assert lines[-3:-1] == ["stand-in: no real training here", "job.exp/train: succeeded"], output
    assert lines[-1].startswith("job.exp/train: succeeded, exit code 0 after "), output


def _emulator(project: BackgroundProject, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "batchai_spec", "emulator", *args, "--state-dir", str(project.state_dir)],
        cwd=REPOSITORY, env=project.environment(env), capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )


def test_commands_started_at_once_on_a_fresh_state_dir_share_one_emulator(background_project: BackgroundProject):
    project = background_project
    commands = [project.start("plan") for _ in range(3)]
    for command in commands:
        project.finish(command)
    pid = project.emulator.pid
    assert pid is not None
    # An emulator that lost the race to serve exits by itself: in the end one process serves the state dir.
    _wait_until(lambda: project.emulator.processes() == [pid], "the only emulator process to be the one serving")
    assert "Traceback" not in (project.state_dir / "emulator.log").read_text()


def test_a_job_and_logs_f_outlive_the_command_that_started_the_emulator(background_project: BackgroundProject):
    project = background_project
    gate = project.gate("job")
    gated = ("--var", f"job_gate={gate}")
    submitted = project.cli("apply", "-y", "--no-wait", *gated)  # started the emulator, then exited
    assert "submitted; follow it with" in submitted.stdout
    pid = project.emulator.pid
    project.wait_for_job(states=("running",))
    status = _emulator(project, "status")
    assert status.returncode == 0 and "exp/train (running)" in status.stdout, status.stdout
    follower = project.start("logs", "exp/train", "-f", *gated)
    gate.touch()
    followed = project.finish(follower)
    assert "Finished Epoch[3 of 3]" in followed.stdout
    _ends_with_the_jobs_last_line(followed.output)
    assert project.emulator.pid == pid
    project.assert_converged(*gated)


def test_logs_f_outlives_a_killed_apply_that_started_the_emulator(background_project: BackgroundProject):
    project = background_project
    gate = project.gate("job")
    gated = ("--var", f"job_gate={gate}")
    apply = project.start("apply", "-y", "--json", *gated)
    read, event = read_until(apply, lambda e: e["event"] == "job.state" and e["state"] == "running")
    assert event is not None, read
    follower = project.start("logs", "exp/train", "-f", *gated)
    project.kill(apply, read)
    gate.touch()
    followed = project.finish(follower)
    _ends_with_the_jobs_last_line(followed.output)
    project.assert_converged(*gated)


def test_status_and_destroy_right_after_apply_use_the_same_emulator(background_project: BackgroundProject):
    project = background_project
    project.cli("apply", "-y")
    pid = project.emulator.pid
    status = project.cli("status")
    assert "job.exp/train" in status.stdout and "succeeded" in status.stdout
    destroyed = project.cli("destroy", "-y")
    assert "Destroy complete!" in destroyed.stdout
    assert project.emulator.pid == pid
    for run in project.runs:
        assert "Connection refused" not in run.output and "could not be reached" not in run.output


def test_emulator_status_and_stop(background_project: BackgroundProject):
    project = background_project
    before = _emulator(project, "status")
    assert before.returncode == 0 and before.stdout.startswith(f"No emulator is running for {project.state_dir}")
    project.cli("plan")
    pid = project.emulator.pid
    status = _emulator(project, "status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"Emulator running (pid {pid}, up ")
    for line in (f"ARM: {project.emulator.endpoint.arm_url}", f"Log: {project.state_dir / 'emulator.log'}",
                 "Idle timeout: 5m", "Jobs: none queued or running"):
        assert line in status.stdout
    assert project.emulator.endpoint.token not in status.stdout + status.stderr

    stopped = _emulator(project, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"Emulator (pid {pid}) for {project.state_dir} stopped."
    assert not pid_alive(pid) and not (project.state_dir / ENDPOINT_FILE).exists()
    again = _emulator(project, "stop")
    assert again.returncode == 0 and again.stdout.strip() == f"No emulator is running for {project.state_dir}."
    after = _emulator(project, "status")
    assert after.returncode == 0 and after.stdout.startswith("No emulator is running")
    # The next command starts another one, on the same state.
    project.cli("plan")
    assert project.emulator.pid not in (None, pid)


def test_files_left_by_a_killed_emulator_never_name_another_process(background_project: BackgroundProject):
    """A SIGKILLed emulator leaves its lock and endpoint files, whose pid the system may give to any process: that
    process is never taken for the emulator, nor signalled by `emulator stop`."""
    project = background_project
    project.cli("plan")
    endpoint, killed = (project.state_dir / ENDPOINT_FILE).read_text(), project.emulator.pid
    os.kill(killed, signal.SIGKILL)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        # As if the system had given the dead emulator's pid to this process.
        (project.state_dir / "emulator.lock").write_text(f"{stranger.pid}\n")
        stale = endpoint.replace(f'"pid": {killed}', f'"pid": {stranger.pid}')
        assert stale != endpoint
        (project.state_dir / ENDPOINT_FILE).write_text(stale)
        status = _emulator(project, "status")
        assert status.returncode == 0 and status.stdout.startswith("No emulator is running"), status.stdout
        assert _emulator(project, "stop").stdout.strip() == f"No emulator is running for {project.state_dir}."
        project.cli("plan")  # starts a new emulator instead of waiting for, or talking to, the stranger
        assert project.emulator.pid not in (None, stranger.pid)
        assert stranger.poll() is None, "the stranger was signalled"
    finally:
        stranger.kill()
        stranger.wait()


def test_an_idle_emulator_stops_by_itself_but_never_under_a_running_job(background_project: BackgroundProject):
    project = background_project
    gate = project.gate("job")
    gated = ("--var", f"job_gate={gate}")
    project.cli("apply", "-y", "--no-wait", *gated, env=IDLE)
    pid = project.emulator.pid
    # A job runs: the emulator stays, idle timeouts (1s) after idle timeout.
    project.wait_for_job(states=("running",))
    watched_until = time.monotonic() + 3.5
    backoff = Backoff(first=0.05, most=0.5)
    while time.monotonic() < watched_until:
        assert live_endpoint(project.state_dir) is not None and project.emulator.pid == pid
        backoff.wait()
    gate.touch()
    project.wait_for_job()
    _wait_until(lambda: not pid_alive(pid), "the idle emulator to stop")
    assert not (project.state_dir / ENDPOINT_FILE).exists()
    assert "Idle for 1s: stopping." in (project.state_dir / "emulator.log").read_text()


def test_emulator_serve_with_an_idle_timeout_stops_by_itself(background_project: BackgroundProject):
    project = background_project
    serving = _emulator(project, "serve", "--idle-timeout", "1s")  # returns once it stopped
    assert serving.returncode == 0, serving.stderr
    assert "Stops after 1s idle" in serving.stdout and serving.stdout.rstrip().endswith("Emulator stopped.")
    assert not (project.state_dir / ENDPOINT_FILE).exists()


RECORDED_TASKS = {  # the gated process, once the emulator has recorded it (its pid, its exit file)
    "job": "SELECT count(*) FROM batchai_resources WHERE kind = 'job' AND json_extract(runtime, '$.tasks') IS NOT NULL",
    "setup": "SELECT count(*) FROM batchai_nodes WHERE json_extract(runtime, '$.setup') IS NOT NULL",
}


def _recorded(project: BackgroundProject, query: str) -> bool:
    database = project.state_dir / "state.sqlite3"
    connection = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
    try:
        return connection.execute(query).fetchone()[0] > 0
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("stage", "gated_by", "task"),
    [("job.state", "job_gate", "job"), ("cluster.waiting", "setup_gate", "setup")],
    ids=["following the job", "waiting for the cluster"],
)
def test_an_apply_whose_emulator_dies_fails_within_seconds_and_the_next_one_resumes(
    background_project: BackgroundProject, stage: str, gated_by: str, task: str
):
    project = background_project
    gate = project.gate("gate")
    gated = ("--var", f"{gated_by}={gate}")
    apply = project.start("apply", "-y", "--json", *gated)
    read, event = read_until(apply, lambda e: e["event"] == stage and e.get("state", "running") == "running")
    assert event is not None, read
    # Killed once the gated process is on record: what this test checks is the command's side. (The emulator
    # marks a job running before it launches and records its processes; a kill in between is its own matter.)
    _wait_until(lambda: _recorded(project, RECORDED_TASKS[task]), f"the {task} task to be on record")
    pid = project.emulator.pid
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    failed = project.finish(apply, read, expect=1)
    seconds = time.monotonic() - killed_at
    assert seconds < 8, f"the apply took {seconds:.1f}s to see its emulator gone"
    (error,) = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
    assert error == (
        f"Error: The local emulator serving {project.state_dir} stopped (its log: {project.state_dir / 'emulator.log'}). "
        "Run the same command again to resume: it starts a new emulator, and what is already done is not done again."
    )

    gate.touch()
    project.cli("apply", "-y", *gated)
    assert project.emulator.pid not in (None, pid)
    project.forget_clients()
    project.assert_converged(*gated)


def test_a_background_emulator_that_cannot_start_ends_the_command_with_its_log(background_project: BackgroundProject):
    project = background_project
    project.state_dir.mkdir(parents=True)
    (project.state_dir / "tls").write_text("not a directory")
    failed = project.cli("plan", expect=1)
    (error,) = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
    assert error.startswith(f"Error: The local emulator for {project.state_dir} did not start (exit code 1")
    assert error.endswith(f"See its log: {project.state_dir / 'emulator.log'}")




def test_the_cli_never_imports_the_emulator_server(background_project: BackgroundProject):
    project = background_project
    for command in ("plan", "status", "plan"):  # the first starts the emulator, the others find it running
        server = ("batchai_spec.emulator.server", "uvicorn", "starlette")
        result = modules_loaded(server, command, str(project.spec), "--state-dir", str(project.state_dir), env=project.environment())
        assert result.stdout.splitlines()[-1] == "exit 0 loaded []", result.stdout + result.stderr
