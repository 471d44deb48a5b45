"""`batchai-spec plan`: the spec diffed against the live state, for people (text), machines (json) and reviews (markdown)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from batchai_spec.cli.app import app, console, examples
from batchai_spec.cli.common import EndpointOption, ParallelismOption, ServiceOption, StateDirOption, open_session
from batchai_spec.cli.options import JsonOption, SpecArgument, VarFileOption, VarOption, wants_json


class PlanFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


PLAN_EXAMPLES = examples(
    ("See what apply would change:", "batchai-spec plan specs/mnist-cntk.yaml"),
    ("Save the plan, then apply exactly that plan:", "batchai-spec plan spec.yaml --out plan.json && batchai-spec apply plan.json"),
    ("A plan to paste into a pull request:", "batchai-spec plan spec.yaml --format markdown > plan.md"),
    ("In CI: exit 2 when there are changes, 0 when there are none:", "batchai-spec plan spec.yaml --detailed-exitcode"),
)


@app.command(epilog=PLAN_EXAMPLES)
def plan(
    spec: SpecArgument,
    var: VarOption = None,
    var_file: VarFileOption = None,
    output_format: Annotated[
        Optional[PlanFormat],
        typer.Option(
            "--format", metavar="text|json|markdown", help="text (the default), json or markdown.", show_default=False
        ),
    ] = None,
    json_output: JsonOption = False,
    out: Annotated[Optional[Path], typer.Option("--out", metavar="FILE", help="Save the plan for `apply FILE`.")] = None,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 0 without changes, 2 with changes, 1 on error.")
    ] = False,
    target: Annotated[
        Optional[list[str]], typer.Option("--target", metavar="ADDRESS", help="Plan only this address and what it needs.")
    ] = None,
    replace: Annotated[
        Optional[list[str]], typer.Option("--replace", metavar="ADDRESS", help="Plan to replace this resource.")
    ] = None,
    endpoint: EndpointOption = "local",
    service: ServiceOption = None,
    state_dir: StateDirOption = None,
    parallelism: ParallelismOption = 16,
) -> None:
    """Show what `apply` would change, without changing anything."""
    output_format = PlanFormat.json if wants_json(json_output, output_format) else output_format or PlanFormat.text
    from batchai_spec.plan.render_markdown import render_markdown
    from batchai_spec.plan.render_text import render_text
    from batchai_spec.plan.saved import save_plan

    session = open_session(spec, var, var_file, endpoint, state_dir, parallelism, service=service)
    result, _ = session.plan(replace=replace or (), only=target or ())
    if output_format is PlanFormat.json:
        console.print_json(json.dumps(result.to_json(), default=str))
    elif output_format is PlanFormat.markdown:
        console.out(render_markdown(result), highlight=False)
    else:
        console.print(render_text(result))
    if out is not None:
        save_plan(
            result, out, replace=replace or (), only=target or (),
            variables=session.loaded.variables, secrets=session.secret_values(),
        )
        if output_format is PlanFormat.text:
            console.print(f"Saved the plan to {out}; apply it with: batchai-spec apply {out}")
    if detailed_exitcode and result.has_changes:
        raise typer.Exit(2)
