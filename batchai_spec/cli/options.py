"""Options shared by the commands: the spec argument and its variables, durations (`--job-timeout 2h`), and the one
spelling of machine output (`--format text|json`, `--json` its alias)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Mapping, Optional

import typer

# Typer 0.29 carries its own copy of click: usage errors must be of its classes (see cli/__init__.py).
from typer._click.exceptions import BadParameter, UsageError

from typing import TYPE_CHECKING

from batchai_spec import durations
from batchai_spec.errors import UserError

if TYPE_CHECKING:  # the spec models are imported when a command runs, not when the CLI starts
    from batchai_spec.spec import LoadedSpec

SpecArgument = Annotated[
    Path, typer.Argument(metavar="SPEC", help="The spec file (YAML, rendered with Jinja2 first).", show_default=False)
]
SpecOrPlanArgument = Annotated[
    Path,
    typer.Argument(metavar="SPEC|PLANFILE", help="The spec file, or a plan saved with `plan --out`.", show_default=False),
]
VarOption = Annotated[
    list[str] | None,
    typer.Option("--var", metavar="NAME=VALUE", help="Template variable `vars.NAME` (repeatable; wins over --var-file)."),
]
VarFileOption = Annotated[
    list[Path] | None,
    typer.Option("--var-file", metavar="FILE", help="YAML mapping of template variables (repeatable; later files win)."),
]


class Duration(float):
    """Seconds, shown as people write them: `Duration(5400)` prints as 1h30m (in --help defaults, too)."""

    def __str__(self) -> str:
        return durations.format_duration(self)


def parse_duration(text: str | float) -> Duration:
    """A duration option's value (or its default, given in seconds); a bad one is a usage error with one message."""
    if isinstance(text, (int, float)):
        return Duration(text)
    try:
        return Duration(durations.parse_duration(text))
    except ValueError as error:
        raise BadParameter(str(error)) from None


def _duration_option(name: str, what: str) -> Any:
    return typer.Option(name, metavar="DURATION", parser=parse_duration, help=f"{what}: 90s, 30m, 2h, 1h30m... or seconds.")


ClusterTimeoutOption = Annotated[float, _duration_option("--cluster-timeout", "How long to wait for a cluster's nodes")]
JobTimeoutOption = Annotated[float, _duration_option("--job-timeout", "How long to follow a job before returning")]
LockTimeoutOption = Annotated[float, _duration_option("--lock-timeout", "How long to wait for another apply or destroy of this spec")]


class OutputFormat(str, Enum):
    """The output of the commands whose output programs read (apply, destroy, status); `plan` adds markdown."""

    text = "text"
    json = "json"


FormatOption = Annotated[
    Optional[OutputFormat],
    typer.Option("--format", metavar="text|json", help="text (the default) for people, json (JSON lines) for programs.", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="The same as --format json.")]


def wants_json(json_flag: bool, output_format: Enum | None) -> bool:
    """Whether machine output was asked for: `--json` and `--format json` say the same; `--json` with another
    --format is a usage error."""
    chosen = None if output_format is None else output_format.value
    if json_flag and chosen not in (None, "json"):
        from typer._click.globals import get_current_context

        raise UsageError(f"--json and --format {chosen} contradict each other: give one of them", ctx=get_current_context(silent=True))
    return json_flag or chosen == "json"


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


def load_spec_from_cli(
    spec_path: Path, var: list[str] | None, var_file: list[Path] | None, saved_variables: Mapping[str, Any] | None = None
) -> LoadedSpec:
    from batchai_spec.spec import load_spec

    return load_spec(spec_path, {**(saved_variables or {}), **parse_vars(var)}, var_file or ())
