"""`--service batchai|batch` (or BATCHAI_SPEC_SERVICE) on every command that talks to a target and on `validate`:
shown in --help, completed by the shell, an unknown value one message and exit 1. Through the real entry point."""

from __future__ import annotations

import re

import pytest

from tests.cli.running import cli, parsed
from tests.cli.test_help import complete_bash, help_of

SERVICE_COMMANDS = ["validate", "plan", "apply", "destroy", "status", "logs", "outputs", "cancel", "force-unlock"]
JOB_COMMANDS = ("logs", "outputs", "cancel")


@pytest.mark.parametrize("command", SERVICE_COMMANDS)
def test_the_service_option_is_shown_with_its_choices_and_variable(command):
    text = help_of(command)
    assert re.search(r"--service\s+batchai\|batch\s+Which Azure service realises the spec", text)
    assert "BATCHAI_SPEC_SERVICE" in text


def test_the_shell_completes_the_services():
    assert complete_bash("batchai-spec plan spec.yaml --serv") == ["--service"]
    assert complete_bash("batchai-spec plan spec.yaml --service ") == ["batchai", "batch"]
    assert complete_bash("batchai-spec apply spec.yaml --service batcha") == ["batchai"]


@pytest.mark.parametrize("command", SERVICE_COMMANDS)
def test_an_unknown_service_is_one_message_and_exit_1(command, tmp_path):
    args = [command, "specs/mnist-cntk.yaml", *(["quickstart/myjob"] if command in JOB_COMMANDS else [])]
    args += [] if command == "validate" else ["--state-dir", str(tmp_path / "state")]
    unknown = (1, "", "Error: unknown service 'azureml': use 'batchai' or 'batch'")
    result = cli(*args, "--service", "azureml")
    assert (result.returncode, result.stdout, result.stderr.strip()) == unknown
    result = cli(*args, env={"BATCHAI_SPEC_SERVICE": "azureml"})
    assert (result.returncode, result.stdout, result.stderr.strip()) == unknown
    assert not (tmp_path / "state").exists(), "nothing is started for a mistyped service"


def test_the_option_and_the_variable_reach_the_command_unset_by_default(monkeypatch):
    assert parsed("plan", "spec.yaml")["service"] is None  # then: the spec's `service:`, else batchai
    assert parsed("apply", "spec.yaml", "--service", "batch")["service"] == "batch"
    monkeypatch.setenv("BATCHAI_SPEC_SERVICE", "batch")
    assert parsed("status", "spec.yaml")["service"] == "batch"
    assert parsed("destroy", "spec.yaml", "--service", "batchai")["service"] == "batchai"  # the option wins
