"""The service chosen on the command line against the spec's `service:`: the command line wins, the commands a hint
prints carry it so that they reach the same service when copied, and `status` names the service in its title."""

from __future__ import annotations

from tests.e2e.project import JOB_NAME, Project


def test_the_option_overrides_the_spec_and_the_hints_carry_it(project: Project):
    # The spec says batch, and names its workspace as Batch AI allows and a Batch account cannot be named (the shared
    # project's workspace name is valid on both services); --service batchai realises it on Batch AI.
    text = project.spec.read_text().replace("name: e2e\n", "name: e2e\nservice: batch\n", 1)
    project.spec.write_text(text.replace("  name: e2ews\n", "  name: e2e-ws\n", 1))
    refused = project.cli("plan", expect=1)
    assert "workspace.name: 'e2e-ws' cannot name a Batch account" in refused.stderr
    gate = project.gate("job")
    submitted = project.cli("apply", "-y", "--no-wait", "--service", "batchai", "--var", f"job_gate={gate}")
    same_spec = f"{project.spec} --var job_gate={gate} --service batchai --state-dir {project.state_dir}"
    assert f"job.{JOB_NAME}: submitted; follow it with `batchai-spec logs {same_spec} {JOB_NAME} -f`" in submitted.stdout
    assert f"on emulator serving {project.state_dir} (Batch AI)" in submitted.stdout
    status = project.cli("status", "--service", "batchai", "--var", f"job_gate={gate}", env={"BATCHAI_SPEC_SERVICE": "batch"})
    assert status.stdout.startswith(f"e2e on emulator serving {project.state_dir} (Batch AI)\n")
    gate.touch()


def test_without_the_option_the_hints_name_no_service(project: Project):
    gate = project.gate("job")
    submitted = project.cli("apply", "-y", "--no-wait", "--var", f"job_gate={gate}")
    assert "--service" not in submitted.stdout
    gate.touch()


def test_a_spec_applied_on_one_service_is_not_planned_on_the_other(project: Project):
    """Applied with --service batch, the spec's storage account says so: a destroy (or plan) that forgets the option
    would delete the shares the pools mount and leave the pools running; it is refused."""
    project.cli("apply", "-y", "--service", "batch")
    for command in (("destroy", "-y"), ("plan",)):
        refused = project.cli(*command, expect=1)
        assert refused.stderr.strip() == (
            "Error: storage_account.e2estore was created by this spec for --service batch, and this command runs for "
            "--service batchai: pass --service batch (or set `service: batch` in the spec); to move the spec to "
            "batchai, destroy it with --service batch first"
        )
    project.cli("destroy", "-y", "--service", "batch")
    project.cli("apply", "-y")  # on Batch AI now, from nothing
