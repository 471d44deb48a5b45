"""apply --no-wait, then the day-2 commands: status, logs -f, logs, outputs --download."""

from __future__ import annotations

import json

from tests.e2e.project import JOB_NAME, Project, model_bytes


def _row(table: str, address: str) -> str:
    (row,) = [line for line in table.splitlines() if f" {address} " in line]
    return row


def test_no_wait_returns_once_submitted_and_the_day2_commands_follow_the_job(project: Project, tmp_path):
    gate = project.gate("job")
    gated = ("--var", f"job_gate={gate}")
    submitted = project.cli("apply", "-y", "--no-wait", *gated)
    assert f"job.{JOB_NAME}: submitted; follow it with `batchai-spec logs {project.spec} {JOB_NAME} -f`" in submitted.stdout
    assert project.job().execution_state in ("queued", "running")

    status = project.cli("status", *gated).stdout
    assert any(state in _row(status, f"job.{JOB_NAME}") for state in ("queued", "running"))
    assert "steady" in _row(status, "cluster.gpu") and "1 nodes" in _row(status, "cluster.gpu")

    follow = project.start("logs", JOB_NAME, "-f", *gated)
    gate.touch()
    followed = project.finish(follow)
    assert "Finished Epoch[3 of 3]: loss = 0.333" in followed.stdout
    assert f"job.{JOB_NAME}: succeeded, exit code 0" in followed.stdout

    assert "exit code 0" in _row(project.cli("status", *gated).stdout, f"job.{JOB_NAME}")
    rows = [json.loads(line) for line in project.cli("status", "--json", *gated).stdout.splitlines()]
    job = next(row for row in rows if row["address"] == f"job.{JOB_NAME}")
    assert job == {"address": f"job.{JOB_NAME}", "state": "succeeded", "details": "exit code 0", "exists": True, "owned": True}
    logs = project.cli("logs", "train", *gated).stdout
    assert "input: train.txt" in logs and "stand-in: no real training here" in logs

    downloads = tmp_path / "outputs"
    outputs = project.cli("outputs", JOB_NAME, "--download", downloads, *gated).stdout
    assert "succeeded" in outputs and "model_2.dnn" in outputs and f"Downloaded 6 files to {downloads}" in outputs
    for epoch in range(3):
        assert (downloads / "MODEL" / f"model_{epoch}.dnn").read_bytes() == model_bytes(epoch)
    assert (downloads / "stdouterr" / "stderr.txt").read_text() == "stand-in: no real training here\n"


def test_day2_commands_about_a_job_that_is_not_there_say_so_in_one_line(project: Project):
    run = project.cli("logs", "nosuchjob", expect=1)
    assert run.stderr.strip() == "Error: 'nosuchjob' is not a job of this spec (jobs: exp/train)"
    for command, operation in (("logs", "reading the logs of"), ("outputs", "reading the outputs of")):
        run = project.cli(command, JOB_NAME, expect=1)
        assert run.stderr.strip() == (
            f"Error: {operation} job.{JOB_NAME} failed: ResourceGroupNotFound (HTTP 404): "
            "Resource group 'e2e-rg' could not be found."
        )
