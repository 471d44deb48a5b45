"""Pools and their nodes over time: allocation, mounts, start tasks as real processes, node errors, shrinking by
`nodeDeallocationOption`, stopping a resize, low-priority nodes, a restart in the middle of a start task.

Through the emulator and azure-mgmt-batch where a client can drive it; the cases that need a task on a node are
driven by the pool step alone (`Bench`: a State of the test's own and `nodes.advance`), so that no task runner
moves the rows the test wrote.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batchai_spec.emulator.batch import nodes, pools, service, store
from batchai_spec.emulator.batch.service import Context
from batchai_spec.emulator.clock import now
from batchai_spec.emulator.server import start_in_process
from batchai_spec.emulator.state import State
from tests.emulator.batch.conftest import (
    BatchAccount, BatchShare, batch_delays, batch_mgmt_for, nodes_of, pool_body, wait_for,
)
from tests.emulator.batchai_support import fast_config
from tests.emulator_clients import LOCATION, new_storage_account, share_service_for, unique_name


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_nodes(emulator, account: BatchAccount, pool: str, done: Callable[[list[store.Node]], bool]):
    return wait_for(lambda: nodes_of(emulator, account.name, pool), done)


def all_in(state: str, count: int) -> Callable[[list[store.Node]], bool]:
    return lambda found: len(found) == count and all(node.state == state for node in found)


def test_pool_grows_to_two_nodes_with_a_mounted_share_and_a_start_task(emulator, batch_mgmt,
                                                                       batch_account: BatchAccount,
                                                                       batch_share: BatchShare):
    group, name = batch_account.resource_group, batch_account.name
    command = ("/bin/sh -c 'env | grep ^AZ_BATCH_ | sort > $AZ_BATCH_NODE_MOUNTS_DIR/afs/$AZ_BATCH_NODE_ID.env"
               " && echo started on $AZ_BATCH_NODE_ID && pwd'")
    created = batch_mgmt.pool.create(group, name, "p1", pool_body(
        dedicated=2, mountConfiguration=[batch_share.mount()],
        startTask={"commandLine": command, "environmentSettings": [
            {"name": "GREETING", "value": "hi"},
            # Reserved by Batch: its own values win (the env file below shows the real ones).
            {"name": "AZ_BATCH_NODE_ID", "value": "spoofed"}, {"name": "AZ_BATCH_TASK_DIR", "value": "/spoofed"},
        ]},
    ))
    assert created.allocation_state == "Resizing" and created.current_dedicated_nodes == 0

    found = wait_nodes(emulator, batch_account, "p1", all_in("idle", 2))
    pool = wait_for(lambda: batch_mgmt.pool.get(group, name, "p1"), lambda p: p.allocation_state == "Steady")
    assert pool.current_dedicated_nodes == 2 and pool.current_low_priority_nodes == 0
    assert sorted(node.runtime["ip"] for node in found) == ["127.10.0.4", "127.10.0.5"]
    for node in found:
        assert node.node_id.startswith("tvmps_") and node.node_id.endswith("_d") and len(node.node_id) == 72
        root = Path(node.runtime["root"])
        assert root == emulator.state.root / "batch" / name / "p1" / node.node_id
        assert all((root / sub).is_dir() for sub in ("startup", "shared", "fsmounts", "workitems"))
        assert (root / "fsmounts" / "afs").resolve() == batch_share.directory.resolve()
        info = node.runtime["startTaskInfo"]
        assert (info["state"], info["result"], info["exitCode"], info["retryCount"]) == ("completed", "success", 0, 0)
        assert (root / "startup" / "stdout.txt").read_text() == f"started on {node.node_id}\n{root}/startup/wd\n"
        assert (root / "startup" / "stderr.txt").read_text() == ""
        env = dict(line.split("=", 1) for line in (batch_share.directory / f"{node.node_id}.env").read_text()
                   .splitlines())
        assert env == {
            "AZ_BATCH_ACCOUNT_NAME": name,
            "AZ_BATCH_ACCOUNT_URL": f"https://{name}.{LOCATION}.batch.azure.com",
            "AZ_BATCH_POOL_ID": "p1",
            "AZ_BATCH_NODE_ID": node.node_id,
            "AZ_BATCH_NODE_IS_DEDICATED": "true",
            "AZ_BATCH_NODE_ROOT_DIR": str(root),
            "AZ_BATCH_NODE_STARTUP_DIR": f"{root}/startup",
            "AZ_BATCH_NODE_STARTUP_WORKING_DIR": f"{root}/startup/wd",
            "AZ_BATCH_NODE_SHARED_DIR": f"{root}/shared",
            "AZ_BATCH_NODE_MOUNTS_DIR": f"{root}/fsmounts",
            "AZ_BATCH_TASK_DIR": f"{root}/startup",
            "AZ_BATCH_TASK_WORKING_DIR": f"{root}/startup/wd",
            "AZ_BATCH_TASK_USER_IDENTITY": "PoolNonAdmin",
        }
    # Written through the mount: the share (Files API) has both files.
    share_files = {item.name for item in _share_client(batch_share, emulator).list_directories_and_files()}
    assert share_files == {f"{node.node_id}.env" for node in found}

    # Shrink: the newest idle node leaves, the pool is Resizing, then Steady with one node.
    newest = max(found, key=lambda node: node.seq)
    batch_mgmt.pool.update(group, name, "p1", {"properties": {"scaleSettings": {"fixedScale": {
        "targetDedicatedNodes": 1}}}})
    left = wait_nodes(emulator, batch_account, "p1", all_in("idle", 1))
    assert left[0].node_id != newest.node_id
    # The scheduler removes a node's directory right after its row.
    wait_for(lambda: Path(newest.runtime["root"]).exists(), lambda exists: not exists)
    assert (batch_share.directory / f"{newest.node_id}.env").exists()  # the share outlives the node
    wait_for(lambda: batch_mgmt.pool.get(group, name, "p1"),
             lambda p: p.allocation_state == "Steady" and p.current_dedicated_nodes == 1)


def _share_client(share: BatchShare, emulator):
    return share_service_for(emulator.endpoint, share.account, share.key).get_share_client(share.share)


def test_failing_start_task_makes_nodes_starttaskfailed_after_its_retries(emulator, batch_mgmt,
                                                                          batch_account: BatchAccount):
    group, name = batch_account.resource_group, batch_account.name
    batch_mgmt.pool.create(group, name, "p1", pool_body(dedicated=1, startTask={
        "commandLine": "/bin/sh -c 'echo broken >&2; exit 3'", "maxTaskRetryCount": 2}))
    [node] = wait_nodes(emulator, batch_account, "p1", all_in("starttaskfailed", 1))
    info = node.runtime["startTaskInfo"]
    assert (info["state"], info["result"], info["exitCode"], info["retryCount"]) == ("completed", "failure", 3, 2)
    assert info["failureInfo"]["code"] == "FailureExitCode" and info["failureInfo"]["category"] == "UserError"
    assert "lastRetryTime" in info
    assert (Path(node.runtime["root"]) / "startup" / "stderr.txt").read_text() == "broken\n" * 3
    assert batch_mgmt.pool.get(group, name, "p1").allocation_state == "Steady"

    # Without waitForSuccess the node is idle at once and stays so; the failure is in startTaskInfo.
    batch_mgmt.pool.create(group, name, "p2", pool_body(dedicated=1, startTask={
        "commandLine": "/bin/sh -c 'exit 5'", "waitForSuccess": False}))
    [node] = wait_nodes(emulator, batch_account, "p2",
                        lambda found: len(found) == 1 and (found[0].runtime.get("startTaskInfo") or {}).get("state")
                        == "completed")
    assert node.state == "idle" and node.runtime["startTaskInfo"]["exitCode"] == 5

    # A program that does not exist.
    batch_mgmt.pool.create(group, name, "p3", pool_body(dedicated=1, startTask={"commandLine": "no-such-program"}))
    [node] = wait_nodes(emulator, batch_account, "p3", all_in("starttaskfailed", 1))
    assert node.runtime["startTaskInfo"]["failureInfo"]["code"] == "CommandProgramNotFound"


def test_mount_failures_make_nodes_unusable_with_errors(emulator, batch_mgmt, batch_account: BatchAccount,
                                                        batch_share: BatchShare):
    group, name = batch_account.resource_group, batch_account.name
    wrong_key = "V3Jvbmcga2V5IGZvciB0aGlzIGFjY291bnQ=" * 2
    cases = {
        "wrongkey": batch_share.mount(key=wrong_key),
        "noshare": batch_share.mount(url=f"https://{batch_share.account}.file.core.windows.net/missing"),
        "noaccount": {"azureFileShareConfiguration": {
            "accountName": "nosuchaccount", "azureFileUrl": "https://nosuchaccount.file.core.windows.net/s",
            "accountKey": wrong_key, "relativeMountPath": "afs"}},
    }
    for pool, mount in cases.items():
        batch_mgmt.pool.create(group, name, pool, pool_body(dedicated=1, mountConfiguration=[mount],
                                                            startTask={"commandLine": "/bin/true"}))
    for pool in cases:
        [node] = wait_nodes(emulator, batch_account, pool, all_in("unusable", 1))
        [error] = node.runtime["errors"]
        assert error["code"] == "MountConfigurationError"
        assert error["message"] == "There was an error attempting to configure the specified mounts."
        details = {item["name"]: item["value"] for item in error["errorDetails"]}
        assert details["MountConfigurationPath"] == "afs"
        assert wrong_key not in details["MountConfigurationErrorMessage"]
        assert "startTaskInfo" not in node.runtime  # the start task never ran
    reasons = {pool: nodes_of(emulator, name, pool)[0].runtime["errors"][0]["errorDetails"][1]["value"]
               for pool in cases}
    assert "access denied" in reasons["wrongkey"]
    assert "does not exist" in reasons["noshare"] and "does not exist" in reasons["noaccount"]
    # An unusable node counts in the pool, which is Steady.
    assert batch_mgmt.pool.get(group, name, "wrongkey").current_dedicated_nodes == 1


def test_low_priority_nodes(emulator, batch_mgmt, batch_account: BatchAccount):
    group, name = batch_account.resource_group, batch_account.name
    batch_mgmt.pool.create(group, name, "p1", pool_body(dedicated=1, low_priority=2))
    found = wait_nodes(emulator, batch_account, "p1", all_in("idle", 3))
    assert sorted(node.node_id[-2:] for node in found) == ["_d", "_p", "_p"]
    assert sorted(node.runtime["isDedicated"] for node in found) == [False, False, True]
    pool = wait_for(lambda: batch_mgmt.pool.get(group, name, "p1"), lambda p: p.allocation_state == "Steady")
    assert (pool.current_dedicated_nodes, pool.current_low_priority_nodes) == (1, 2)


def test_stop_resize_while_shrinking_keeps_the_pool_where_it_stopped(emulator, batch_context, batch_mgmt,
                                                                     batch_account: BatchAccount):
    group, name = batch_account.resource_group, batch_account.name
    batch_mgmt.pool.create(group, name, "p1", pool_body(dedicated=3))
    wait_nodes(emulator, batch_account, "p1", all_in("idle", 3))
    with batch_delays(batch_context, node_leaving_s=3.0):
        batch_mgmt.pool.update(group, name, "p1", {"properties": {"scaleSettings": {"fixedScale": {
            "targetDedicatedNodes": 1}}}})
        wait_nodes(emulator, batch_account, "p1",
                   lambda found: sum(node.state == "leavingpool" for node in found) == 2)
        stopped = batch_mgmt.pool.stop_resize(group, name, "p1")
        assert stopped.allocation_state == "Stopping"
        # The nodes already leaving still leave; then the pool is Steady where it is.
        pool = wait_for(lambda: batch_mgmt.pool.get(group, name, "p1"), lambda p: p.allocation_state == "Steady")
    assert pool.current_dedicated_nodes == 1
    assert nodes_of(emulator, name, "p1")[0].state == "idle"


# ----------------------------------------------------------------------------------------------- the step alone


class Bench:
    """A State of the test's own with an account, pools made by pools.new_pool and the pool step driven by hand."""

    ACCOUNT = "benchacct"

    def __init__(self, root: Path):
        self.state = State(root / "state")
        self.ctx = Context(self.state, fast_config())
        with self.state.transaction() as db:
            db.execute(
                "INSERT INTO batch_accounts (name, subscription, resource_group, location, body, key1, key2, etag,"
                " modified_at, seq) VALUES (?, 'sub', 'rg', 'westeurope', ?, 'k1', 'k2', '0x1', ?, 1)",
                (self.ACCOUNT, json.dumps({"id": "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Batch/"
                                                 "batchAccounts/benchacct",
                                           "properties": {"accountEndpoint": "benchacct.westeurope.batch.azure.com"}}),
                 now()),
            )

    def add_pool(self, name: str, **body: Any) -> None:
        with self.state.transaction() as db:
            pools.new_pool(db, self.ACCOUNT, name, pools.normalize_properties(pool_body(**body)["properties"]), now())

    def change(self, name: str, change: Callable[[store.Pool, Any], None]) -> None:
        with self.state.transaction() as db:
            pool = store.get_pool(db, self.ACCOUNT, name)
            change(pool, db)
            store.save_pool(db, pool)

    def scale(self, name: str, dedicated: int, option: str | None = None) -> None:
        fixed: dict[str, Any] = {"targetDedicatedNodes": dedicated}
        if option:
            fixed["nodeDeallocationOption"] = option

        def resize(pool, db):
            properties = {**pool.properties, "scaleSettings": {"fixedScale": fixed}}
            pools.change_properties(db, pool, pools.normalize_properties(properties), now())

        self.change(name, resize)

    def nodes(self, pool: str) -> list[store.Node]:
        return store.list_nodes(self.state.connection(), self.ACCOUNT, pool)

    def pool(self, name: str) -> store.Pool | None:
        return store.get_pool(self.state.connection(), self.ACCOUNT, name)

    def run_until(self, done: Callable[[], bool], timeout_s: float = 20.0) -> None:
        """Step the pool steps (never the task runner) until `done()`; fails on timeout."""
        deadline = time.monotonic() + timeout_s
        pause = 0.005
        while not done():
            if time.monotonic() > deadline:
                pytest.fail("timed out stepping the pool step")
            nodes.advance(self.ctx, now())
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def give_task(self, pool: str, node_id: str, key: str = "job/task") -> None:
        """What the task runner does when a task starts on a node."""
        with self.state.transaction() as db:
            node = store.get_node(db, self.ACCOUNT, pool, node_id)
            node.state, node.task_key = "running", key
            store.save_node(db, node)

    def end_task(self, pool: str, node_id: str) -> None:
        """What the task runner does when the task ended (or was stopped): task_key cleared, idle unless leaving."""
        with self.state.transaction() as db:
            node = store.get_node(db, self.ACCOUNT, pool, node_id)
            node.task_key = None
            if node.state == "running":
                node.state = "idle"
            store.save_node(db, node)

    def close(self) -> None:
        nodes.stop_start_tasks(self.ctx)
        self.state.close()


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    world = Bench(tmp_path)
    yield world
    world.close()


