"""Options shared by the commands that read a spec (validate, plan, apply, destroy)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from typing import TYPE_CHECKING

from batchai_spec.errors import UserError

if TYPE_CHECKING:  # the spec models are imported when a command runs, not when the CLI starts
    from batchai_spec.spec import LoadedSpec

SpecArgument = Annotated[Path, typer.Argument(help="The spec file (YAML, rendered with Jinja2 first).", show_default=False)]
VarOption = Annotated[
    list[str] | None,
    typer.Option("--var", metavar="NAME=VALUE", help="Template variable `vars.NAME` (repeatable; wins over --var-file)."),
]
VarFileOption = Annotated[
    list[Path] | None,
    typer.Option("--var-file", metavar="FILE", help="YAML mapping of template variables (repeatable; later files win)."),
]


def parse_vars(assignments: list[str] | None) -> dict[str, str]:
    """`["a=1", "b=x=y"]` -> {"a": "1", "b": "x=y"}."""
    variables = {}
    for assignment in assignments or ():
        name, equals, value = assignment.partition("=")
        if not equals or not name.strip():
            # The argument is not echoed: a mistyped --var may hold a secret value.
            raise UserError("--var expects NAME=VALUE (e.g. --var epochs=5)")
        variables[name.strip()] = value
    return variables


def load_spec_from_cli(spec_path: Path, var: list[str] | None, var_file: list[Path] | None) -> LoadedSpec:
    from batchai_spec.spec import load_spec

    return load_spec(spec_path, parse_vars(var), var_file or ())
