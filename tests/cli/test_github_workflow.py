"""The pull-request workflow of examples/github-actions/ runs: its Plan and comment steps' scripts, taken from the
YAML as written, run with bash the way GitHub runs them, against the local emulator instead of Azure (the workflow's
own BATCHAI_SPEC_ENDPOINT set to local, BATCHAI_SPEC_STATE_DIR to a temporary directory) and a stand-in for
GitHub's REST API on loopback, so that the example cannot rot.

Only what GitHub fills in (`${{ ... }}` values, GITHUB_* variables) is given by the test; the scripts are not edited.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.cli.running import REPOSITORY

WORKFLOW = REPOSITORY / "examples" / "github-actions" / "plan-on-pull-request.yml"
REPO, PR, TOKEN = "octo/training", "7", "ghs_test-token"
# What GitHub gives the `${{ ... }}` expressions of the steps' env.
EXPRESSIONS = {
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000000",  # unused by the local endpoint
    "STORAGE_ACCOUNT": "prplanstore",
    "GITHUB_TOKEN": TOKEN,
    "PR_NUMBER": PR,
}


class FakeGitHub:
    """Issue comments of one pull request, served as GitHub's REST API serves them (paged by per_page/page)."""

    def __init__(self, unrelated: int):
        self.comments: list[dict] = [{"id": 1000 + n, "body": f"unrelated comment {n}"} for n in range(unrelated)]
        self.requests: list[tuple[str, str, dict | None]] = []
        self.bad_auth = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, document) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                url = urlsplit(self.path)
                fake.requests.append((method, url.path, body))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    fake.bad_auth += 1
                    return self._answer(401, {"message": "Bad credentials"})
                if method == "GET" and url.path == f"/repos/{REPO}/issues/{PR}/comments":
                    query = parse_qs(url.query)
                    size, page = int(query["per_page"][0]), int(query.get("page", ["1"])[0])
                    return self._answer(200, fake.comments[(page - 1) * size : page * size])
                if method == "POST" and url.path == f"/repos/{REPO}/issues/{PR}/comments":
                    comment = {"id": 5000 + len(fake.comments), "body": body["body"]}
                    fake.comments.append(comment)
                    return self._answer(201, {**comment, "html_url": f"https://github.com/{REPO}/pull/{PR}#c{comment['id']}"})
                prefix = f"/repos/{REPO}/issues/comments/"
                if method == "PATCH" and url.path.startswith(prefix):
                    comment = next((c for c in fake.comments if str(c["id"]) == url.path[len(prefix):]), None)
                    if comment is None:
                        return self._answer(404, {"message": "Not Found"})
                    comment["body"] = body["body"]
                    return self._answer(200, {**comment, "html_url": f"https://github.com/{REPO}/pull/{PR}#c{comment['id']}"})
                return self._answer(404, {"message": "Not Found"})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PATCH(self):
                self._handle("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ours(self) -> list[dict]:
        return [comment for comment in self.comments if comment["body"].startswith("<!-- batchai-spec plan:")]


@pytest.fixture
def github():
    fake = FakeGitHub(unrelated=130)  # the plan's comment lands on the second page of comments
    yield fake
    fake.server.shutdown()


@pytest.fixture
def workflow_project(tmp_path: Path):
    """A repository with the sample spec (small stand-ins for its script and data) as the workflow checks it out."""
    root = tmp_path / "checkout"
    (root / "specs").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    (root / "specs" / "mnist-cntk.yaml").write_text((REPOSITORY / "specs" / "mnist-cntk.yaml").read_text())
    for path, text in {
        "training/convnet_mnist.py": "print('stand-in')\n",
        "data/mnist/Train-28x28_cntk_text.txt": "|labels 1 0 0 0 0 0 0 0 0 0 |features 0 0\n",
        "data/mnist/Test-28x28_cntk_text.txt": "|labels 0 1 0 0 0 0 0 0 0 0 |features 0 0\n",
    }.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    state_dir = tmp_path / "state"
    yield root, state_dir
    subprocess.run([sys.executable, "-m", "batchai_spec", "emulator", "stop", "--state-dir", str(state_dir)],
                   capture_output=True, timeout=60)


class Workflow:
    def __init__(self, root: Path, state_dir: Path, github: FakeGitHub, summary: Path):
        document = yaml.safe_load(WORKFLOW.read_text())
        self.document = document
        (self.job,) = document["jobs"].values()
        self.steps = {step.get("name"): step for step in self.job["steps"]}
        self.root, self.state_dir, self.github, self.summary = root, state_dir, github, summary

    def environment(self, step: dict) -> dict[str, str]:
        environment = {key: value for key, value in os.environ.items() if not key.startswith(("BATCHAI_SPEC_", "GITHUB_"))}
        environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"  # batchai-spec
        environment.update({key: str(value) for key, value in self.job["env"].items()})
        for key, value in (step.get("env") or {}).items():
            if "${{" in str(value):
                assert key in EXPRESSIONS, f"the test does not know what GitHub gives {key}: {value}"
                value = EXPRESSIONS[key]
            environment[key] = str(value)
        # The substitutions: the local emulator instead of Azure.
        environment.update({"BATCHAI_SPEC_ENDPOINT": "local", "BATCHAI_SPEC_STATE_DIR": str(self.state_dir)})
        environment.update({
            "GITHUB_STEP_SUMMARY": str(self.summary), "GITHUB_API_URL": self.github.url, "GITHUB_REPOSITORY": REPO,
            "NO_COLOR": "1", "COLUMNS": "200",
        })
        return environment

    def run(self, name: str) -> subprocess.CompletedProcess:
        """The step's script as GitHub runs a `run:` with the default shell: bash --noprofile --norc -eo pipefail."""
        step = self.steps[name]
        script = self.root / f".step-{name.replace(' ', '-')}.sh"
        script.write_text(step["run"])
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=self.root, env=self.environment(step), capture_output=True, text=True, timeout=300,
        )

    def plan_then_comment(self) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
        plan = self.run("Plan")
        comment = self.run("Comment the plan on the pull request")
        return plan, comment


