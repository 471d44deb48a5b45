"""The command line: thin Typer commands over the layers below. Each command group lives in its own module."""

from __future__ import annotations

import os
import sys

import typer

# Typer 0.29 carries its own copy of click; its usage errors are instances of this class, not of click's.
from typer._click.exceptions import ClickException
from rich.markup import escape

from batchai_spec.cli.app import PROG_NAME, app, console_err, state
from batchai_spec.errors import UserError

# Command modules register themselves on `app` when imported; one import line per module.
from batchai_spec.cli import spec_commands  # noqa: E402,F401
from batchai_spec.cli import plan as _plan  # noqa: E402,F401
from batchai_spec.cli import apply as _apply  # noqa: E402,F401
from batchai_spec.cli import day2 as _day2  # noqa: E402,F401
from batchai_spec.cli import emulator  # noqa: E402,F401


EXIT_INTERRUPTED = 130


def _interrupted() -> None:
    console_err.print("Interrupted. Run the same command again to finish: completed changes are not repeated.")
    # Worker threads may be inside a long SDK call or wait; the service side keeps going without them.
    sys.stdout.flush()
    os._exit(EXIT_INTERRUPTED)


def main() -> None:
    """Entry point of the `batchai-spec` script: every user error ends in one message and its exit code."""
    try:
        # Without standalone mode, click returns the code of typer.Exit instead of exiting.
        # The program's name, also under `python -m batchai_spec`: usage lines and shell completion use it.
        code = app(prog_name=PROG_NAME, standalone_mode=False)
        if code == EXIT_INTERRUPTED:  # Typer turns Ctrl-C into Exit(130)
            _interrupted()
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as error:
        if state.debug:
            console_err.print_exception()
        console_err.print(f"[bold red]Error:[/] {escape(error.message)}", soft_wrap=True)
        sys.exit(error.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        _interrupted()
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except ClickException as usage:
        usage.show()
        # 1, not click's 2: `plan --detailed-exitcode` means "changes" by 2, and a mistyped flag must not read so.
        sys.exit(1)
    except Exception as error:  # noqa: BLE001 - a bug or an unforeseen failure: one line, the traceback on --debug
        if state.debug:
            console_err.print_exception()
        console_err.print(f"[bold red]Error:[/] {escape(type(error).__name__)}: {escape(str(error))} (--debug shows where)", soft_wrap=True)
        sys.exit(1)


__all__ = ["app", "main"]
