"""Usage errors end in one message and exit 1; durations and the spellings of machine output, good and bad."""

import json
import subprocess
import sys

import pytest

from batchai_spec.cli.options import parse_duration
from batchai_spec import durations
from batchai_spec.durations import format_duration
from tests.cli.running import cli, parsed
from tests.plan.conftest import sample_spec  # noqa: F401 - the fixture: the sample spec with stand-in data files

SPEC = "specs/mnist-cntk.yaml"


def test_a_mistyped_flag_is_one_message_and_exit_1_never_the_2_of_detailed_exitcode():
    result = subprocess.run(
        [sys.executable, "-m", "batchai_spec", "plan", "specs/mnist-cntk.yaml", "--detailed-exitcode", "--formt", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "No such option: --formt" in result.stderr
    assert "Traceback" not in result.stderr and "ClickException" not in result.stderr


# Durations: --job-timeout, --cluster-timeout and --lock-timeout take 90s, 30m, 2h, 1h30m, 1d or plain seconds.


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("1h30m", 5400), ("90", 90), ("45s", 45), ("30m", 1800), ("1d", 86400), ("1d2h3m4s", 93784),
     ("1.5h", 5400), ("0", 0), ("0.5", 0.5), (" 2H ", 7200), ("7200", 7200)],
)
def test_a_duration_parses_through_the_real_command_line(text, seconds):
    assert parse_duration(text) == seconds
    assert parsed("apply", SPEC, "--job-timeout", text)["job_timeout"] == seconds
    assert parsed("apply", SPEC, "--cluster-timeout", text)["cluster_timeout"] == seconds
    assert parsed("destroy", SPEC, "--lock-timeout", text)["lock_timeout"] == seconds


def test_the_defaults_are_durations_and_read_as_such():
    options = parsed("apply", SPEC)
    assert (options["cluster_timeout"], options["job_timeout"], options["lock_timeout"]) == (1800, 7 * 24 * 3600, 0)
    assert [format_duration(s) for s in (1800, 604800, 0, 5400, 93784, 2.5, 90.5)] == [
        "30m", "7d", "0s", "1h30m", "1d2h3m4s", "2.5s", "1m30.5s"
    ]


@pytest.mark.parametrize("option", ["--job-timeout", "--cluster-timeout", "--lock-timeout"])
@pytest.mark.parametrize("bad", ["2x", "-5m", "", "1h30", "h", "1..5m", "2 h", "inf"])
def test_a_bad_duration_is_one_usage_error_and_exit_1(tmp_path, option, bad):
    # --state-dir: were the value taken, nothing would touch the working directory's state.
    result = cli("apply", SPEC, "-y", "--state-dir", str(tmp_path), option, bad)
    assert result.returncode == 1
    assert f"Error: Invalid value for '{option}': {bad!r} is not a duration: give seconds (7200) or a number with a unit" in result.stderr
    assert "Usage: batchai-spec apply [OPTIONS] SPEC|PLANFILE" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("huge", ["366d", "200000d", "9" * 400])
def test_a_duration_longer_than_a_year_is_one_usage_error(huge):
    with pytest.raises(ValueError, match=r"is longer than 365d, the longest wait there is"):
        durations.parse_duration(huge)
    result = cli("cancel", SPEC, "myjob", "--timeout", huge)
    assert result.returncode == 1 and "is longer than 365d" in result.stderr and "Traceback" not in result.stderr


def test_a_duration_reaches_the_command(tmp_path):
    result = cli("destroy", SPEC, "-y", "--state-dir", str(tmp_path), "--lock-timeout", "1m30s")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Nothing to destroy."


# One spelling for machine output: --format text|json everywhere, --json its alias.


def test_plan_json_is_plan_format_json(sample_spec, tmp_path):  # noqa: F811
    state_dir = str(tmp_path / "state")
    spelled_out = cli("plan", str(sample_spec), "--state-dir", state_dir, "--format", "json")
    alias = cli("plan", str(sample_spec), "--state-dir", state_dir, "--json")
    assert spelled_out.returncode == alias.returncode == 0, spelled_out.stderr + alias.stderr
    assert json.loads(alias.stdout) == json.loads(spelled_out.stdout)
    assert json.loads(alias.stdout)["summary"]["add"] == 11


def test_status_format_json_is_status_json(tmp_path):
    spelled_out = cli("status", SPEC, "--state-dir", str(tmp_path), "--format", "json")
    alias = cli("status", SPEC, "--state-dir", str(tmp_path), "--json")
    text = cli("status", SPEC, "--state-dir", str(tmp_path), "--format", "text")
    assert spelled_out.returncode == alias.returncode == text.returncode == 0, spelled_out.stderr + alias.stderr
    assert spelled_out.stdout == alias.stdout
    rows = [json.loads(line) for line in spelled_out.stdout.splitlines()]
    assert rows[0] == {"address": "resource_group.myresourcegroup", "state": "missing", "details": "", "exists": False, "owned": False}
    assert "resource_group.myresourcegroup" in text.stdout and not text.stdout.startswith("{")


def test_apply_and_destroy_take_format_json_and_json_alike():
    # Their JSON-lines output itself: tests/e2e/test_outputs.py.
    assert parsed("destroy", SPEC, "--json")["json_lines"] is True
    assert parsed("apply", SPEC, "--format", "json")["output_format"].value == "json"


@pytest.mark.parametrize(
    ("command", "other"), [("plan", "markdown"), ("plan", "text"), ("apply", "text"), ("destroy", "text"), ("status", "text")]
)
def test_json_with_another_format_is_one_usage_error(tmp_path, command, other):
    result = cli(command, SPEC, "--state-dir", str(tmp_path), "--json", "--format", other)
    assert result.returncode == 1
    assert f"Error: --json and --format {other} contradict each other: give one of them" in result.stderr
    assert f"Usage: batchai-spec {command} [OPTIONS]" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["apply", "destroy", "status"])
def test_an_unknown_format_is_one_usage_error(command):
    result = cli(command, SPEC, "--format", "yaml")
    assert result.returncode == 1
    assert "Invalid value for '--format'" in result.stderr and "'yaml' is not one of 'text', 'json'" in result.stderr
    assert "Traceback" not in result.stderr
