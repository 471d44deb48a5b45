"""Nodes under running tasks: a node leaving the pool (requeue, terminate, task completion), a node row removed,
an emulator that crashed (its successor adopts the processes) and one that stops (every process ends)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from batchai_spec.emulator.batch import tasks_runner
from batchai_spec.emulator.batch.service import Context
from batchai_spec.emulator.clock import now
from tests.emulator.batch.tasks_support import ACCOUNT, assert_gone, pids_in, world  # noqa: F401


def sh(script: str) -> str:
    return f"/bin/sh -c {shlex.quote(script)}"


def start_stubborn(world, tmp_path, task_id: str = "task"):  # noqa: F811
    """A task that records its pids (a SIGTERM-ignoring shell and a child) and runs until its gate exists."""
    pids, gate = tmp_path / f"{task_id}-pids", tmp_path / f"{task_id}-gate"
    world.add_task("job", task_id, sh(f"trap '' TERM; echo $$ >> {pids}; sleep 300 & echo $! >> {pids};"
                                      f" while [ ! -e {gate} ]; do sleep 0.02; done; kill $!; exit 7"))
    world.drive(lambda: len(pids_in(pids)) == 2)
    task = world.until_state("job", task_id, "running")
    return task, pids, gate


def set_deallocation(world, option: str) -> None:  # noqa: F811
    with world.state.transaction() as db:
        db.execute("UPDATE batch_pools SET properties = ? WHERE account = ? AND name = 'pool'",
                   (json.dumps({"scaleSettings": {"fixedScale": {"nodeDeallocationOption": option}}}), ACCOUNT))


def leave_under_stubborn_task(world, tmp_path, deallocation: str) -> tuple[str, Path, Path]:  # noqa: F811
    """A pool of one node (`nodeDeallocationOption` `deallocation`) running start_stubborn's task, then leaving
    the pool: the node's id, the task's pids file and its gate."""
    [node_id] = world.add_pool(nodes=1)
    set_deallocation(world, deallocation)
    world.add_job("job")
    _, pids, gate = start_stubborn(world, tmp_path)
    world.set_node_state(node_id, "leavingpool")
    return node_id, pids, gate


def test_a_node_leaving_under_a_task_requeues_it(world, tmp_path):  # noqa: F811
    first, second = world.add_pool(nodes=2)
    world.add_job("job")
    world.set_node_state(second, "unusable")  # the task must start on the first node
    task, pids, _ = start_stubborn(world, tmp_path)
    assert task.runtime["node"] == first
    world.set_node_state(second, "idle")
    world.set_node_state(first, "leavingpool")
    world.drive(lambda: world.node(first).task_key is None)
    assert world.node(first).state == "leavingpool"  # the pool's step removes it
    assert_gone(pids_in(pids)[:2])
    task = world.until_state("job", "task", "running")  # again, on the node that stays
    assert task.runtime["node"] == second
    execution = task.status["executionInfo"]
    assert execution["requeueCount"] == 1 and execution["lastRequeueTime"] and execution["retryCount"] == 0


def test_a_node_leaving_with_terminate_ends_the_task(world, tmp_path):  # noqa: F811
    node_id, pids, _ = leave_under_stubborn_task(world, tmp_path, "Terminate")
    task = world.until_state("job", "task", "completed")
    assert task.status["executionInfo"]["failureInfo"]["code"] == "TaskEnded"
    assert_gone(pids_in(pids))
    assert world.node(node_id).task_key is None


def test_a_node_leaving_after_task_completion_lets_the_task_finish(world, tmp_path):  # noqa: F811
    node_id, pids, gate = leave_under_stubborn_task(world, tmp_path, "TaskCompletion")
    for _ in range(3):
        world.step()
    assert world.task("job", "task").state == "running"
    gate.touch()
    task = world.until_state("job", "task", "completed")
    assert task.status["executionInfo"]["exitCode"] == 7
    node = world.node(node_id)
    assert (node.state, node.task_key) == ("leavingpool", None)


def test_a_node_row_removed_under_a_task_requeues_it(world, tmp_path):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    world.add_job("job")
    _, pids, _ = start_stubborn(world, tmp_path)
    with world.state.transaction() as db:
        db.execute("DELETE FROM batch_nodes WHERE node_id = ?", (node_id,))
    task = world.until_state("job", "task", "active")
    assert task.status["executionInfo"]["requeueCount"] == 1
    assert_gone(pids_in(pids))


def test_a_rebooting_node_terminates_its_task_when_asked(world, tmp_path):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    world.add_job("job")
    _, pids, _ = start_stubborn(world, tmp_path)
    with world.state.transaction() as db:
        db.execute("UPDATE batch_nodes SET state = 'rebooting', runtime = json_set(runtime, '$.rebootOption',"
                   " 'terminate') WHERE node_id = ?", (node_id,))
    task = world.until_state("job", "task", "completed")
    assert task.status["executionInfo"]["failureInfo"]["code"] == "TaskEnded"
    assert_gone(pids_in(pids))


def test_a_new_emulator_adopts_running_tasks(world, tmp_path):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    world.add_job("job")
    _, pids, gate = start_stubborn(world, tmp_path)
    # The emulator crashed: a new one on the same state, with its own (empty) process table, steps on.
    successor = Context(world.state, world.config)

    def step_successor() -> None:
        tasks_runner.advance(successor, now())

    for _ in range(3):
        step_successor()
    assert world.task("job", "task").state == "running"
    gate.touch()
    world.drive(lambda: world.task("job", "task").state == "completed", step=step_successor)
    task = world.task("job", "task")
    assert (task.status["executionInfo"]["exitCode"], task.status["executionInfo"]["result"]) == (7, "failure")
    assert_gone(pids_in(pids))
    assert world.node(node_id).task_key is None


def test_emulator_shutdown_ends_every_process_and_requeues_the_task(world, tmp_path):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    world.add_job("job", jobPreparationTask={"commandLine": "true"})
    _, pids, _ = start_stubborn(world, tmp_path)
    world.stop()
    assert_gone(pids_in(pids), timeout_s=0.5)  # the shutdown waited for them
    task = world.task("job", "task")
    assert task.state == "active" and task.status["executionInfo"]["requeueCount"] == 1
    node = world.node(node_id)
    assert (node.state, node.task_key) == ("idle", None)
    assert not list((world.state.root / "batch-launches").iterdir())
    # The next emulator runs it again.
    assert world.until_state("job", "task", "running").runtime["node"] == node_id
    assert Path(world.task("job", "task").runtime["taskDir"]).is_dir()
