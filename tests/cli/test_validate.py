"""The `validate` and `schema` commands through the real entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from batchai_spec.cli import main
from tests.cli.running import run_main
from tests.spec.sample import VALID_SPEC, edited, write_spec


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """main() in-process: (exit code, stdout, stderr with wrapping undone)."""
    code, out, err = run_main(monkeypatch, capsys, *args)
    return code, out, " ".join(err.split())


def test_validate_summarises_the_sample(monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, "validate", "specs/mnist-cntk.yaml")
    assert code == 0
    assert out.splitlines() == [
        "specs/mnist-cntk.yaml: valid",
        "  spec             mnist-cntk (version 1)",
        "  service          Batch AI (batchai)",
        "  resource group   myresourcegroup in eastus, kept by destroy",
        "  storage account  mnistcntkstore: Standard_LRS StorageV2 in eastus, created by the spec",
        "  file share       batchaiquickstart: 10 GiB, 1 directory, 3 uploads",
        "  workspace        myworkspace in eastus",
        "  cluster          mycluster: STANDARD_NC6 dedicated, manual 1 node",
        "  experiment       quickstart: 1 job",
        "    job            myjob: cntk on mycluster, 1 node in microsoft/cntk:2.1-gpu-python3.5-cuda8.0-cudnn6.0",
    ]
    if not Path("data/mnist/Train-28x28_cntk_text.txt").exists():
        assert "Warning: specs/mnist-cntk.yaml:23:19: storage.file_shares[0].uploads[1].source:" in err
        assert "produce it with: python training/prepare_mnist.py (needed by plan and apply)" in err


def test_validate_takes_vars_and_var_files(monkeypatch, capsys, tmp_path):
    var_file = write_spec(tmp_path, "storage_account: fromfile\n", "vars.yaml")
    code, out, _ = run_cli(
        monkeypatch, capsys, "validate", "specs/mnist-cntk.yaml", "--var-file", str(var_file), "--var", "epochs=2"
    )
    assert code == 0 and "storage account  fromfile:" in out


@pytest.mark.parametrize("bad_var", ["epochs", "=3"])
def test_a_malformed_var_is_one_message(monkeypatch, capsys, bad_var):
    code, out, err = run_cli(monkeypatch, capsys, "validate", "specs/mnist-cntk.yaml", "--var", bad_var)
    assert (code, out) == (1, "")
    assert err == "Error: --var expects NAME=VALUE (e.g. --var epochs=5)"


def test_a_broken_spec_exits_1_with_the_located_message(monkeypatch, capsys, tmp_path):
    write_spec(tmp_path, edited("    vm_size:", "    vm_szie:", VALID_SPEC))
    monkeypatch.chdir(tmp_path)  # a short path: the error console wraps long lines
    code, out, err = run_cli(monkeypatch, capsys, "validate", "spec.yaml")
    assert (code, out) == (1, "")
    assert err == "Error: spec.yaml:16:5: clusters[0].vm_szie: unknown key 'vm_szie'; did you mean 'vm_size'?"


def test_schema_prints_the_checked_in_schema(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "schema")
    assert code == 0
    assert out == Path("schemas/batchai-spec.schema.json").read_text(encoding="utf-8")


def test_the_console_script_module_runs_without_traceback(tmp_path):
    good = subprocess.run([sys.executable, "-m", "batchai_spec", "validate", "specs/mnist-cntk.yaml"], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    broken = subprocess.run(
        [sys.executable, "-m", "batchai_spec", "validate", str(write_spec(tmp_path, b"\x00\x01"))], capture_output=True, text=True
    )
    assert broken.returncode == 1
    assert "binary file" in broken.stderr and "Traceback" not in broken.stderr
