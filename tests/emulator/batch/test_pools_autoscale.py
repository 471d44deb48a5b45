"""Auto-scale: the formula language the tool generates, evaluation errors as Azure reports them, and a pool
that follows its pending tasks (tasks inserted as rows: the data plane's own tests add them through azure-batch)."""

from __future__ import annotations

import json

import pytest

from batchai_spec.emulator.batch import autoscale, store
from batchai_spec.emulator.batch.autoscale import EVALUATION_ERROR, SYNTAX_ERROR, FormulaError, Inputs
from batchai_spec.emulator.clock import iso8601, now
from tests.emulator.batch.conftest import BatchAccount, nodes_of, pool_body, wait_for

GENERATED = ("initial = 1; pending = $PendingTasks.GetSample(1);"
             " $TargetDedicatedNodes = min(3, max(initial, pending));"
             " $NodeDeallocationOption = taskcompletion;")


def run(formula: str, **inputs) -> autoscale.Outcome:
    return autoscale.evaluate_formula(formula, Inputs(**inputs))


def test_the_generated_formula_follows_pending_tasks_between_min_and_max():
    assert (run(GENERATED).dedicated, run(GENERATED, active=2).dedicated) == (1, 2)
    assert run(GENERATED, active=2, running=5).dedicated == 3
    outcome = run(GENERATED, active=1, running=1)
    assert outcome.deallocation_option == "taskcompletion"
    assert outcome.results == ("$TargetDedicatedNodes=2;$TargetLowPriorityNodes=0;"
                               "$NodeDeallocationOption=taskcompletion;initial=1;pending=[2]")


@pytest.mark.parametrize("formula, inputs, expected", [
    ("$TargetLowPriorityNodes=3", {}, (0, 3, "requeue")),  # the recorded evaluateautoscale case
    ("$TargetDedicatedNodes = $ActiveTasks.GetSample(1) + $RunningTasks.GetSample(1)", {"active": 2, "running": 1},
     (3, 0, "requeue")),
    ("$TargetDedicatedNodes = max(0, $PendingTasks.GetSample(TimeInterval_Minute * 5, 70))", {"active": 4},
     (4, 0, "requeue")),
    ("$TargetDedicatedNodes = $PendingTasks.GetSamplePercent(TimeInterval_Minute) < 70 ? 1 : 2", {}, (2, 0, "requeue")),
    ("x = 5; $TargetDedicatedNodes = x > 3 && x < 10 ? x % 4 : -1;", {}, (1, 0, "requeue")),
    ("$TargetDedicatedNodes = ceil(avg($PendingTasks.GetSample(1)) / 2)", {"active": 3}, (2, 0, "requeue")),
    ("// keep what we have\n$TargetDedicatedNodes = $CurrentDedicatedNodes;", {"current_dedicated": 2},
     (2, 0, "requeue")),
    ("$NodeDeallocationOption = Terminate", {"target_dedicated": 4}, (4, 0, "terminate")),
    ("$TargetDedicatedNodes = -3", {}, (0, 0, "requeue")),
])
def test_formulas(formula, inputs, expected):
    outcome = run(formula, **inputs)
    assert (outcome.dedicated, outcome.low_priority, outcome.deallocation_option) == expected


@pytest.mark.parametrize("formula, code", [
    ("$TargetDedicatedNodes = ", SYNTAX_ERROR),
    ("$TargetDedicatedNodes = min(1, 2", SYNTAX_ERROR),
    ("$TargetDedicatedNodes = 1 $TargetLowPriorityNodes = 2", SYNTAX_ERROR),
    ("$TargetDedicatedNodes = 1 @ 2", SYNTAX_ERROR),
    ("", SYNTAX_ERROR),
    ("$TargetDedicatedNodes = " + "(" * 2000 + "1" + ")" * 2000, SYNTAX_ERROR),  # nested too deep: not a 500
    ("$TargetDedicatedNodes = " + "-" * 2000 + "1", SYNTAX_ERROR),
    ("$TargetDedicatedNodes = " + "+".join(["1"] * 3000), SYNTAX_ERROR),
    ("$TargetDedicatedNodes = $PendingTasks + 1", EVALUATION_ERROR),  # a sample needs GetSample
    ("$TargetDedicatedNodes = undefinedVariable", EVALUATION_ERROR),
    ("$TargetDedicatedNodes = nosuchfunction(1)", EVALUATION_ERROR),
    ("$TargetDedicatedNodes = 1 / 0", EVALUATION_ERROR),
    ("$PendingTasks = 3", EVALUATION_ERROR),
    ("$NodeDeallocationOption = 3", EVALUATION_ERROR),
])
def test_formula_errors(formula, code):
    with pytest.raises(FormulaError) as raised:
        run(formula)
    assert raised.value.code == code


