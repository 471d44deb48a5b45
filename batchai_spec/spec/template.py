"""Render a spec file with sandboxed Jinja2, and map positions in the rendered text back to the template."""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import MAX_RANGE, SandboxedEnvironment, safe_range

from batchai_spec.spec.yaml_document import MAX_SPEC_BYTES, Position, mib

# Rendering is bounded, so that a template costs what it looks like: its output (checked as it is produced) and every
# string or list it builds stay within MAX_SPEC_BYTES, `range()` within jinja2's sandbox limit (MAX_RANGE, 100,000
# numbers), and loop iterations and calls together within MAX_TEMPLATE_STEPS (a 2,000-job sweep takes a few
# thousand); RENDER_SECONDS is a last resort for steps that are each slow.
MAX_TEMPLATE_STEPS = 1_000_000
RENDER_SECONDS = 5.0
_LARGEST_POWER_BITS = 4096

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


class _OverBound(Exception):
    """A rendering bound was passed; raised inside the template's code, so that the traceback names its line."""


class _BoundingCodeGenerator(CodeGenerator):
    """Jinja2's code generator, with every loop's iterable (as `environment.bounded_iter(ITER)`, the way extensions
    call the environment) and every `~` concatenation passed through the environment's checks."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        if not _is_bounded(node.iter):
            bounded_iter = nodes.EnvironmentAttribute("bounded_iter")
            node.iter = nodes.Call(bounded_iter, [node.iter], [], None, None, lineno=node.iter.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_value(")
        super().visit_Concat(node, frame)
        self.write(")")


class _BoundedEnvironment(SandboxedEnvironment):
    """The sandbox, counting loop iterations and calls against MAX_TEMPLATE_STEPS and a deadline, and refusing
    strings and lists over MAX_SPEC_BYTES as they are made."""

    code_generator_class = _BoundingCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = self._range
        self.steps = 0
        self.deadline = time.monotonic() + RENDER_SECONDS

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_TEMPLATE_STEPS:
            raise _OverBound(
                f"the template runs past {MAX_TEMPLATE_STEPS:,} loop iterations and calls, the limit (nested loops?)"
            )
        if time.monotonic() > self.deadline:
            raise _OverBound(f"the template takes more than {RENDER_SECONDS:g} seconds to render, the limit")

    def bounded_iter(self, iterable: Any) -> Iterable[Any]:
        return _CountedIterable(iterable, self)

    def bounded_value(self, value: Any) -> Any:
        if isinstance(value, (str, list, tuple)) and len(value) > MAX_SPEC_BYTES:
            raise _OverBound(f"the template makes a value of more than {mib(MAX_SPEC_BYTES)}, the limit of a spec")
        return value

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - as jinja2's
        __self.step()
        return __self.bounded_value(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """`*` and `**` are checked before they run (their result could be huge), `+` and `%` after."""
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and _int(times) and len(sequence) * times > MAX_SPEC_BYTES:
                    raise _OverBound(f"the template makes a value of more than {mib(MAX_SPEC_BYTES)}, the limit of a spec")
        if operator == "**" and _int(left) and _int(right) and abs(left) > 1:
            if right * abs(left).bit_length() > _LARGEST_POWER_BITS:
                raise _OverBound(f"the template makes a number of more than {_LARGEST_POWER_BITS:,} bits, the limit")
        return self.bounded_value(super().call_binop(context, operator, left, right))

    @staticmethod
    def _range(*args: int) -> range:
        try:
            return safe_range(*args)
        except OverflowError:
            raise _OverBound(f"range() of more than {MAX_RANGE:,} numbers, the sandbox's limit") from None


def _is_bounded(node: nodes.Expr) -> bool:
    called = node.node if isinstance(node, nodes.Call) else None
    return isinstance(called, nodes.EnvironmentAttribute) and called.name == "bounded_iter"


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _CountedIterable:
    """An iterable whose every item is a step of the environment's budget; sized when the wrapped one is."""

    def __init__(self, iterable: Any, environment: _BoundedEnvironment):
        self.iterable = iterable
        self.environment = environment

    def __iter__(self) -> Iterator[Any]:
        step = self.environment.step
        for item in self.iterable:
            step()
            yield item

    def __len__(self) -> int:
        return len(self.iterable)


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
    """Render with `env`, `vars` and `spec_dir` (and nothing else) in a sandbox; undefined names are errors.

    The output is collected as it is produced and refused once over MAX_SPEC_BYTES; loops, calls and the values the
    template makes are bounded too (see MAX_TEMPLATE_STEPS)."""
    environment = _BoundedEnvironment(undefined=_SpecUndefined, keep_trailing_newline=True, autoescape=False)
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
        text = _bounded_render(template, namespaces)
    except Exception as error:  # anything the template's own code raises is the spec author's to fix
        line = _template_line(error)
        if isinstance(error, _OverBound):
            message = str(error)
        elif isinstance(error, jinja2.TemplateError) and error.message:
            message = error.message
        else:
            message = f"{type(error).__name__}: {error}"
        if isinstance(error, jinja2.exceptions.SecurityError):
            message = f"template refused by the sandbox: {message}"
        raise TemplateProblem(message, Position(line, _column_of_name(source, line, message)) if line else None) from None
    return RenderedTemplate(source, text)


def _bounded_render(template: jinja2.Template, namespaces: Mapping[str, Any]) -> str:
    """The template's output, gathered piece by piece; past MAX_SPEC_BYTES an _OverBound is thrown into the
    template at the piece that passed it, so that its traceback names the template's line."""
    pieces: list[str] = []
    size = 0
    output = template.generate(namespaces)
    try:
        for piece in output:
            pieces.append(piece)
            size += len(piece)
            if size > MAX_SPEC_BYTES:
                output.throw(_OverBound(f"the rendered template passes {mib(MAX_SPEC_BYTES)}, the limit of a spec"))
    finally:
        output.close()
    return "".join(pieces)


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
