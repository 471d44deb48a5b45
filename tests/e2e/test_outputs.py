"""What the CLI writes: JSON lines only with --json, no colour with NO_COLOR or --no-color, and never a secret in
an output, an event, a saved plan, a downloaded log or the emulator's files."""

from __future__ import annotations

import json
import re

from tests.e2e.project import BOTH_SERVICES, RESOURCE_GROUP, SECRETS, Project

# SGR sequences and their parameters: 30-49 and 90-107 are colours (38/48 introduce 256-colour and RGB ones).
_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def colours(text: str) -> list[str]:
    found = []
    for parameters in _SGR.findall(text):
        codes = [int(code) for code in parameters.split(";") if code]
        found += [str(code) for code in codes if 30 <= code <= 49 or 90 <= code <= 107]
    return found


@BOTH_SERVICES
def test_json_output_is_json_lines_only(project: Project):
    run = project.cli("apply", "-y", "--json", "--var", "exit_code=5", expect=3)
    events = run.events()  # fails on any line that is not JSON
    kinds = {event["event"] for event in events}
    assert {"plan", "change.started", "change.finished", "upload.progress", "job.state", "job.log", "job.finished"} <= kinds
    assert all(isinstance(event["time"], float) for event in events)
    assert "Error: job.exp/train failed" in run.stderr
    destroy = project.cli("destroy", "-y", "--json")
    assert {event["event"] for event in destroy.events()} >= {"plan", "change.finished"}
    assert destroy.events_of("message") == []
    again = project.cli("destroy", "-y", "--json")
    assert [event["text"] for event in again.events_of("message")] == ["Nothing to destroy."]


def test_no_color_is_honoured(project: Project):
    """FORCE_COLOR makes Rich take the pipe for a terminal: the live progress display of apply runs too."""
    coloured = project.cli("plan", env={"FORCE_COLOR": "1"})
    assert colours(coloured.stdout), "a terminal gets colours"
    applied = project.cli("apply", "-y", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "Finished Epoch[3 of 3]" in applied.stdout and colours(applied.output) == []
    assert colours(project.cli("plan", "--var", "nodes=2", env={"FORCE_COLOR": "1"}, options=("--no-color",)).stdout) == []


def test_apply_without_a_terminal_to_confirm_on_needs_yes(project: Project):
    run = project.cli("apply", expect=1)
    assert "Error: refusing to change anything without confirmation: no terminal to ask on; pass -y" in run.stderr
    assert not project.resource_client.resource_groups.check_existence(RESOURCE_GROUP)


@BOTH_SERVICES
def test_secrets_never_appear_in_outputs_plans_logs_or_files(project: Project, tmp_path):
    saved = tmp_path / "reviewed.plan"
    project.cli("plan", "--out", saved)
    project.cli("plan", "--format", "markdown")
    project.cli("plan", "--format", "json")
    project.cli("apply", "-y", "--json", "--download", tmp_path / "downloads", target=saved)
    project.cli("status")
    # Every CLI output was checked as it came (Project._checked); here are the files.
    files = [saved, *(tmp_path / "downloads").rglob("*"), *project.state_files()]
    assert len(files) > 10
    # On Azure Batch the job's secrets go to a file on the share, for the launcher (Batch returns a task's environment
    # in clear): the one place where a secret is, readable with the storage account's key as the job's data is.
    secrets_files = {p for p in project.state_dir.glob("files/e2estore/e2eshare/.batchai-spec/secrets/*") if p.is_file()}
    assert len(secrets_files) == (1 if project.service == "batch" else 0)
    for path in secrets_files:
        assert json.loads(path.read_text()) == {"E2E_JOB_SECRET": SECRETS["E2E_JOB_SECRET"]}
    for path in files:
        if path.is_file() and path not in secrets_files:
            content = path.read_bytes()
            for name, secret in SECRETS.items():
                assert secret.encode() not in content, f"{name} is in {path}"
    assert json.loads(saved.read_text())["plan"]["has_changes"] is True


@BOTH_SERVICES
def test_apply_and_destroy_with_format_json_print_json_lines_only(project: Project):
    applied = project.cli("apply", "-y", "--target", f"resource_group.{RESOURCE_GROUP}", "--format", "json")
    assert [event["event"] for event in applied.events()] == ["plan", "change.started", "change.finished"]
    destroyed = project.cli("destroy", "-y", "--format", "json")
    assert [event["text"] for event in destroyed.events_of("message")] == ["Nothing to destroy."]
