import subprocess
import sys


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