def insert_tasks(emulator, account: str, pool: str, job: str, count: int) -> None:
    """Active tasks of a job on `pool`, as the data plane stores them."""
    moment = now()
    with emulator.state.transaction() as db:
        if db.execute("SELECT 1 FROM batch_jobs WHERE account = ? AND job_id = ?", (account, job)).fetchone() is None:
            db.execute(
                "INSERT INTO batch_jobs (account, job_id, body, status, runtime, etag, created_at, modified_at, seq)"
                " VALUES (?, ?, ?, ?, '{}', '0x1', ?, ?, ?)",
                (account, job, json.dumps({"id": job, "poolInfo": {"poolId": pool}}),
                 json.dumps({"state": "active", "stateTransitionTime": iso8601(moment)}), moment, moment,
                 store.next_seq(db, "batch_jobs")),
            )
        first = db.execute("SELECT COUNT(*) FROM batch_tasks WHERE account = ? AND job_id = ?",
                           (account, job)).fetchone()[0]
        for index in range(first, first + count):
            db.execute(
                "INSERT INTO batch_tasks (account, job_id, task_id, body, status, runtime, etag, created_at,"
                " modified_at, seq) VALUES (?, ?, ?, ?, ?, '{}', '0x1', ?, ?, ?)",
                (account, job, f"t{index}", json.dumps({"id": f"t{index}", "commandLine": "/bin/sleep 60"}),
                 json.dumps({"state": "active", "stateTransitionTime": iso8601(moment)}), moment, moment,
                 store.next_seq(db, "batch_tasks")),
            )


def delete_tasks(emulator, account: str, job: str) -> None:
    with emulator.state.transaction() as db:
        db.execute("DELETE FROM batch_tasks WHERE account = ? AND job_id = ?", (account, job))


def test_an_auto_scale_pool_follows_its_pending_tasks(emulator, batch_mgmt, batch_account: BatchAccount):
    group, name = batch_account.resource_group, batch_account.name
    created = batch_mgmt.pool.create(group, name, "auto", pool_body(formula=GENERATED))
    run_document = created["properties"]["autoScaleRun"]
    assert run_document["results"].startswith("$TargetDedicatedNodes=1;") and "evaluationTime" in run_document
    assert created.allocation_state == "Resizing"

    def settles_at(count: int):
        wait_for(lambda: nodes_of(emulator, name, "auto"),
                 lambda found: len(found) == count and all(node.state in ("idle", "running") for node in found))
        return wait_for(lambda: batch_mgmt.pool.get(group, name, "auto"),
                        lambda pool: pool.allocation_state == "Steady" and pool.current_dedicated_nodes == count)

    settles_at(1)
    insert_tasks(emulator, name, "auto", "job1", 2)
    pool = settles_at(2)
    assert pool["properties"]["autoScaleRun"]["results"].startswith("$TargetDedicatedNodes=2;")
    assert pool["properties"]["resizeOperationStatus"]["nodeDeallocationOption"] == "TaskCompletion"
    insert_tasks(emulator, name, "auto", "job1", 5)
    settles_at(3)  # the formula's maximum
    delete_tasks(emulator, name, "job1")
    settles_at(1)

    # A formula that fails to evaluate is reported, and the pool keeps its size.
    broken = batch_mgmt.pool.update(group, name, "auto", {"properties": {"scaleSettings": {"autoScale": {
        "formula": "$TargetDedicatedNodes = $PendingTasks * 2", "evaluationInterval": "PT5M"}}}})
    error = broken["properties"]["autoScaleRun"]["error"]
    assert error["code"] == "AutoScalingFormulaEvaluationError" and "GetSample" in error["message"]
    assert "results" not in broken["properties"]["autoScaleRun"]
    syntax = batch_mgmt.pool.update(group, name, "auto", {"properties": {"scaleSettings": {"autoScale": {
        "formula": "$TargetDedicatedNodes = (", "evaluationInterval": "PT5M"}}}})
    assert syntax["properties"]["autoScaleRun"]["error"]["code"] == "AutoScalingFormulaSyntaxError"
    assert settles_at(1).current_dedicated_nodes == 1
