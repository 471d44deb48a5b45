"""The CLI as a person sees it: run in a pseudo-terminal (pexpect) whose screen a terminal emulator (pyte) keeps, so
that a test asserts what is on the screen, not what went through a pipe."""

from __future__ import annotations

import time
from pathlib import Path

import pexpect
import pyte

from tests.e2e.project import CLI_TIMEOUT_S, REPOSITORY, Project, Run

COLUMNS, LINES = 120, 40


class Terminal:
    def __init__(
        self, project: Project, command: str, *args: str, env: dict[str, str] | None = None, stdout_to: Path | None = None
    ):
        """`stdout_to`: the command's standard output goes to that file (`> FILE`), its standard error and input
        stay on the terminal."""
        self.project = project
        argv = project.argv(command, *args)
        if stdout_to is not None:
            argv = ["/bin/sh", "-c", f'exec "$@" > "{stdout_to}"', "sh", *argv]
        environment = project.environment({"COLUMNS": str(COLUMNS), "LINES": str(LINES), "TERM": "xterm-256color", **(env or {})})
        self.child = pexpect.spawn(
            argv[0], argv[1:], cwd=str(REPOSITORY), env=environment, dimensions=(LINES, COLUMNS), encoding="utf-8",
            codec_errors="replace", timeout=CLI_TIMEOUT_S,
        )
        self.argv = project.argv(command, *args)[2:]
        self.screen = pyte.Screen(COLUMNS, LINES)
        self.stream = pyte.Stream(self.screen)
        self.transcript: list[str] = []

    def display(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for(self, text: str, timeout_s: float = CLI_TIMEOUT_S) -> str:
        """Until `text` is on the screen (drawn, not only written); the screen then."""
        deadline = time.monotonic() + timeout_s
        while text not in self.display():
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never appeared on the screen:\n{self.display()}"
            try:
                self._feed(self.child.read_nonblocking(65536, timeout=min(left, 1.0)))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                assert text in self.display(), f"the command ended without showing {text!r}:\n{self.display()}"
        return self.display()

    def type(self, line: str) -> None:
        self.child.sendline(line)

    def finish(self, expect: int) -> Run:
        """Until the command ends; checked like every other run (no traceback, no secret)."""
        self._feed(self.child.read())
        self.child.close()
        run = self.project._checked(Run(self.argv, self.child.exitstatus, "".join(self.transcript), ""))
        assert run.returncode == expect, f"{run}\nscreen:\n{self.display()}"
        return run

    def _feed(self, text: str) -> None:
        self.transcript.append(text)
        self.stream.feed(text)
