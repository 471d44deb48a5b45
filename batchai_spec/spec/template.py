"""Render a spec file with sandboxed Jinja2, and map positions in the rendered text back to the template."""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from batchai_spec.spec.yaml_document import Position

_TEMPLATE_FRAME = "<template>"
_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}")


class _Namespace(dict):
    """`vars` or `env` in the template: a mapping that names itself when a key is missing."""

    def __init__(self, label: str, values: Mapping[str, Any]):
        super().__init__(values)
        self.label = label


class _SpecUndefined(jinja2.StrictUndefined):
    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if isinstance(self._undefined_obj, _Namespace) and isinstance(self._undefined_name, str):
            name = self._undefined_name
            if self._undefined_obj.label == "env":
                return f"`env.{name}` is undefined: the environment variable {name} is not set"
            return (
                f"`vars.{name}` is undefined: pass --var {name}=VALUE or set it in a --var-file "
                f"(or give a default: vars.{name} | default(...))"
            )
        if self._undefined_obj is jinja2.utils.missing and isinstance(self._undefined_name, str):
            return f"`{self._undefined_name}` is undefined (the template knows env, vars and spec_dir)"
        return super()._undefined_message


class TemplateProblem(Exception):
    def __init__(self, message: str, position: Position | None):
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class RenderedTemplate:
    source: str
    text: str

    def source_position(self, rendered: Position) -> tuple[Position, str]:
        """Where a position of the rendered text comes from in the template, and a note when that is a guess.

        When rendering kept every line in place (substitutions only), lines are exact. When loops or conditions
        moved lines, the rendered line is matched against the template lines (tags as wildcards), preferring the
        last candidate above it; the note then gives the rendered line.
        """
        source_lines = self.source.split("\n")
        rendered_lines = self.text.split("\n")
        if not 0 < rendered.line <= len(rendered_lines):
            return rendered, ""
        rendered_line = rendered_lines[rendered.line - 1]
        if len(source_lines) == len(rendered_lines):
            return Position(rendered.line, _source_column(source_lines[rendered.line - 1], rendered_line, rendered.column)), ""
        candidates = [
            number
            for number, line in enumerate(source_lines, 1)
            if _TAG.sub("", line).strip() and _line_pattern(line).fullmatch(rendered_line)
        ]
        if not candidates:
            return rendered, f" [line {rendered.line} of the rendered template]"
        above = [number for number in candidates if number <= rendered.line]
        line = above[-1] if above else candidates[0]
        note = f" [rendered line {rendered.line}]" if line != rendered.line else ""
        return Position(line, _source_column(source_lines[line - 1], rendered_line, rendered.column)), note


def _line_pattern(source_line: str) -> re.Pattern[str]:
    parts = _TAG.split(source_line)
    return re.compile(".*".join(re.escape(part) for part in parts))


def _source_column(source_line: str, rendered_line: str, column: int) -> int:
    if source_line == rendered_line:
        return column
    first_tag = _TAG.search(source_line)
    if first_tag is None or column <= first_tag.start():
        return column
    return first_tag.start() + 1


def render_template(source: str, context: Mapping[str, Any]) -> RenderedTemplate:
    """Render with `env`, `vars` and `spec_dir` (and nothing else) in a sandbox; undefined names are errors."""
    environment = SandboxedEnvironment(undefined=_SpecUndefined, keep_trailing_newline=True, autoescape=False)
    namespaces = {
        "env": _Namespace("env", context["env"]),
        "vars": _Namespace("vars", context["vars"]),
        "spec_dir": context["spec_dir"],
    }
    try:
        template = environment.from_string(source)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateProblem(f"template syntax error: {error.message}", Position(error.lineno, 1)) from None
    try:
        text = template.render(namespaces)
    except Exception as error:  # anything the template's own code raises is the spec author's to fix
        line = _template_line(error)
        message = error.message if isinstance(error, jinja2.TemplateError) and error.message else f"{type(error).__name__}: {error}"
        if isinstance(error, jinja2.exceptions.SecurityError):
            message = f"template refused by the sandbox: {message}"
        raise TemplateProblem(message, Position(line, _column_of_name(source, line, message)) if line else None) from None
    return RenderedTemplate(source, text)


def _template_line(error: BaseException) -> int | None:
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if frame.filename == _TEMPLATE_FRAME]
    return lines[-1] if lines else None


def _column_of_name(source: str, line: int, message: str) -> int:
    """The column of the name quoted in backticks in the message, else of the line's first tag."""
    source_line = source.split("\n")[line - 1] if line <= source.count("\n") + 1 else ""
    quoted = re.search(r"`([^`]+)`", message)
    if quoted and quoted.group(1) in source_line:
        return source_line.index(quoted.group(1)) + 1
    tag = _TAG.search(source_line)
    return tag.start() + 1 if tag else 1
