"""`batchai-spec plan` as a user runs it: a subprocess, its output formats and exit codes."""

from __future__ import annotations

import json

from tests.plan.conftest import run_cli

SAMPLE_ADDRESSES = [
    "resource_group.myresourcegroup",
    "storage_account.mnistcntkstore",
    "file_share.batchaiquickstart",
    "directory.batchaiquickstart/mnistcntksample",
    "file.batchaiquickstart/mnistcntksample/ConvNet_MNIST.py",
    "file.batchaiquickstart/mnistcntksample/Test-28x28_cntk_text.txt",
    "file.batchaiquickstart/mnistcntksample/Train-28x28_cntk_text.txt",
    "workspace.myworkspace",
    "cluster.mycluster",
    "experiment.quickstart",
    "job.quickstart/myjob",
]


def test_sample_spec_on_a_fresh_state_dir_plans_every_resource_in_every_format(sample_spec, tmp_path):
    state_dir = str(tmp_path / "fresh-state")  # nothing serves it: the CLI starts an emulator in the background
    text = run_cli("plan", str(sample_spec), "--state-dir", state_dir, "--detailed-exitcode")
    assert text.returncode == 2, text.stderr
    for address in SAMPLE_ADDRESSES:
        assert f"  + {address}\n" in text.stdout
    assert text.stdout.rstrip().endswith("Plan: 11 to add, 0 to change, 0 to replace, 0 to destroy.")

    machine = run_cli("plan", str(sample_spec), "--state-dir", state_dir, "--format", "json")
    assert machine.returncode == 0, machine.stderr
    document = json.loads(machine.stdout)
    assert document["format_version"] == "1.0" and document["has_changes"] is True
    assert document["summary"] == {"add": 11, "change": 0, "replace": 0, "destroy": 0}
    assert [(c["address"], c["action"]) for c in document["changes"]] == [(a, "create") for a in SAMPLE_ADDRESSES]

    review = run_cli("plan", str(sample_spec), "--state-dir", state_dir, "--format", "markdown", "--detailed-exitcode")
    assert review.returncode == 2, review.stderr
    assert review.stdout.startswith("### batchai-spec plan: `mnist-cntk`\n\n**Plan: 11 to add")
    assert "| + create | 11 |" in review.stdout
    assert review.stdout.count("<details><summary>") == 11


def test_converged_spec_plans_no_changes_and_exits_0(project):
    project.converged()
    result = project.cli("plan", str(project.spec), "--state-dir", str(project.state_dir), "--detailed-exitcode")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "No changes."
