"""Secrets (put in through {{ env.X }}) appear in no output of plan: text, JSON, Markdown, the saved plan, stderr."""

from __future__ import annotations

import copy

from tests.plan.conftest import SECRETS

ROTATED = {"PLAN_ADMIN_PASSWORD": "admin-pw-rotated-77e0", "PLAN_JOB_TOKEN": "job-token-rotated-3b9f"}


def _add_a_copy_of_the_cntk_job(document: dict) -> None:
    jobs = document["experiments"][0]["jobs"]
    twin = copy.deepcopy(next(job for job in jobs if job["name"] == "cntk"))
    twin["name"] = "cntk-twin"
    jobs.append(twin)


def test_no_output_format_shows_a_secret(project, tmp_path):
    project.converged()
    # A new job with secrets (create), rotated secrets (sensitive replace) and a job no longer declared (delete).
    project.edit_yaml(lambda document: document["experiments"][0]["jobs"].pop(-1))
    project.edit_yaml(_add_a_copy_of_the_cntk_job)
    saved = tmp_path / "plan.json"
    plan = ("plan", str(project.spec), "--state-dir", str(project.state_dir))
    outputs = {
        "text": project.cli(*plan, "--out", str(saved), env=ROTATED),
        "json": project.cli(*plan, "--format", "json", env=ROTATED),
        "markdown": project.cli(*plan, "--format", "markdown", env=ROTATED),
    }
    for name, result in outputs.items():
        assert result.returncode == 0, (name, result.stderr)
        assert "(sensitive)" in result.stdout, name
        assert "+ job.exp/cntk-twin" in result.stdout or '"job.exp/cntk-twin"' in result.stdout, name
    texts = {f"{name} {stream}": getattr(result, stream) for name, result in outputs.items() for stream in ("stdout", "stderr")}
    texts["saved plan"] = saved.read_text()
    assert "secrets[API_TOKEN].value" in texts["saved plan"]  # the rotation is in the plan, as a path only
    for secret in (*SECRETS.values(), *ROTATED.values()):
        for name, text in texts.items():
            assert secret not in text, f"{name} shows a secret"
