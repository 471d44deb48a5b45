"""The plan as a pull-request comment: summary table first, details collapsed, never over GitHub's limit."""

from __future__ import annotations

from batchai_spec.plan.model import Action, Plan
from batchai_spec.plan.render_text import SYMBOLS, change_lines

GITHUB_COMMENT_LIMIT = 65_536
# Room kept for the truncation note and the closing lines.
_RESERVE = 600


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def render_markdown(plan: Plan, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    title = "destroy" if plan.operation == "destroy" else "plan"
    head = [
        f"### batchai-spec {title}: `{plan.spec_name}`",
        "",
        f"**{plan.summary()}** Target: {plan.endpoint}. Service: {plan.service_title}.",
        "",
    ]
    if plan.warnings:  # what the service realises differently than the spec reads
        head += ["> [!NOTE]", f"> {plan.service_title} warnings:", *(f"> - {_escape(warning)}" for warning in plan.warnings), ""]
    if plan.notes():  # a GitHub alert: what a reviewer must know before approving
        head += ["> [!WARNING]", *(f"> - {_escape(note)}" for note in plan.notes()), ""]
    changed = [change for change in plan.changes if change.action is not Action.NO_OP]
    if not changed:
        return "\n".join(head) + "\n"
    head += [
        "| Action | Count |",
        "|---|---|",
        *(f"| {SYMBOLS[a][0]} {a.value} | {plan.count(a)} |" for a in SYMBOLS if plan.count(a)),
        "",
        "| Address | Action | Why |",
        "|---|---|---|",
    ]
    budget = limit - _RESERVE
    parts = ["\n".join(head) + "\n"]
    used = len(parts[0])
    shown_rows = 0
    for change in changed:
        row = f"| `{_escape(change.address)}` | {change.action.value} | {_escape('; '.join(change.reasons))} |\n"
        if used + len(row) > budget // 2:
            break
        parts.append(row)
        used += len(row)
        shown_rows += 1
    if shown_rows < len(changed):
        note = f"| … | | {len(changed) - shown_rows} more changes not listed |\n"
        parts.append(note)
        used += len(note)
    parts.append("\n")
    shown_details = 0
    for change in changed:
        body = "\n".join(line for _, line in change_lines(change))
        block = (
            f"<details><summary><code>{change.address}</code> {change.action.value}</summary>\n\n"
            f"```diff\n{body}\n```\n</details>\n"
        )
        if used + len(block) > budget:
            break
        parts.append(block)
        used += len(block)
        shown_details += 1
    if shown_details < len(changed):
        parts.append(
            f"\n_Details of {len(changed) - shown_details} of {len(changed)} changes were left out to stay within "
            f"GitHub's {limit:,}-character limit; run `batchai-spec plan` for the full plan._\n"
        )
    return "".join(parts)
