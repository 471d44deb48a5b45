"""Fixtures of the live plan tests: a copy of the fixture project, its own emulator, sessions and CLI runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from batchai_spec.services.azure.endpoint import EndpointChoice
from batchai_spec.emulator.batchai.config import DELAY_SCALE_VARIABLE
from batchai_spec.emulator.server import RunningEmulator, start_in_process
from batchai_spec.plan import Plan
from batchai_spec.session import Session
from batchai_spec.spec import load_spec
from tests.plan.raw_sdk import RawFixture

FIXTURE = Path(__file__).parent / "fixture"
REPOSITORY = Path(__file__).parents[2]
SAMPLE_SPEC = REPOSITORY / "specs" / "mnist-cntk.yaml"
# Distinctive values, so that a test can look for them in every output.
SECRETS = {
    "PLAN_ADMIN_PASSWORD": "admin-pw-6f1c2a",
    "PLAN_SETUP_TOKEN": "setup-token-83be07",
    "PLAN_BLOB_KEY": "blob-key-d41fe9",
    "PLAN_REGISTRY_PASSWORD": "registry-pw-0a9c55",
    "PLAN_JOB_TOKEN": "job-token-7e31b4",
    "PLAN_FILE_SERVER_PASSWORD": "fs-pw-5c29d8",
}


@dataclass
class Project:
    """The fixture project copied to a temporary directory, with an emulator serving its state dir."""

    root: Path
    state_dir: Path
    emulator: RunningEmulator

    @property
    def spec(self) -> Path:
        return self.root / "spec.yaml"

    def edit(self, old: str, new: str, path: str = "spec.yaml") -> None:
        """Replace the one occurrence of `old` in a project file (fails loudly when the edit does not apply)."""
        file = self.root / path
        text = file.read_text()
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
        file.write_text(text.replace(old, new))

    def edit_yaml(self, change: Callable[[dict], None]) -> None:
        """A structural edit of the spec (comments are lost; Jinja expressions stay, they are quoted strings)."""
        document = yaml.safe_load(self.spec.read_text())
        change(document)
        self.spec.write_text(yaml.safe_dump(document, sort_keys=False))

    def session(self) -> Session:
        return Session(load_spec(self.spec), EndpointChoice("local", self.state_dir))

    def plan(self, **options) -> Plan:
        plan, _ = self.session().plan(**options)
        return plan

    def raw(self) -> RawFixture:
        return RawFixture(self.emulator.endpoint, self.session().graph, self.root, dict(SECRETS))

    def converged(self) -> RawFixture:
        """Everything the spec declares, created with the raw SDKs; returns the creator for further edits."""
        raw = self.raw()
        raw.create_all()
        return raw

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """`batchai-spec ARGS` in a subprocess, from the repository root so that this checkout is imported."""
        return run_cli(*args, env={**SECRETS, **(env or {})})


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "batchai_spec", *args],
        cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(DELAY_SCALE_VARIABLE, "0")
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    (root / "pyproject.toml").write_text("")  # the project tree that upload sources must stay in
    state_dir = tmp_path / "state"
    with start_in_process(state_dir) as emulator:
        yield Project(root, state_dir, emulator)


@pytest.fixture
def sample_spec(tmp_path: Path) -> Path:
    """The sample spec copied into a project of its own, with small stand-ins for its script and data files."""
    root = tmp_path / "sample"
    (root / "specs").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    spec = root / "specs" / SAMPLE_SPEC.name
    shutil.copy(SAMPLE_SPEC, spec)
    stand_ins = {
        "training/convnet_mnist.py": "print('stand-in for the training script')\n",
        "data/mnist/Train-28x28_cntk_text.txt": "|labels 1 0 0 0 0 0 0 0 0 0 |features 0 0\n",
        "data/mnist/Test-28x28_cntk_text.txt": "|labels 0 1 0 0 0 0 0 0 0 0 |features 0 0\n",
    }
    for path, text in stand_ins.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return spec