def _two_nodes_one_busy(bench: Bench, option: str | None) -> tuple[store.Node, store.Node]:
    bench.add_pool("p", dedicated=2)
    bench.run_until(lambda: [node.state for node in bench.nodes("p")] == ["idle", "idle"])
    older, newer = bench.nodes("p")
    bench.give_task("p", newer.node_id)
    bench.give_task("p", older.node_id, "job/other")
    bench.scale("p", 1, option)
    return older, newer


@pytest.mark.parametrize("option", [None, "Requeue", "Terminate"])
def test_a_busy_node_leaves_at_once_with_requeue_or_terminate(bench: Bench, option):
    older, newer = _two_nodes_one_busy(bench, option)
    bench.run_until(lambda: any(node.state == "leavingpool" for node in bench.nodes("p")))
    leaving = [node for node in bench.nodes("p") if node.state == "leavingpool"]
    assert [node.node_id for node in leaving] == [newer.node_id]  # the newest goes first
    assert leaving[0].task_key == "job/task" and bench.pool("p").status["allocationState"] == "Resizing"
    # It stays in the pool until the task runner has stopped its task.
    for _ in range(5):
        nodes.advance(bench.ctx, now())
    assert len(bench.nodes("p")) == 2
    bench.end_task("p", newer.node_id)
    bench.run_until(lambda: len(bench.nodes("p")) == 1)
    assert bench.nodes("p")[0].node_id == older.node_id
    bench.run_until(lambda: bench.pool("p").status["allocationState"] == "Steady")


