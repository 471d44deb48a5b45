"""Jobs over time with real tasks: job preparation once per node, job release at the end, terminate, delete and
disable requests with running tasks (no process left behind), onAllTasksComplete, onTaskFailure."""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.emulator.batch.tasks_support import assert_gone, pids_in, world  # noqa: F401


def sh(script: str) -> str:
    return f"/bin/sh -c {shlex.quote(script)}"


def preparation_entries(world, job_id: str) -> dict[str, dict]:  # noqa: F811
    job = world.job(job_id)
    return {entry["nodeId"]: entry for entry in job.status.get("preparationAndReleaseTaskStatus", [])}


def test_job_preparation_runs_once_per_node_and_release_at_the_end(world, tmp_path):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    log = tmp_path / "log"
    world.add_job(
        "job",
        jobPreparationTask={"commandLine": sh(f"echo prep $AZ_BATCH_TASK_ID >> {log}; echo ready > ready.txt")},
        jobReleaseTask={"commandLine": sh(f"echo release $AZ_BATCH_TASK_ID >> {log}")},
    )
    world.add_task("job", "one", sh(f"echo task one >> {log}; cat $AZ_BATCH_JOB_PREP_WORKING_DIR/ready.txt"))
    world.add_task("job", "two", sh(f"echo task two >> {log}"))
    one = world.until_state("job", "one", "completed")
    world.until_state("job", "two", "completed")
    assert log.read_text() == "prep jobpreparation\ntask one\ntask two\n"
    assert Path(one.runtime["taskDir"], "stdout.txt").read_text() == "ready\n"
    assert one.status["previousState"] == "running"
    prep_dir = world.node_root(node_id) / "workitems" / "job" / "job-1" / "jobpreparation"
    assert (prep_dir / "wd" / "ready.txt").exists() and (prep_dir / "stdout.txt").exists()

    entry = preparation_entries(world, "job")[node_id]
    assert entry["poolId"] == "pool"
    prep = entry["jobPreparationTaskExecutionInfo"]
    assert (prep["state"], prep["result"], prep["exitCode"], prep["retryCount"]) == ("completed", "success", 0, 0)
    assert prep["taskRootDirectory"] == "workitems/job/job-1/jobpreparation"
    assert "jobReleaseTaskExecutionInfo" not in entry
    assert world.job("job").runtime["releasePending"] is True

    world.set_job_state("job", "terminating", terminateReason="UserTerminate")
    world.drive(lambda: world.job("job").state == "completed")
    assert log.read_text().endswith("release jobrelease\n")
    job = world.job("job")
    release = preparation_entries(world, "job")[node_id]["jobReleaseTaskExecutionInfo"]
    assert (release["state"], release["result"], release["exitCode"]) == ("completed", "success", 0)
    assert "releasePending" not in job.runtime
    assert job.status["executionInfo"]["terminateReason"] == "UserTerminate"


def test_a_task_waits_in_preparing_while_the_preparation_runs(world, tmp_path):  # noqa: F811
    world.add_pool(nodes=1)
    gate = tmp_path / "gate"
    world.add_job("job", jobPreparationTask={"commandLine": sh(f"while [ ! -e {gate} ]; do sleep 0.02; done")})
    world.add_task("job", "task", "true")
    task = world.until_state("job", "task", "preparing")
    assert "startTime" not in task.status["executionInfo"]
    for _ in range(3):
        world.step()
    assert world.task("job", "task").state == "preparing"
    gate.touch()
    world.until_state("job", "task", "completed")


def test_a_failed_preparation_keeps_the_jobs_tasks_off_that_node(world):  # noqa: F811
    [first, second] = world.add_pool(nodes=2)
    world.add_job("job", jobPreparationTask={"commandLine": sh('[ "$AZ_BATCH_NODE_ID" != ' + first + " ]"),
                                             "constraints": {"maxTaskRetryCount": 1}})
    world.add_task("job", "task", sh("echo $AZ_BATCH_NODE_ID"))
    task = world.until_state("job", "task", "completed")
    assert task.runtime["node"] == second
    entries = preparation_entries(world, "job")
    failed = entries[first]["jobPreparationTaskExecutionInfo"]
    assert (failed["result"], failed["exitCode"], failed["retryCount"]) == ("failure", 1, 1)
    assert failed["failureInfo"]["code"] == "FailureExitCode"
    assert entries[second]["jobPreparationTaskExecutionInfo"]["result"] == "success"
    assert task.status["executionInfo"]["retryCount"] == 0  # preparation failures are not the task's tries
    world.add_task("job", "later", "true")
    assert world.until_state("job", "later", "completed").runtime["node"] == second


def running_task(world, tmp_path, job_id: str = "job", task_id: str = "task", **job_body):  # noqa: F811
    """A job whose one task runs a process group that ignores SIGTERM plus a child; returns the pids file."""
    pids = tmp_path / f"{job_id}-pids"
    world.add_job(job_id, **job_body)
    world.add_task(job_id, task_id, sh(f"trap '' TERM; echo $$ >> {pids}; sleep 300 & echo $! >> {pids}; wait"))
    world.drive(lambda: len(pids_in(pids)) == 2)
    world.until_state(job_id, task_id, "running")
    return pids


