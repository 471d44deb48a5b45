"""A CLI killed at any point, and two CLIs at once: the next apply finishes the work, and applies never interleave.
On both services, but for what the services do not take part in (an upload cut short, a stale lock)."""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal

import pytest

from batchai_spec.engine.lock import lock_path
from tests.e2e.project import BOTH_SERVICES, Project, read_until

# A seed of its own for a run that is to hit other points: E2E_KILL_SEED=N pytest tests/e2e
KILL_SEED = int(os.environ.get("E2E_KILL_SEED", "20251126"))
# An apply from nothing emits about 38 events: plan, changes, uploads, the job and its outputs.
RANDOM_KILLS = sorted(random.Random(KILL_SEED).sample(range(2, 38), 2))
FIXED_KILLS = {
    "before_any_change": lambda event: event["event"] == "plan",
    "creating_the_cluster": lambda event: event["event"] == "change.started" and event["address"] == "cluster.gpu",
    "following_the_job": lambda event: event["event"] == "job.state",
}
BIG_FILE = "big.txt"
# More than one range of the storage SDK's 4 MiB, so an upload can be caught half way.
BIG_FILE_SIZE = 9 * 1024 * 1024


def _after_events(count: int):
    seen = []

    def reached(event) -> bool:
        seen.append(event)
        return len(seen) >= count

    return reached


def _kill_and_converge(project: Project, when) -> None:
    apply = project.start("apply", "-y", "--json")
    read, _ = read_until(apply, when)
    if apply.poll() is None:
        project.kill(apply, read)
    else:
        project.finish(apply, read)
    project.cli("apply", "-y")
    project.wait_for_job()
    project.assert_converged()


@pytest.mark.parametrize("point", FIXED_KILLS)
@BOTH_SERVICES
def test_an_apply_killed_at_a_fixed_point_is_finished_by_the_next(project: Project, point: str):
    _kill_and_converge(project, FIXED_KILLS[point])


@pytest.mark.parametrize("events", RANDOM_KILLS, ids=lambda n: f"after_{n}_events_seed_{KILL_SEED}")
@BOTH_SERVICES
def test_an_apply_killed_at_a_random_point_is_finished_by_the_next(project: Project, events: int):
    _kill_and_converge(project, _after_events(events))


def test_an_apply_killed_half_way_through_an_upload_is_finished_by_the_next(project: Project):
    big = project.root / "data" / BIG_FILE
    big.write_bytes(random.Random(KILL_SEED).randbytes(BIG_FILE_SIZE))
    path = rf"^/e2estore/e2eshare/sample/{BIG_FILE}$"
    # The file's creation and its first range pass; the other ranges hang until the CLI is dead.
    for delay_s, count in ((0, 1), (0, 1), (3, None)):
        project.admin.add_fault(path, service="storage", method="PUT", action="delay", delay_s=delay_s, count=count)
    apply = project.start("apply", "-y", "--json")
    read, event = read_until(
        apply, lambda e: e["event"] == "upload.progress" and e["address"].endswith(BIG_FILE) and e["done"] < e["total"]
    )
    assert event is not None, read
    project.kill(apply, read)
    project.admin.clear_faults()
    project.cli("apply", "-y")
    project.wait_for_job()
    project.assert_converged()
    assert project.share_file(f"sample/{BIG_FILE}") == big.read_bytes()


@BOTH_SERVICES
def test_a_second_apply_fails_naming_the_holder_or_waits_for_it(project: Project):
    gate = project.gate("setup")
    gated = ("--var", f"setup_gate={gate}")
    holder = project.start("apply", "-y", "--json", *gated)
    read, event = read_until(holder, lambda e: e["event"] == "cluster.waiting")
    assert event is not None, read
    refused = project.cli("apply", "-y", *gated, expect=1)
    assert f"(pid {holder.pid}) since 20" in refused.stderr and "locked by apply by" in refused.stderr
    waiting = project.start("apply", "-y", "--json", "--lock-timeout", "2m", *gated)
    notice = waiting.stderr.readline()
    assert notice.startswith("Waiting up to 2m for the lock held by apply by") and f"(pid {holder.pid})" in notice
    gate.touch()
    project.finish(holder, read)
    second = project.finish(waiting)
    assert second.plan()["has_changes"] is False
    assert [e["event"] for e in second.events()] == ["plan"]
    project.assert_converged(*gated)


