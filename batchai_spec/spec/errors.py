"""SpecError, and turning pydantic's validation errors into `file:line:column: key.path: problem` lines."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from batchai_spec.errors import UserError
from batchai_spec.spec.base import SIMILARITY, KeyPath, LocatedValueError, did_you_mean, format_key_path

MAX_LISTED_PROBLEMS = 10


class SpecError(UserError):
    """A spec the user must fix. The message starts with `file:line:column:` (when known) and names the key path."""


@dataclass(frozen=True)
class SourceLocation:
    """`file:line:column` of a key, and a note when the line was guessed through a template loop."""

    file: str
    line: int | None = None
    column: int | None = None
    note: str = ""

    def __str__(self) -> str:
        return ":".join(str(part) for part in (self.file, self.line, self.column) if part is not None)

    def error(self, loc: KeyPath, problem: str) -> SpecError:
        """`file:line:column: key.path: problem`, as a SpecError."""
        return SpecError(f"{self}: {format_key_path(_shown_path(loc)) or '(top level)'}: {problem}{self.note}")


def validation_error_to_spec_error(
    error: ValidationError, model: type[BaseModel], locate: Callable[[KeyPath, bool], SourceLocation]
) -> SpecError:
    """One line per problem, first by position in the file; `locate(loc, at_key)` says where a key path is.

    Never quotes the offending input: it may be a secret.
    """
    problems = []
    items = error.errors(include_url=False, include_input=False)
    for item in _without_missing_keys_explained_by_typos(items, model):
        loc = tuple(item["loc"])
        context_error = (item.get("ctx") or {}).get("error") if item["type"] == "value_error" else None
        if isinstance(context_error, LocatedValueError):
            loc = loc + context_error.loc
        where = locate(loc, item["type"] == "extra_forbidden")
        problems.append((where, where.error(loc, _problem_text(item, loc, model, context_error)).message))
    problems.sort(key=lambda problem: (problem[0].line or 0, problem[0].column or 0))
    lines = [line for _, line in problems]
    if len(lines) > MAX_LISTED_PROBLEMS:
        lines = [*lines[:MAX_LISTED_PROBLEMS], f"... and {len(lines) - MAX_LISTED_PROBLEMS} more problems"]
    return SpecError("\n".join(lines))


def _without_missing_keys_explained_by_typos(items: list[dict[str, Any]], model: type[BaseModel]) -> list[dict[str, Any]]:
    """Drop "missing 'vm_size'" when the same mapping has an unknown key 'vm_szie' that suggests it."""
    suggested = set()
    for item in items:
        if item["type"] == "extra_forbidden":
            loc = tuple(item["loc"])
            for close in difflib.get_close_matches(str(loc[-1]), _allowed_keys(model, loc[:-1]), n=1, cutoff=SIMILARITY):
                suggested.add((*loc[:-1], close))
    return [item for item in items if not (item["type"] == "missing" and tuple(item["loc"]) in suggested)]


def _shown_path(loc: KeyPath) -> KeyPath:
    return tuple(part for part in loc if part != "[key]")


def _problem_text(item: dict[str, Any], loc: KeyPath, model: type[BaseModel], context_error: Exception | None) -> str:
    kind = item["type"]
    if context_error is not None:
        return str(context_error.message if isinstance(context_error, LocatedValueError) else context_error)
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        return f"unknown key '{loc[-1]}'" + did_you_mean(str(loc[-1]), allowed)
    if kind == "missing":
        return f"missing required key '{loc[-1]}'"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "expected a mapping"
    if kind in ("tuple_type", "list_type"):
        return "expected a list"
    if kind.startswith("time_delta"):
        return "expected a duration: ISO 8601 (P7D, PT1H30M), [D.]HH:MM:SS or seconds"
    return item["msg"]


def _allowed_keys(model: type[BaseModel], loc: KeyPath) -> list[str]:
    """Keys of the model found by walking `loc` down the annotations from `model`."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    annotation = _unwrap(annotation)
    return list(annotation.model_fields) if isinstance(annotation, type) and issubclass(annotation, BaseModel) else []


def _step(annotation: Any, part: str | int) -> Any:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(part) if isinstance(part, str) else None
        return field.annotation if field else None
    arguments = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (tuple, list) and arguments:
        return arguments[0]
    if origin is dict and len(arguments) == 2:
        return arguments[1]
    return None


def _unwrap(annotation: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` -> X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [member for member in typing.get_args(annotation) if member is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