def test_terminating_a_job_ends_its_running_task_and_leaves_active_ones(world, tmp_path):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    pids = running_task(world, tmp_path)
    world.add_task("job", "waiting", "true")
    world.set_job_state("job", "terminating")
    world.drive(lambda: world.job("job").state == "completed")
    task = world.task("job", "task")
    assert task.state == "completed"
    assert task.status["executionInfo"]["failureInfo"]["code"] == "TaskEnded"
    assert world.task("job", "waiting").state == "active"
    assert_gone(pids_in(pids))
    assert world.node(node_id).task_key is None
    for _ in range(3):
        world.step()
    assert world.task("job", "waiting").state == "active"  # a completed job starts nothing


def test_deleting_a_job_ends_its_processes_and_removes_everything(world, tmp_path):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    pids = running_task(world, tmp_path, jobReleaseTask={"commandLine": "true"},
                        jobPreparationTask={"commandLine": "true"})
    job_items = world.node_root(node_id) / "workitems" / "job"
    assert job_items.is_dir()
    world.set_job_state("job", "deleting")
    world.drive(lambda: world.job("job") is None)
    assert world.task("job", "task") is None
    assert_gone(pids_in(pids))
    world.drive(lambda: not job_items.exists())  # the release and preparation directories too
    node = world.node(node_id)
    assert (node.state, node.task_key) == ("idle", None)


def test_a_deleted_task_row_ends_its_processes(world, tmp_path):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    pids = running_task(world, tmp_path)
    with world.state.transaction() as db:
        db.execute("DELETE FROM batch_tasks WHERE job_id = 'job' AND task_id = 'task'")
    world.drive(lambda: world.node(node_id).task_key is None)
    assert_gone(pids_in(pids))
    assert world.node(node_id).state == "idle"


def test_disabling_a_job_requeues_or_terminates_its_running_tasks(world, tmp_path):  # noqa: F811
    world.add_pool(nodes=1)
    pids = running_task(world, tmp_path, "requeued")
    world.set_job_state("requeued", "disabling", disableTasks="requeue")
    world.drive(lambda: world.job("requeued").state == "disabled")
    task = world.task("requeued", "task")
    assert task.state == "active"
    assert task.status["executionInfo"]["requeueCount"] == 1
    assert task.status["previousState"] == "running"
    assert_gone(pids_in(pids))
    for _ in range(3):
        world.step()
    assert world.task("requeued", "task").state == "active"  # a disabled job's tasks wait

    pids = running_task(world, tmp_path, "terminated")
    world.set_job_state("terminated", "disabling", disableTasks="terminate")
    world.drive(lambda: world.job("terminated").state == "disabled")
    task = world.task("terminated", "task")
    assert task.state == "completed" and task.status["executionInfo"]["failureInfo"]["code"] == "TaskEnded"
    assert_gone(pids_in(pids))

    # Enabled again: the requeued task runs (and is stopped with the world).
    world.set_job_state("requeued", "enabling")
    world.drive(lambda: world.job("requeued").state == "active")
    world.until_state("requeued", "task", "running")


def test_on_all_tasks_complete_terminates_the_job(world):  # noqa: F811
    world.add_pool(nodes=1)
    world.add_job("job", onAllTasksComplete="terminatejob")
    world.add_task("job", "a", "true")
    world.add_task("job", "b", "false")
    world.drive(lambda: world.job("job").state == "completed")
    job = world.job("job")
    assert job.status["executionInfo"]["terminateReason"] == "AllTasksComplete"
    assert {world.task("job", name).state for name in "ab"} == {"completed"}


def test_on_task_failure_performs_the_exit_options_job_action(world, tmp_path):  # noqa: F811
    world.add_pool(nodes=1)
    world.add_job("job", onTaskFailure="performexitoptionsjobaction")
    world.add_task("job", "ignored", sh("exit 2"),
                   exitConditions={"exitCodes": [{"code": 2, "exitOptions": {"jobAction": "none"}}]})
    world.until_state("job", "ignored", "completed")
    world.step()
    assert world.job("job").state == "active"
    world.add_task("job", "fatal", sh("exit 5"))
    world.drive(lambda: world.job("job").state == "completed")
    assert world.job("job").status["executionInfo"]["terminateReason"] == "TaskFailed"


def test_a_job_past_its_max_wall_clock_time_is_terminated(world, tmp_path):  # noqa: F811
    world.add_pool(nodes=1)
    pids = running_task(world, tmp_path, constraints={"maxWallClockTime": "PT1S"})
    world.drive(lambda: world.job("job").state == "completed")
    assert world.job("job").status["executionInfo"]["terminateReason"] == "MaxWallClockTimeExpiry"
    assert world.task("job", "task").status["executionInfo"]["failureInfo"]["code"] == "TaskEnded"
    assert_gone(pids_in(pids))
