"""The Typer application and the options every command shares."""

from __future__ import annotations

import os
from dataclasses import dataclass

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperCommand, TyperGroup

from batchai_spec import __version__


@dataclass
class GlobalState:
    debug: bool = False
    no_color: bool = False


state = GlobalState()
console = Console(highlight=False, soft_wrap=True)
console_err = Console(stderr=True, highlight=False, soft_wrap=True)

PROG_NAME = "batchai-spec"


# Old names of options (and of their environment variables), still accepted, never shown.
HIDDEN_ALIASES = frozenset({"--backend", "BATCHAI_SPEC_BACKEND"})


class _HelpLayout:
    """The help and usage lines of the command-line ecosystem: `SPEC`, not `{spec}`; flags without a `<bool>`;
    hidden aliases left out."""

    def format_help(self, ctx, formatter) -> None:
        names = {param: (param.opts, param.envvar) for param in self.params}
        for param in self.params:
            param.opts = [name for name in param.opts if name not in HIDDEN_ALIASES]
            if isinstance(param.envvar, (list, tuple)):
                param.envvar = [name for name in param.envvar if name not in HIDDEN_ALIASES]
        try:
            super().format_help(ctx, formatter)
        finally:
            for param, (opts, envvar) in names.items():
                param.opts, param.envvar = opts, envvar

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""  # a flag takes no value: its type column stays empty (--help included)
        return params

    def collect_usage_pieces(self, ctx) -> list[str]:
        plain = {}
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.display_name_raw + ("..." if param.nargs != 1 else "")
                for piece in param.get_usage_pieces(ctx):
                    plain[piece] = name if param.required else f"[{name}]"
        return [plain.get(piece, piece) for piece in super().collect_usage_pieces(ctx)]


class Command(_HelpLayout, TyperCommand):
    pass


COMPLETION_HELP = {
    "--install-completion": "Install completion for the current shell, or for SHELL: bash, zsh, fish, powershell, pwsh.",
    "--show-completion": "Print the completion script of the current shell, or of SHELL, to copy it or customize the installation.",
}


class Group(_HelpLayout, TyperGroup):
    def get_params(self, ctx):
        for param in self.params:
            if param.opts and param.opts[0] in COMPLETION_HELP and param.metavar is None:
                param.metavar, param.help = "[SHELL]", COMPLETION_HELP[param.opts[0]]
        return super().get_params(ctx)

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        # `--show-completion bash` / `--install-completion zsh`: the shell named, or `Shell sh not supported.` and
        # exit 1. Typer's own flags take no value: they detect the shell, and a name after them went unread.
        for at, arg in enumerate(args[:-1]):
            option = next((param for param in self.params if arg in param.opts), None)  # the top level's only
            if option is not None and arg in COMPLETION_HELP and not args[at + 1].startswith("-"):
                option.callback(ctx, option, args[at + 1])  # prints or installs the script, and exits
            if not arg.startswith("-"):
                break  # the command: what follows is its own
        return super().parse_args(ctx, args)


def examples(*described: tuple[str, str]) -> str:
    """The Examples section that ends a command's --help (its epilog): (what it does, the command line) pairs."""
    from rich.markup import escape

    lines = [f"  {escape(what)}\n    [bold]{escape(command)}[/]" for what, command in described]
    # The leading newline keeps the indentation: Typer dedents every line after the first by their common margin.
    return "\n[bold]Examples[/]\n" + "\n".join(lines)


class App(typer.Typer):
    """A Typer whose commands lay out their help as `Command` does."""

    def command(self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **settings):
        return super().command(name, cls=cls or Command, **settings)


app = App(
    name=PROG_NAME,
    cls=Group,
    help="Declarative provisioning of GPU training on Azure Batch AI: validate, plan, apply, destroy.",
    no_args_is_help=True,
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
