"""apply --no-wait, then the day-2 commands: status, logs -f, logs, outputs --download."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pexpect
from azure.core.exceptions import ResourceExistsError

from tests.e2e.project import (
    ACCOUNT, BOTH_SERVICES, CLI_TIMEOUT_S, FAILED, JOB_NAME, REPOSITORY, RESOURCE_GROUP, SHARE, Project,
    model_bytes,
)


def _row(table: str, address: str) -> str:
    (row,) = [line for line in table.splitlines() if address in line.replace("│", " ").split()]
    return row


@BOTH_SERVICES
def test_no_wait_returns_once_submitted_and_the_day2_commands_follow_the_job(project: Project, tmp_path):
    gate = project.gate("job")
    gated = ("--var", f"job_gate={gate}")
    submitted = project.cli("apply", "-y", "--no-wait", *gated)
    same_spec = f"{project.spec} --var job_gate={gate} --state-dir {project.state_dir}"
    assert f"job.{JOB_NAME}: submitted; follow it with `batchai-spec logs {same_spec} {JOB_NAME} -f`" in submitted.stdout
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


@BOTH_SERVICES
def test_day2_commands_about_a_job_that_is_not_there_say_so_in_one_line(project: Project):
    run = project.cli("logs", "nosuchjob", expect=1)
    assert run.stderr.strip() == "Error: 'nosuchjob' is not a job of this spec (jobs: exp/train)"
    for command, operation in (("logs", "reading the logs of"), ("outputs", "reading the outputs of")):
        run = project.cli(command, JOB_NAME, expect=1)
        assert run.stderr.strip() == (
            f"Error: {operation} job.{JOB_NAME} failed: ResourceGroupNotFound (HTTP 404): "
            "Resource group 'e2e-rg' could not be found."
        )


# -- every run of a job: outputs lists them, --run picks one, share_outputs counts them -------------------------------


def _plain_table(text: str, title: str) -> list[list[str]]:
    """The rows of a table `_print_table` wrote to a pipe: the lines after its title and header line that have as
    many columns as the header (cells are two spaces or more apart)."""
    lines = text.splitlines()
    start = lines.index(title)
    columns = len(re.split(r"\s{2,}", lines[start + 1].strip()))
    rows = []
    for line in lines[start + 2:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) != columns:
            break
        rows.append(cells)
    return rows


def _share_bytes(project: Project, *parts: str) -> int:
    """Bytes of every file under a directory of the share, read on the emulator's disk (not through the tool)."""
    root = project.state_dir / "files" / ACCOUNT / SHARE / Path(*parts)
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


@BOTH_SERVICES
def test_outputs_lists_every_run_of_a_replaced_job_newest_first_and_downloads_each(project: Project, tmp_path):
    project.cli("apply", "-y")
    first = project.job().job_output_directory_path_segment.rsplit("/", 1)[1]
    failed = project.cli("apply", "-y", "--var", "exit_code=7", expect=3)  # a changed job is replaced: a new run
    assert "job.exp/train" in failed.stdout
    second = project.job().job_output_directory_path_segment.rsplit("/", 1)[1]
    assert first != second and project.job_runs() == sorted([first, second])
    parent = project.job().job_output_directory_path_segment.rsplit("/", 1)[0]

    listed = project.cli("outputs", JOB_NAME, "--var", "exit_code=7").stdout
    runs = _plain_table(listed, f"Runs of job.{JOB_NAME}, newest first")
    assert [row[0] for row in runs] == [second, first]
    failed_state = f"failed ({FAILED[project.service]})"
    assert [row[2:4] for row in runs] == [[failed_state, "7"], ["succeeded", "0"]]
    assert [int(row[4].replace(",", "")) for row in runs] == [_share_bytes(project, parent, run) for run in (second, first)]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", row[1]) for row in runs)
    assert runs[0][1] >= runs[1][1]
    assert f"Files of run {second} ({failed_state}, exit code 7)" in listed  # the newest, from the live job

    # The earlier run, by a prefix of its id: its files come from the share.
    earlier = tmp_path / "earlier"
    run = project.cli("outputs", JOB_NAME, "--run", first[:8], "--download", earlier).stdout
    files = _plain_table(run, f"Files of run {first} (succeeded, exit code 0)")
    assert sorted(row[:2] for row in files) == sorted(
        [["MODEL", f"model_{epoch}.dnn"] for epoch in range(3)]
        + [["stdouterr", name] for name in ("execution.log", "stderr.txt", "stdout.txt")]
    )
    assert f"Downloaded 6 files to {earlier}" in run
    for epoch in range(3):
        assert (earlier / "MODEL" / f"model_{epoch}.dnn").read_bytes() == model_bytes(epoch)
    assert "exit code 0" in (earlier / "stdouterr" / "execution.log").read_text()
    newest = tmp_path / "newest"
    project.cli("outputs", JOB_NAME, "--download", newest)
    assert "exit code 7" in (newest / "stdouterr" / "execution.log").read_text()
    assert (newest / "MODEL" / "model_2.dnn").read_bytes() == model_bytes(2)

    unknown = project.cli("outputs", JOB_NAME, "--run", "zz", expect=1)
    assert unknown.stderr.strip() == f"Error: job.{JOB_NAME} has no run 'zz' (runs: {second}, {first})"

    # A job deleted behind the tool's back leaves a run without a record: its directory's time, exit code unknown.
    project.delete_job()
    orphaned = project.cli("outputs", JOB_NAME).stdout
    runs = _plain_table(orphaned, f"Runs of job.{JOB_NAME}, newest first")
    assert [row[0] for row in runs] == [second, first]
    assert runs[0][2:4] == ["unknown", "unknown"] and runs[1][2:4] == ["succeeded", "0"]
    assert f"Files of run {second} (unknown)" in orphaned and "model_2.dnn" in orphaned


