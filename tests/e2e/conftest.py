"""End-to-end fixtures: an emulator of the test's own on tmp_path (zero simulated delays) and a project using it.

The CLI finds the emulator through DIR/endpoint.json, as it finds a `batchai-spec emulator serve` a user runs, so
jobs and state outlive a CLI that is killed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batchai_spec.emulator.batchai.config import DELAY_SCALE_VARIABLE
from batchai_spec.emulator.server import RunningEmulator, start_in_process
from tests.e2e.project import Project


@pytest.fixture
def e2e_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulator]:
    monkeypatch.setenv(DELAY_SCALE_VARIABLE, "0")
    with start_in_process(tmp_path / "state") as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, e2e_emulator: RunningEmulator) -> Iterator[Project]:
    project = Project(tmp_path / "project", e2e_emulator)
    yield project
    # Gated setup tasks and jobs are real processes: let them end with the test.
    project.open_gates()
