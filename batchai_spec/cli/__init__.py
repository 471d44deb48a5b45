"""The command line: thin Typer commands over the layers below. Each command group lives in its own module."""

from __future__ import annotations

import gc
import os
import sys

# A command spends most of its CPU importing (the SDKs, pydantic models), which allocates many objects that all
# live on: the default threshold (700) runs a collection every few hundred of them, a tenth of a plan's time for
# nothing. Collections still run, each after more allocations.
gc.set_threshold(20_000, 50, 50)

import typer  # noqa: E402

# Typer 0.29 carries its own copy of click; its usage errors are instances of this class, not of click's.
from typer._click.exceptions import ClickException  # noqa: E402
from rich.markup import escape  # noqa: E402

from batchai_spec.cli.app import PROG_NAME, app, console_err, state  # noqa: E402
from batchai_spec.errors import UserError  # noqa: E402

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


def _stopped_emulator(error: BaseException) -> UserError | None:
    """The local emulator's death, when it caused `error`: a layer may have wrapped it in its own context (apply's
    "create X failed: ... Already done: ..."), but what to act on is that the emulator stopped."""
    from batchai_spec.services.azure.endpoint import EmulatorStopped

    cause: BaseException | None = error
    for _ in range(20):
        if cause is None or isinstance(cause, EmulatorStopped):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


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
        error = _stopped_emulator(error) or error
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
        stopped = _stopped_emulator(error)
        if stopped is not None:
            console_err.print(f"[bold red]Error:[/] {escape(stopped.message)}", soft_wrap=True)
            sys.exit(stopped.exit_code)
        console_err.print(f"[bold red]Error:[/] {escape(type(error).__name__)}: {escape(str(error))} (--debug shows where)", soft_wrap=True)
        sys.exit(1)


__all__ = ["app", "main"]
