"""The plan for people, the way Terraform shows one: + create, ~ update, -/+ replace, - destroy."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

from batchai_spec.plan.model import Action, Plan, ResourceChange

SYMBOLS = {
    Action.CREATE: ("+", "green"),
    Action.UPDATE: ("~", "yellow"),
    Action.REPLACE: ("-/+", "magenta"),
    Action.DELETE: ("-", "red"),
}
HEADLINES = {
    Action.CREATE: "will be created",
    Action.UPDATE: "will be updated in-place",
    Action.REPLACE: "must be replaced",
    Action.DELETE: "will be destroyed",
}


def value(item: Any) -> str:
    return json.dumps(item, default=str, ensure_ascii=False)


def flatten(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(tree, dict) and tree:
        pairs: list[tuple[str, Any]] = []
        for key in sorted(tree):
            pairs += flatten(tree[key], f"{prefix}.{key}" if prefix else key)
        return pairs
    if isinstance(tree, list) and tree:
        pairs = []
        for index, item in enumerate(tree):
            pairs += flatten(item, f"{prefix}[{index}]")
        return pairs
    return [(prefix, tree)] if prefix else []


def change_lines(change: ResourceChange) -> list[tuple[str, str]]:
    """(style, line) pairs for one change; shared by the text and Markdown renderers."""
    symbol, style = SYMBOLS[change.action]
    headline = f"# {change.address} {HEADLINES[change.action]}"
    if change.reasons:
        headline += f" ({'; '.join(change.reasons)})"
    lines = [("bold", headline), *(("bold red", f"# {note}") for note in change.notes), (style, f"{symbol} {change.address}")]
    if change.action is Action.CREATE:
        lines += [("green", f"    + {path} = {value(item)}") for path, item in flatten(change.after)]
    elif change.action is Action.DELETE:
        lines += [("red", f"    - {path} = {value(item)}") for path, item in flatten(change.before)]
    else:
        for field in change.fields:
            before = "(sensitive)" if field.sensitive else value(field.before)
            after = "(sensitive)" if field.sensitive else value(field.after)
            note = "  # forces replacement" if field.forces_replacement and change.action is Action.REPLACE else ""
            lines.append(("yellow", f"    ~ {field.path} = {before} -> {after}{note}"))
    return lines


def render_text(plan: Plan) -> Text:
    text = Text()
    for warning in plan.warnings:  # what the service realises differently than the spec reads, before the changes
        text.append("Warning: ", style="bold yellow")
        text.append(f"{warning}\n")
    if plan.warnings:
        text.append("\n")
    if plan.has_changes:
        verb = "destroy" if plan.operation == "destroy" else "apply"
        text.append(f"batchai-spec will {verb} the following changes on {plan.where}:\n\n")
        for change in plan.changes:
            if change.action is Action.NO_OP:
                continue
            for style, line in change_lines(change):
                text.append(f"  {line}\n", style=style)
            text.append("\n")
    text.append(plan.summary(), style="bold")
    text.append("\n")
    return text