def test_a_replaced_run_is_recorded_on_its_directory_once_also_when_its_delete_is_retried(project: Project):
    project.cli("apply", "-y")
    before = project.job()
    segment = before.job_output_directory_path_segment
    expected = {
        "batchaispec_state": "succeeded",
        "batchaispec_exit_code": "0",
        "batchaispec_start": before.execution_info.start_time.isoformat(),
        "batchaispec_end": before.execution_info.end_time.isoformat(),
    }
    # A server error on the record (retried), then a failed delete operation that stops the apply; the next apply
    # records the same again, and deletes.
    run_directory = rf"/{segment.rsplit('/', 1)[1]}$"
    project.admin.add_fault(run_directory, service="storage", method="PUT", action="status", status=500)
    project.admin.add_fault(r"(?i)/jobs/train$", service="arm", method="DELETE", action="fail_operation",
                            code="InternalError", message="Injected failure of the operation.")
    stopped = project.cli("apply", "-y", "--var", "exit_code=7", expect=1)
    assert "Injected failure of the operation." in stopped.stderr
    assert project.admin.faults() == []
    record = project.share().get_directory_client(segment).get_directory_properties().metadata
    assert dict(record) == expected
    project.cli("apply", "-y", "--var", "exit_code=7", expect=3)
    assert project.job().job_output_directory_path_segment != segment
    assert dict(project.share().get_directory_client(segment).get_directory_properties().metadata) == expected


def test_share_outputs_counts_the_runs_and_bytes_a_share_holds(project: Project):
    from batchai_spec.services.azure.clients import Clients
    from batchai_spec.services.azure.runs import share_outputs
    from batchai_spec.services.azure.endpoint import local_endpoint

    clients = Clients(local_endpoint(project.state_dir))
    subscription = project.emulator.endpoint.subscription_id
    project.cli("plan")  # nothing exists yet
    assert share_outputs(clients, RESOURCE_GROUP, ACCOUNT, SHARE, subscription) == (0, 0)
    project.cli("apply", "-y")
    project.cli("apply", "-y", "--var", "exit_code=3", expect=3)
    parent = project.job().job_output_directory_path_segment.rsplit("/", 1)[0]
    job_bytes = _share_bytes(project, parent)
    assert job_bytes > 0
    assert share_outputs(clients, RESOURCE_GROUP, ACCOUNT, SHARE, subscription) == (2, job_bytes)

    # A run under a mount point inside the share (a prefix of two directories) counts; one too deep, a directory
    # that is no run (not a uuid), and another subscription's runs do not.
    share = project.share()
    run = "0f8a6a2c-1b7e-4d55-9a43-3c2b1e0d9f11"

    def put(path: str, size: int) -> None:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            try:
                share.create_directory("/".join(parts[:depth]))
            except ResourceExistsError:
                pass
        share.get_file_client(path).upload_file(b"x" * size)

    layout = f"rg2/workspaces/w/experiments/e/jobs/j"
    put(f"mounts/deep/{subscription}/{layout}/{run}/outputs/model.bin", 1000)
    put(f"a/b/c/{subscription}/{layout}/{run}/outputs/model.bin", 10)
    put(f"{subscription}/{layout}/not-a-run/outputs/model.bin", 20)
    put(f"00000000-0000-0000-0000-000000000000/{layout}/{run}/outputs/model.bin", 30)
    assert share_outputs(clients, RESOURCE_GROUP, ACCOUNT, SHARE, subscription) == (3, job_bytes + 1000)
    assert share_outputs(clients, RESOURCE_GROUP, ACCOUNT, "nosuchshare", subscription) == (0, 0)


# -- status: a box table on a terminal, plain columns through a pipe --------------------------------------------------


def test_status_draws_a_table_on_a_terminal_and_plain_columns_through_a_pipe(project: Project):
    piped = project.cli("status").stdout
    assert not set(piped) & set("│┃━─┏┗╭╰|")
    lines = piped.splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("Address"))
    rows = lines[header + 1:]
    assert any(row.startswith(f"job.{JOB_NAME} ") for row in rows) and len(rows) > 5
    state_column = lines[header].index("State")
    assert all(row[state_column:].startswith("missing") for row in rows)

    terminal = pexpect.spawn(
        project.argv("status")[0], project.argv("status")[1:], env=project.environment(), cwd=str(REPOSITORY),
        dimensions=(50, 200), encoding="utf-8", timeout=CLI_TIMEOUT_S,
    )
    shown = terminal.read()
    terminal.close()
    assert terminal.exitstatus == 0, shown
    assert "┃" in shown or "│" in shown
    assert f"job.{JOB_NAME}" in shown and "Traceback" not in shown
