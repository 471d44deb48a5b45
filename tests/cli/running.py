"""Running the command line in tests: as a user runs it (a subprocess), or only its parsing (in-process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m batchai_spec ARGS` from the repository root, in a wide terminal without colour."""
    environment = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "batchai_spec", *args],
        cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=120,
    )


def parsed(command: str, *args: str) -> dict[str, Any]:
    """The values that `batchai-spec COMMAND ARGS` hands to the command's function: the real command line's
    parsing and conversion, without running the command."""
    from typer.main import get_command

    from batchai_spec.cli import app

    root = get_command(app)
    with root.make_context("batchai-spec", [command]) as context:
        with root.get_command(context, command).make_context(command, list(args), parent=context) as command_context:
            return dict(command_context.params)


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """main() in-process, as the console script runs it: (exit code, stdout, stderr)."""
    from batchai_spec.cli import main

    monkeypatch.setattr(sys, "argv", ["batchai-spec", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


_IMPORT_PROBE = """
import sys
from batchai_spec.cli import main
prefixes = tuple(sys.argv[1].split(","))
sys.argv = ["batchai-spec", *sys.argv[2:]]
code = 0
try:
    main()
except SystemExit as done:
    code = done.code
print("exit", code, "loaded", sorted({name for name in sys.modules if name.startswith(prefixes)}))
"""


def modules_loaded(prefixes: tuple[str, ...], *args: str, **options: Any) -> subprocess.CompletedProcess:
    """`batchai-spec ARGS` in a fresh interpreter, whose last line of output is `exit CODE loaded [MODULES]`: the
    modules, among those whose names start with one of `prefixes`, that the command imported."""
    return subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, ",".join(prefixes), *args],
        capture_output=True, text=True, timeout=120, **{"cwd": REPOSITORY, **options},
    )