@pytest.mark.parametrize("option", ["TaskCompletion", "RetainedData"])
def test_a_busy_node_finishes_its_task_first_with_taskcompletion(bench: Bench, option):
    older, newer = _two_nodes_one_busy(bench, option)
    bench.run_until(lambda: any(node.runtime.get("leaveAfterTask") for node in bench.nodes("p")))
    waiting = bench.nodes("p")[1]
    assert waiting.node_id == newer.node_id and waiting.state == "running"
    assert waiting.runtime["schedulingState"] == "disabled" and not nodes.is_schedulable(waiting)
    assert bench.pool("p").status["allocationState"] == "Resizing"
    bench.end_task("p", newer.node_id)
    bench.run_until(lambda: len(bench.nodes("p")) == 1)
    assert bench.nodes("p")[0].node_id == older.node_id
    bench.run_until(lambda: bench.pool("p").status["allocationState"] == "Steady")


def test_idle_nodes_leave_before_busy_ones(bench: Bench):
    bench.add_pool("p", dedicated=3)
    bench.run_until(lambda: [node.state for node in bench.nodes("p")] == ["idle"] * 3)
    first, second, third = bench.nodes("p")
    bench.give_task("p", second.node_id, "job/a")
    bench.give_task("p", third.node_id, "job/b")
    bench.scale("p", 1, "TaskCompletion")
    # The idle one goes at once; of the busy ones the newest finishes its task first.
    bench.run_until(lambda: len(bench.nodes("p")) == 2)
    assert [node.node_id for node in bench.nodes("p")] == [second.node_id, third.node_id]
    assert [node.runtime.get("leaveAfterTask", False) for node in bench.nodes("p")] == [False, True]
    # Growing again keeps the node that was to leave after its task instead of allocating a new one.
    bench.scale("p", 2, "TaskCompletion")
    bench.run_until(lambda: bench.pool("p").status["allocationState"] == "Steady")
    kept = bench.nodes("p")
    assert [node.node_id for node in kept] == [second.node_id, third.node_id]
    assert "leaveAfterTask" not in kept[1].runtime and kept[1].runtime["schedulingState"] == "enabled"