def test_the_workflow_plans_on_azure_batch_with_oidc_and_may_comment():
    document = yaml.safe_load(WORKFLOW.read_text())
    assert document["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}
    (job,) = document["jobs"].values()
    assert (job["env"]["BATCHAI_SPEC_ENDPOINT"], job["env"]["BATCHAI_SPEC_SERVICE"]) == ("azure", "batch")
    login = next(step for step in job["steps"] if str(step.get("uses", "")).startswith("azure/login@"))
    assert login["uses"] == "azure/login@v2" and "client-secret" not in login["with"]
    plan = next(step for step in job["steps"] if step.get("name") == "Plan")
    assert '--endpoint "$BATCHAI_SPEC_ENDPOINT" --service "$BATCHAI_SPEC_SERVICE"' in plan["run"]
    comment = next(step for step in job["steps"] if step.get("name") == "Comment the plan on the pull request")
    assert "!cancelled()" in comment["if"]  # runs after a failed plan too


def test_the_plan_is_commented_once_updated_in_place_and_a_broken_spec_fails(workflow_project, github, tmp_path):
    root, state_dir = workflow_project
    summary = tmp_path / "summary.md"
    workflow = Workflow(root, state_dir, github, summary)

    plan, comment = workflow.plan_then_comment()
    assert plan.returncode == 0, plan.stderr  # changes (exit 2 of --detailed-exitcode) do not fail the job
    assert comment.returncode == 0, comment.stderr
    assert comment.stdout.startswith(f"Commented the plan: https://github.com/{REPO}/pull/{PR}#c")
    text = summary.read_text()
    assert re.match(r"### batchai-spec plan: `mnist-cntk`\n\n\*\*Plan: \d+ to add, 0 to change, 0 to replace, 0 to destroy\.\*\*", text)
    (ours,) = github.ours()
    assert ours["body"] == "<!-- batchai-spec plan: specs/mnist-cntk.yaml -->\n" + text
    assert "storage_account.prplanstore" in ours["body"]  # the workflow's variables reached the plan
    service = workflow.environment(workflow.steps["Plan"])["BATCHAI_SPEC_SERVICE"]
    assert f"Service: {'Azure Batch' if service == 'batch' else 'Batch AI'}." in ours["body"]
    first_id = ours["id"]
    assert github.bad_auth == 0
    assert [request[0] for request in github.requests] == ["GET", "GET", "POST"]  # two pages of 130 comments

    # A second push: the same comment is updated, no other is made.
    github.requests.clear()
    summary.unlink()
    plan, comment = workflow.plan_then_comment()
    assert (plan.returncode, comment.returncode) == (0, 0), plan.stderr + comment.stderr
    assert comment.stdout.startswith("Updated the plan comment:")
    (ours,) = github.ours()
    assert ours["id"] == first_id and [request[0] for request in github.requests] == ["GET", "GET", "PATCH"]
    assert len(github.comments) == 131

    # A push that breaks the spec: the Plan step fails with the plan's exit code 1, and the comment says why.
    spec = root / "specs" / "mnist-cntk.yaml"
    spec.write_text(spec.read_text().replace("    vm_size:", "    vm_szie:"))
    summary.unlink()
    plan, comment = workflow.plan_then_comment()
    assert plan.returncode == 1
    assert "unknown key 'vm_szie'; did you mean 'vm_size'?" in plan.stderr
    assert comment.returncode == 0, comment.stderr
    (ours,) = github.ours()
    assert ours["id"] == first_id
    assert ours["body"].startswith(
        "<!-- batchai-spec plan: specs/mnist-cntk.yaml -->\n### batchai-spec plan failed: `specs/mnist-cntk.yaml`\n\n```\nError: "
    )
    assert "unknown key 'vm_szie'" in ours["body"] and "unknown key 'vm_szie'" in summary.read_text()