def test_force_unlock_removes_the_lock_of_a_holder_that_is_gone_for_good(project: Project):
    path = lock_path(project.state_dir / "locks", "e2e")
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = {"command": "apply", "user": "ci", "host": "build-7", "pid": 4242, "since": "2025-11-26T10:00:00+00:00"}
    # A holder on a shared file system whose machine is gone: its lock never expires on its own.
    with path.open("w") as stuck:
        fcntl.flock(stuck, fcntl.LOCK_EX)
        stuck.write(json.dumps(holder))
        stuck.flush()
        refused = project.cli("apply", "-y", expect=1)
        assert "locked by apply by ci@build-7 (pid 4242) since 2025-11-26T10:00:00+00:00" in refused.stderr
        assert "force-unlock" in refused.stderr
        unlocked = project.cli("force-unlock")
        assert "Removed the lock held by apply by ci@build-7 (pid 4242)" in unlocked.stdout
        project.cli("apply", "-y")
    assert project.cli("force-unlock").stdout.strip() == "Removed the lock held by nobody (the lock was free)."


@pytest.mark.parametrize(("stage", "gated_by"), [("cluster.waiting", "setup_gate"), ("job.state", "job_gate")])
@BOTH_SERVICES
def test_ctrl_c_stops_with_exit_130_and_the_next_apply_finishes(project: Project, stage: str, gated_by: str):
    """Interrupted while a worker waits for a cluster's nodes, and while the job is followed."""
    gate = project.gate("gate")
    gated = ("--var", f"{gated_by}={gate}")
    apply = project.start("apply", "-y", "--json", *gated)
    read, event = read_until(apply, lambda e: e["event"] == stage)
    assert event is not None, read
    apply.send_signal(signal.SIGINT)
    interrupted = project.finish(apply, read, expect=130)
    assert "Interrupted. Run the same command again to finish" in interrupted.stderr
    gate.touch()
    project.cli("apply", "-y", *gated)
    project.wait_for_job()
    project.assert_converged(*gated)


@BOTH_SERVICES
def test_a_followed_job_is_never_deleted_by_a_second_apply_or_destroy(project: Project):
    """Two terminals: the lock covers following the job, so the second command is refused, naming the holder and
    what it does; the job runs to its end under the first."""
    gate = project.gate("job")
    gated = ("--var", f"job_gate={gate}")
    follower = project.start("apply", "-y", "--json", *gated)
    read, event = read_until(follower, lambda e: e["event"] == "job.state" and e["state"] == "running")
    assert event is not None, read
    for command, args in (("apply", ("-y", *gated, "--var", "exit_code=2")), ("destroy", ("-y",))):
        refused = project.cli(command, *args, expect=1)
        assert f"locked by apply by" in refused.stderr and f"(pid {follower.pid})" in refused.stderr
        assert "following job.exp/train" in refused.stderr
    assert project.job().execution_state == "running"
    gate.touch()
    followed = project.finish(follower, read)
    (finished,) = followed.events_of("job.finished")
    assert finished["state"] == "succeeded"
    project.assert_converged(*gated)


@BOTH_SERVICES
def test_apply_follows_a_run_left_running_and_says_since_when(project: Project):
    gate = project.gate("job")
    gated = ("--var", f"job_gate={gate}")
    project.cli("apply", "-y", "--no-wait", *gated)
    project.wait_for_job(states=("running",))
    follower = project.start("apply", "-y", "--json", *gated)
    read, event = read_until(follower, lambda e: e["event"] == "message" and "earlier apply" in e["text"])
    assert event is not None, read
    assert event["text"].startswith("job.exp/train: following the run an earlier apply submitted, started ")
    read_more, state = read_until(follower, lambda e: e["event"] == "job.state")
    started = project.job().execution_info.start_time.timestamp()
    assert state["started"] == started, "the time shown counts from the run's start, not from this command's"
    gate.touch()
    project.finish(follower, read + read_more)
    project.assert_converged(*gated)
