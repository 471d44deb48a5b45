"""Batch tasks run as real processes: directories, live stdout, exit codes, retries, the wall clock, the
environment, terminate requests (rows inserted as the data plane leaves them; the task runner's step driven)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from tests.emulator.batch.tasks_support import ACCOUNT, assert_gone, pids_in, wait_file, world  # noqa: F401


def sh(script: str) -> str:
    """A command line that runs `script` through a shell, as a Batch user writes it."""
    return f"/bin/sh -c {shlex.quote(script)}"


def test_a_task_streams_stdout_while_it_runs_and_completes_with_its_exit_code(world, tmp_path):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    world.add_job("job")
    gate = tmp_path / "gate"
    world.add_task("job", "task-1", sh(f"echo started; echo oops >&2; while [ ! -e {gate} ]; do sleep 0.02; done;"
                                       " echo finished; exit 0"))

    task = world.until_state("job", "task-1", "running")
    node_root = world.node_root(node_id)
    task_dir = node_root / "workitems" / "job" / "job-1" / "task-1"
    assert task.runtime["taskDir"] == str(task_dir)
    assert task.runtime["node"] == node_id
    assert (task_dir / "wd").is_dir()
    node = world.node(node_id)
    assert (node.state, node.task_key) == ("running", "job/task-1")
    info = task.status["nodeInfo"]
    assert info["nodeId"] == node_id and info["poolId"] == "pool" and info["affinityId"] == f"TVM:{node_id}"
    assert info["taskRootDirectory"] == "workitems/job/job-1/task-1"
    assert info["taskRootDirectoryUrl"] == (f"https://{ACCOUNT}.westeurope.batch.example/pools/pool/nodes/{node_id}"
                                            "/files/workitems/job/job-1/task-1")
    assert task.status["previousState"] == "active"
    assert task.status["executionInfo"]["startTime"]

    # Written as it comes, readable while the task still runs.
    assert wait_file(task_dir / "stdout.txt", lambda text: text == "started\n") == "started\n"
    assert wait_file(task_dir / "stderr.txt", lambda text: text == "oops\n") == "oops\n"
    assert world.task("job", "task-1").state == "running"

    gate.touch()
    task = world.until_state("job", "task-1", "completed")
    assert (task_dir / "stdout.txt").read_text() == "started\nfinished\n"
    execution = task.status["executionInfo"]
    assert execution["exitCode"] == 0 and execution["result"] == "success"
    assert "failureInfo" not in execution
    assert execution["endTime"] >= execution["startTime"]
    assert task.status["previousState"] == "running"
    node = world.node(node_id)
    assert (node.state, node.task_key) == ("idle", None)


def test_a_failing_exit_code_is_a_failure_as_azure_reports_it(world):  # noqa: F811
    world.add_pool(nodes=1)
    world.add_job("job")
    world.add_task("job", "fails", sh("exit 3"))
    task = world.until_state("job", "fails", "completed")
    execution = task.status["executionInfo"]
    assert execution["exitCode"] == 3
    assert execution["result"] == "failure"
    assert execution["failureInfo"] == {"category": "UserError", "code": "FailureExitCode",
                                        "message": "The task exited with an exit code representing a failure"}
    assert execution["retryCount"] == 0


def test_the_command_line_runs_without_a_shell(world):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    world.add_job("job")
    world.add_task("job", "literal", "echo $AZ_BATCH_TASK_ID | > 'two words'")
    world.add_task("job", "missing", "no-such-program-here --flag")
    literal = world.until_state("job", "literal", "completed")
    assert Path(literal.runtime["taskDir"], "stdout.txt").read_text() == "$AZ_BATCH_TASK_ID | > two words\n"
    missing = world.until_state("job", "missing", "completed")
    assert missing.status["executionInfo"]["exitCode"] == 127
    assert "no-such-program-here" in Path(missing.runtime["taskDir"], "stderr.txt").read_text()


def test_a_task_is_retried_up_to_max_task_retry_count(world, tmp_path):  # noqa: F811
    world.add_pool(nodes=1)
    world.add_job("job")
    counter = tmp_path / "tries"
    # Fails twice, then succeeds.
    count_try = f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; echo try $n;"
    world.add_task("job", "flaky", sh(count_try + " [ $n -ge 3 ]"), constraints={"maxTaskRetryCount": 2})
    task = world.until_state("job", "flaky", "completed")
    execution = task.status["executionInfo"]
    assert counter.read_text() == "3\n"
    assert execution["retryCount"] == 2 and execution["result"] == "success"
    assert execution["lastRetryTime"] == execution["startTime"]
    assert Path(task.runtime["taskDir"], "stdout.txt").read_text() == "try 3\n"  # each try starts afresh

    # Out of retries (the job's constraints apply where the task has none): the last exit code, a failure.
    world.add_job("job2", constraints={"maxTaskRetryCount": 1})
    world.add_task("job2", "broken", sh("exit 4"))
    task = world.until_state("job2", "broken", "completed")
    execution = task.status["executionInfo"]
    assert (execution["retryCount"], execution["exitCode"], execution["result"]) == (1, 4, "failure")
    assert execution["failureInfo"]["code"] == "FailureExitCode"


def test_max_wall_clock_time_ends_the_task_and_its_processes(world, tmp_path):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    world.add_job("job")
    pids = tmp_path / "pids"
    world.add_task("job", "slow", sh(f"sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait"),
                   constraints={"maxWallClockTime": "PT1S"})
    world.drive(lambda: len(pids_in(pids)) == 2)
    task = world.until_state("job", "slow", "completed")
    execution = task.status["executionInfo"]
    assert execution["result"] == "failure"
    assert execution["failureInfo"]["code"] == "TaskEnded"
    assert execution["failureInfo"]["category"] == "ServerError"
    assert execution["exitCode"] == 143  # ended by SIGTERM
    assert_gone(pids_in(pids))
    assert "maxWallClockTime" in Path(task.runtime["taskDir"], "emulator.log").read_text()
    assert world.node(node_id).state == "idle"


def test_the_environment_is_batchs(world, tmp_path):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    world.add_job("job", commonEnvironmentSettings=[{"name": "COMMON", "value": "c"},
                                                    {"name": "SHADOWED", "value": "job"}])
    dump = f"{sys.executable} -c \"import json, os; print(json.dumps(dict(os.environ)))\""
    world.add_task("job", "env", dump, environmentSettings=[{"name": "OWN", "value": "o"},
                                                           {"name": "SHADOWED", "value": "task"},
                                                           {"name": "AZ_BATCH_TASK_ID", "value": "forged"}],
                   userIdentity={"autoUser": {"scope": "pool", "elevationLevel": "admin"}})
    task = world.until_state("job", "env", "completed")
    env = json.loads(Path(task.runtime["taskDir"], "stdout.txt").read_text())
    root = world.node_root(node_id)
    task_dir = root / "workitems" / "job" / "job-1" / "env"
    expected = {
        "AZ_BATCH_ACCOUNT_NAME": ACCOUNT,
        "AZ_BATCH_ACCOUNT_URL": f"https://{ACCOUNT}.westeurope.batch.example",
        "AZ_BATCH_POOL_ID": "pool",
        "AZ_BATCH_NODE_ID": node_id,
        "AZ_BATCH_NODE_IS_DEDICATED": "true",
        "AZ_BATCH_JOB_ID": "job",
        "AZ_BATCH_TASK_ID": "env",
        "AZ_BATCH_NODE_ROOT_DIR": str(root),
        "AZ_BATCH_NODE_SHARED_DIR": str(root / "shared"),
        "AZ_BATCH_NODE_MOUNTS_DIR": str(root / "fsmounts"),
        "AZ_BATCH_NODE_STARTUP_DIR": str(root / "startup"),
        "AZ_BATCH_TASK_DIR": str(task_dir),
        "AZ_BATCH_TASK_WORKING_DIR": str(task_dir / "wd"),
        "AZ_BATCH_TASK_USER_IDENTITY": "PoolAdmin",
        "COMMON": "c",
        "OWN": "o",
        "SHADOWED": "task",
    }
    assert {name: env.get(name) for name in expected} == expected
    assert "AZ_BATCH_JOB_PREP_DIR" not in env and "AZ_BATCH_HOST_LIST" not in env
    assert Path(task.runtime["taskDir"], "wd").is_dir()


def test_the_working_directory_is_wd(world):  # noqa: F811
    world.add_pool(nodes=1)
    world.add_job("job")
    world.add_task("job", "pwd", sh("pwd; echo data > out.txt"))
    task = world.until_state("job", "pwd", "completed")
    task_dir = Path(task.runtime["taskDir"])
    assert Path((task_dir / "stdout.txt").read_text().strip()).resolve() == (task_dir / "wd").resolve()
    assert (task_dir / "wd" / "out.txt").read_text() == "data\n"


def test_a_terminate_request_ends_a_running_task(world, tmp_path):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    world.add_job("job")
    pids = tmp_path / "pids"
    # Ignores SIGTERM: SIGKILL after the grace period.
    world.add_task("job", "stubborn", sh(f"trap '' TERM; echo $$ >> {pids}; sleep 300 & echo $! >> {pids}; wait"))
    world.drive(lambda: len(pids_in(pids)) == 2)
    world.until_state("job", "stubborn", "running")
    world.update_task_runtime("job", "stubborn", terminateRequested=True)
    task = world.until_state("job", "stubborn", "completed")
    execution = task.status["executionInfo"]
    assert execution["failureInfo"] == {"category": "UserError", "code": "TaskEnded",
                                        "message": "Task Was Ended by User Request"}
    assert execution["result"] == "failure"
    assert execution["exitCode"] in (137, 143)
    assert "terminateRequested" not in task.runtime
    assert_gone(pids_in(pids))
    log = Path(task.runtime["taskDir"], "emulator.log").read_text()
    assert "sent SIGTERM to process group" in log and "sent SIGKILL" in log
    assert world.node(node_id).task_key is None

    # A task that never started completes at once.
    world.add_job("waiting", pool="nowhere")
    world.add_task("waiting", "queued", "true")
    world.update_task_runtime("waiting", "queued", terminateRequested=True)
    task = world.until_state("waiting", "queued", "completed")
    assert task.status["executionInfo"]["failureInfo"]["code"] == "TaskEnded"
    assert "exitCode" not in task.status["executionInfo"]


def test_a_finished_command_leaves_no_process_behind(world, tmp_path):  # noqa: F811
    world.add_pool(nodes=1)
    world.add_job("job")
    pids = tmp_path / "pids"
    world.add_task("job", "forks", sh(f"(trap '' TERM; exec sleep 300) & echo $! >> {pids}; exit 0"))
    task = world.until_state("job", "forks", "completed")
    assert task.status["executionInfo"]["result"] == "success"
    assert_gone(pids_in(pids))


def test_tasks_queue_for_free_nodes_in_order_and_honour_dependencies(world, tmp_path):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    world.add_job("job")
    gate = tmp_path / "gate"
    world.add_task("job", "first", sh(f"while [ ! -e {gate} ]; do sleep 0.02; done"))
    world.add_task("job", "after", "true", dependsOn={"taskIds": ["second"]})
    world.add_task("job", "second", "true")
    world.until_state("job", "first", "running")
    for _ in range(3):
        world.step()
    assert world.task("job", "second").state == "active"  # one task per node
    gate.touch()
    second = world.until_state("job", "second", "completed")
    after = world.until_state("job", "after", "completed")
    assert after.status["executionInfo"]["startTime"] >= second.status["executionInfo"]["endTime"]


def test_a_container_task_runs_on_the_host_and_says_so(world):  # noqa: F811
    world.add_pool(nodes=1)
    world.add_job("job")
    world.add_task("job", "boxed", "echo hi", containerSettings={"imageName": "ubuntu:22.04"})
    task = world.until_state("job", "boxed", "completed")
    assert task.status["executionInfo"]["exitCode"] == 0
    log = Path(task.runtime["taskDir"], "emulator.log").read_text()
    assert "ubuntu:22.04" in log and "no container engine" in log


def test_retention_time_removes_the_task_directory(world):  # noqa: F811
    world.add_pool(nodes=1)
    world.add_job("job")
    world.add_task("job", "short-lived", "true", constraints={"retentionTime": "PT0.2S"})
    task = world.until_state("job", "short-lived", "completed")
    task_dir = Path(task.runtime["taskDir"])
    world.drive(lambda: not task_dir.exists())
    assert world.task("job", "short-lived").runtime["filesDeleted"] is True


def test_one_task_that_cannot_be_scheduled_does_not_stop_the_others(world):  # noqa: F811
    world.add_pool(nodes=1)
    world.add_job("job", usesTaskDependencies=True)
    # A row the data plane now refuses (an older store could hold one): scheduling it raises, and is logged.
    world.add_task("job", "broken", "true", dependsOn={"taskIdRanges": [{"start": "x", "end": 3}]})
    world.add_task("job", "fine", "true")
    assert world.until_state("job", "fine", "completed").status["executionInfo"]["result"] == "success"
    assert world.task("job", "broken").state == "active"
