"""What `--help` shows and how shell completion works, through the real entry point as a user runs it."""

from __future__ import annotations

import os
import re

import pytest

from tests.cli.running import cli, modules_loaded, parsed

SPEC_COMMANDS = ["validate", "plan", "destroy", "status", "force-unlock"]


def every_command() -> list[list[str]]:
    """The root, and every command and group under it, as the CLI registers them."""
    from typer.main import get_command

    from batchai_spec.cli import app

    def walk(command, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            found += walk(sub, [*path, name])
        return found

    return walk(get_command(app), [])


EVERY_HELP = every_command()


def help_of(*command: str) -> str:
    """`batchai-spec COMMAND --help`, its lines without the padding that fills them to the terminal's width."""
    result = cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    return "\n".join(line.rstrip() for line in result.stdout.splitlines()) + "\n"


@pytest.mark.parametrize("command", EVERY_HELP, ids=lambda c: " ".join(c) or "batchai-spec")
def test_flags_show_no_type_and_arguments_read_as_in_the_usage_line(command):
    text = help_of(*command)
    assert "<bool>" not in text and "<bool" not in text
    assert not re.search(r"\{\w+\}", text), "arguments read SPEC, not {spec}"
    assert re.search(r"--help\s+Show this message and exit\.", text)


@pytest.mark.parametrize("command", SPEC_COMMANDS)
def test_commands_that_read_a_spec_name_their_argument_spec(command):
    text = help_of(command)
    assert f"Usage: batchai-spec {command} [OPTIONS] SPEC\n" in text
    assert re.search(r"\*\s+SPEC\s", text)


def test_apply_takes_a_spec_or_a_saved_plan_and_logs_a_job():
    assert "Usage: batchai-spec apply [OPTIONS] SPEC|PLANFILE\n" in help_of("apply")
    assert "Usage: batchai-spec logs [OPTIONS] SPEC JOB\n" in help_of("logs")
    assert "Usage: batchai-spec outputs [OPTIONS] SPEC JOB\n" in help_of("outputs")


def test_apply_help_shows_flags_bare_and_durations_as_people_write_them():
    text = help_of("apply")
    assert re.search(r"--auto-approve\s+-y\s+Go ahead without asking", text)
    assert re.search(r"--no-wait\s+Return once the jobs are submitted", text)
    assert re.search(r"--json\s+The same as --format json", text)
    assert re.search(r"--format\s+text\|json\s", text)
    for option in ("--cluster-timeout", "--job-timeout", "--lock-timeout"):
        assert re.search(rf"{option}\s+DURATION\s", text), option
    assert "[default: 30m]" in text and "[default: 7d]" in text and "[default: 0s]" in text


def examples_of(command: str) -> list[str]:
    """The command lines of the Examples section at the end of `command --help`."""
    text = help_of(command)
    assert "\n Examples\n" in text, text
    section = text.split("\n Examples\n", 1)[1]
    return [line.strip() for line in section.splitlines() if line.strip().startswith("batchai-spec ")]


def test_apply_plan_and_destroy_end_their_help_with_examples():
    assert "batchai-spec apply specs/mnist-cntk.yaml -y --var epochs=2" in examples_of("apply")
    plan = examples_of("plan")
    assert "batchai-spec plan spec.yaml --out plan.json && batchai-spec apply plan.json" in plan
    assert "batchai-spec plan spec.yaml --format markdown > plan.md" in plan
    assert "batchai-spec destroy spec.yaml -y --lock-timeout 5m" in examples_of("destroy")


def test_every_example_parses():
    """The examples are command lines that the CLI accepts, values included."""
    for command in ("apply", "plan", "destroy"):
        for example in examples_of(command):
            for line in example.split(" && "):
                words = line.split(">")[0].split()[1:]
                assert parsed(*words), line
    assert parsed("apply", "spec.yaml", "-y", "--replace", "job.quickstart/myjob", "--job-timeout", "2h")["job_timeout"] == 7200


def test_the_root_help_offers_completion():
    text = help_of()
    assert re.search(r"--install-completion\s+\[SHELL\]\s+Install completion for the current shell, or for SHELL", text)
    assert re.search(r"--show-completion\s+\[SHELL\]\s+Print the completion script", text)


@pytest.mark.parametrize(
    ("shell", "expected"),
    [
        ("bash", "complete -o default -F _batchai_spec_completion batchai-spec"),
        ("zsh", "#compdef batchai-spec"),
        ("fish", "complete --command batchai-spec"),
    ],
)
def test_show_completion_prints_the_script_of_the_shell_named(shell, expected):
    result = cli("--show-completion", shell)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
    # Under `python -m batchai_spec` too, the script completes the `batchai-spec` command.
    assert "_BATCHAI_SPEC_COMPLETE=complete_" in result.stdout and "python" not in result.stdout


def test_an_unknown_shell_is_one_message_and_exit_1():
    result = cli("--show-completion", "sh")
    assert result.returncode == 1
    assert result.stderr.strip() == "Shell sh not supported."
    assert result.stdout == ""


def test_install_completion_writes_the_script_and_sources_it(tmp_path):
    result = cli("--install-completion", "bash", env={"HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    script = tmp_path / ".bash_completions" / "batchai-spec.sh"
    assert "_BATCHAI_SPEC_COMPLETE=complete_bash" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()


def complete_bash(line: str) -> list[str]:
    """What bash offers for the last word of `line` (empty after a trailing space), as the installed script asks."""
    words = line.split()
    cword = len(words) if line.endswith(" ") else len(words) - 1
    result = cli(env={"_BATCHAI_SPEC_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(cword)})
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_bash_completion_completes_commands_options_and_choices():
    assert complete_bash("batchai-spec ap") == ["apply"]
    assert {"validate", "plan", "apply", "destroy", "status", "emulator"} <= set(complete_bash("batchai-spec "))
    assert complete_bash("batchai-spec emulator s") == ["serve", "status", "stop"]
    assert complete_bash("batchai-spec apply spec.yaml --form") == ["--format"]
    assert complete_bash("batchai-spec apply spec.yaml --format ") == ["text", "json"]
    assert complete_bash("batchai-spec plan spec.yaml --format m") == ["markdown"]




@pytest.mark.parametrize("env", [{}, {"_BATCHAI_SPEC_COMPLETE": "complete_bash", "COMP_WORDS": "batchai-spec ap", "COMP_CWORD": "1"}])
def test_version_and_completion_start_without_loading_the_sdks(env):
    heavy = ("azure", "uvicorn", "starlette", "jinja2")
    result = modules_loaded(heavy, *([] if env else ["--version"]), env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "exit 0 loaded []"
    first = result.stdout.splitlines()[0]
    assert first == "apply" if env else re.fullmatch(r"batchai-spec \d+\.\d+\.\d+\S*", first)


@pytest.mark.parametrize("command", [*SPEC_COMMANDS[1:], "apply", "logs", "outputs", "cancel"])
def test_the_endpoint_option_is_shown_and_its_old_name_is_not(command):
    text = help_of(command)
    assert re.search(r"--endpoint\s+local\|azure\s+Where requests go", text)
    assert "BATCHAI_SPEC_ENDPOINT" in text
    assert "--backend" not in text and "BATCHAI_SPEC_BACKEND" not in text


def test_the_old_name_of_the_endpoint_option_still_chooses_the_endpoint():
    unknown = (1, "Error: unknown endpoint 'nowhere': use 'local' or 'azure'")
    for flag in ("--endpoint", "--backend"):
        result = cli("plan", "specs/mnist-cntk.yaml", flag, "nowhere")
        assert (result.returncode, result.stderr.strip()) == unknown
    for variable in ("BATCHAI_SPEC_ENDPOINT", "BATCHAI_SPEC_BACKEND"):
        result = cli("plan", "specs/mnist-cntk.yaml", env={variable: "nowhere"})
        assert (result.returncode, result.stderr.strip()) == unknown
