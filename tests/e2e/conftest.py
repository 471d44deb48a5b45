"""End-to-end fixtures: an emulator of the test's own on tmp_path (zero simulated delays) and a project using it.

The CLI finds the emulator through DIR/endpoint.json, as it finds a `batchai-spec emulator serve` a user runs, so
jobs and state outlive a CLI that is killed. `background_project` has no emulator: its first command starts one in
the background, as on a user's machine, and the fixture stops it at the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from batchai_spec.services.azure.endpoint import stop_local_emulator
from batchai_spec.emulator.batchai.config import DELAY_SCALE_VARIABLE
from batchai_spec.emulator.endpoint import ENDPOINT_FILE, Endpoint, live_endpoint, pid_alive
from batchai_spec.emulator.server import RunningEmulator, start_in_process
from batchai_spec.engine.waits import Backoff
from tests.e2e.project import Project


@pytest.fixture
def e2e_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulator]:
    monkeypatch.setenv(DELAY_SCALE_VARIABLE, "0")
    with start_in_process(tmp_path / "state") as running:
        yield running


@pytest.fixture
def service() -> str:
    """The service the project is realised on: Batch AI unless a test is parametrised over `service`
    (`project.BOTH_SERVICES`, or `"batch"` alone), which overrides this fixture."""
    return "batchai"


@pytest.fixture
def project(tmp_path: Path, e2e_emulator: RunningEmulator, service: str) -> Iterator[Project]:
    project = Project(tmp_path / "project", e2e_emulator, service)
    yield project
    # Gated setup tasks and jobs are real processes: let them end with the test.
    project.open_gates()


class BackgroundEmulator:
    """The emulator that the first command on `state_dir` starts in the background (none until a command runs);
    `endpoint` reads its endpoint.json, as a command does."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir.resolve()

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint.read(self.state_dir / ENDPOINT_FILE)

    @property
    def pid(self) -> int | None:
        endpoint = live_endpoint(self.state_dir)
        return None if endpoint is None else endpoint.pid

    def processes(self) -> list[int]:
        """The pids of every live `emulator serve` process for this state dir (read from /proc)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in argv and os.fsencode(self.state_dir) in argv and pid_alive(int(entry.name)):
                found.append(int(entry.name))
        return found


@dataclass(repr=False)
class BackgroundProject(Project):
    """The e2e project on a state dir that no emulator serves yet: its first command starts one in the background."""

    @property
    def state_dir(self) -> Path:
        return self.emulator.state_dir

    def forget_clients(self) -> None:
        """After the emulator was restarted (new ports): the SDK clients of the checks connect anew."""
        for name in ("admin", "resource_client", "storage_client", "batchai", "batch_mgmt"):
            self.__dict__.pop(name, None)


@pytest.fixture
def background_project(tmp_path: Path) -> Iterator[BackgroundProject]:
    emulator = BackgroundEmulator(tmp_path / "state")
    project = BackgroundProject(tmp_path / "project", emulator)
    yield project
    project.open_gates()
    stop_local_emulator(emulator.state_dir)
    # No emulator process is left behind, not even one that lost a race to start.
    deadline, backoff = time.monotonic() + 30, Backoff(first=0.02, most=0.5)
    while emulator.processes():
        assert time.monotonic() < deadline, f"emulator processes left: {emulator.processes()}"
        backoff.wait()
