"""The Typer application and the options every command shares."""

from __future__ import annotations

import os
from dataclasses import dataclass

import typer
from rich.console import Console

from batchai_spec import __version__


@dataclass
class GlobalState:
    debug: bool = False
    no_color: bool = False


state = GlobalState()
console = Console(highlight=False, soft_wrap=True)
console_err = Console(stderr=True, highlight=False, soft_wrap=True)

app = typer.Typer(
    name="batchai-spec",
    help="Declarative provisioning of GPU training on Azure Batch AI: validate, plan, apply, destroy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"batchai-spec {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    no_color: bool = typer.Option(False, "--no-color", help="Plain output without colour (NO_COLOR is honoured too)."),
) -> None:
    state.debug = debug
    state.no_color = no_color or bool(os.environ.get("NO_COLOR"))
    if state.no_color:
        console.no_color = console_err.no_color = True