def test_deleting_a_pool_takes_busy_nodes_too(bench: Bench):
    bench.add_pool("p", dedicated=1)
    bench.run_until(lambda: [node.state for node in bench.nodes("p")] == ["idle"])
    [node] = bench.nodes("p")
    bench.give_task("p", node.node_id)
    bench.scale("p", 1, "TaskCompletion")
    bench.change("p", lambda pool, db: pools.mark_deleting(db, pool, now()))
    bench.run_until(lambda: bench.nodes("p")[0].state == "leavingpool")  # terminate: whatever the option
    bench.end_task("p", node.node_id)
    bench.run_until(lambda: bench.pool("p") is None)
    assert not Path(node.runtime["root"]).exists()


def test_a_start_task_cut_short_by_a_restart_runs_again(tmp_path: Path):
    state_dir = tmp_path / "state"
    marker = tmp_path / "runs"
    with start_in_process(state_dir) as emulator:
        service.context(emulator.state).config = fast_config()
        account = new_storage_account(emulator.endpoint)
        client = batch_mgmt_for(emulator.endpoint)
        name = unique_name("batch")
        client.batch_account.begin_create(account.resource_group, name, {"location": LOCATION}).result()
        client.pool.create(account.resource_group, name, "p1", pool_body(dedicated=1, startTask={
            "commandLine": f"/bin/sh -c 'echo run >> {marker}; exec sleep 60'"}))
        [node] = wait_for(lambda: nodes_of(emulator, name, "p1"),
                          lambda found: len(found) == 1 and found[0].state == "waitingforstarttask")
        wait_for(lambda: marker.exists(), bool)
        pid = node.runtime["startTaskProcess"]["pid"]
    assert not alive(pid)  # a clean stop ends start tasks
    with start_in_process(state_dir) as emulator:
        service.context(emulator.state).config = fast_config()
        wait_for(lambda: marker.read_text(), lambda text: text == "run\nrun\n")
        [node] = nodes_of(emulator, name, "p1")
        assert node.state == "waitingforstarttask" and node.runtime["startTaskInfo"]["state"] == "running"
        client = batch_mgmt_for(emulator.endpoint)
        client.pool.begin_delete(account.resource_group, name, "p1").result()
        assert nodes_of(emulator, name, "p1") == []


def test_a_pool_gets_the_nodes_its_account_core_quota_allows_and_says_why_not_more(bench: Bench):
    """500 dedicated cores (a new account's quota): 16-core nodes, 31 of them fit; the rest is a resize error."""
    bench.add_pool("big", dedicated=100_000, vmSize="STANDARD_D14")
    bench.run_until(lambda: bench.pool("big").status.get("allocationState") == "Steady")
    assert len(bench.nodes("big")) == 500 // 16
    errors = bench.pool("big").status["resizeOperationStatus"]["errors"]
    assert [error["code"] for error in errors] == ["AccountCoreQuotaReached"]
    bench.add_pool("more", dedicated=1, vmSize="STANDARD_D14")  # 496 cores are used: 4 are left
    bench.run_until(lambda: bench.pool("more").status.get("allocationState") == "Steady")
    assert bench.nodes("more") == []
