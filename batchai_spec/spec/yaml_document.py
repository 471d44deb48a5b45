"""Parse YAML into plain data while remembering where every key and value is, and refusing duplicate keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from batchai_spec.spec.base import KeyPath


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based

    @classmethod
    def of(cls, mark: yaml.Mark) -> Position:
        return cls(mark.line + 1, mark.column + 1)


@dataclass(frozen=True)
class YamlDocument:
    """The parsed data and, per key path, the position of the value and (for mapping entries) of the key."""

    data: Any
    values: dict[KeyPath, Position] = field(repr=False)
    keys: dict[KeyPath, Position] = field(repr=False)


class YamlProblem(Exception):
    """A document that is not acceptable YAML (syntax error, duplicate key, several documents, empty)."""

    def __init__(self, message: str, position: Position | None):
        super().__init__(message)
        self.message = message
        self.position = position


# libyaml composes large documents (a 2,000-job sweep) about ten times faster than PyYAML's Python parser. Errors are
# always reported by the Python parser, whose messages and positions the spec's error texts are written against.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


def parse_yaml(text: str) -> YamlDocument:
    if _FAST_LOADER is not None:
        try:
            return _parse_with(_FAST_LOADER, text)
        except YamlProblem:
            pass
    return _parse_with(yaml.SafeLoader, text)


def _parse_with(loader_class: type, text: str) -> YamlDocument:
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise YamlProblem("the document is empty", None)
        values: dict[KeyPath, Position] = {}
        keys: dict[KeyPath, Position] = {}
        data = _build(loader, root, (), values, keys)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        # The problem text only; PyYAML's full message quotes the offending line, which may hold a secret.
        problem = ", ".join(part for part in (error.context, error.problem) if part) or "invalid YAML"
        raise YamlProblem(f"YAML syntax error: {problem}", Position.of(mark) if mark else None) from None
    except yaml.YAMLError as error:
        raise YamlProblem(f"YAML error: {type(error).__name__}", None) from None
    except RecursionError:
        raise YamlProblem("the document nests too deeply (a recursive alias?)", None) from None
    finally:
        loader.dispose()
    return YamlDocument(data, values, keys)


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: KeyPath, values: dict, keys: dict) -> Any:
    values.setdefault(path, Position.of(node.start_mark))
    if isinstance(node, yaml.MappingNode):
        _refuse_duplicate_keys(loader, node)
        loader.flatten_mapping(node)  # merge keys (<<: *anchor); explicit keys come last and win
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise YamlProblem("a mapping key must be a plain scalar", Position.of(key_node.start_mark))
            keys[(*path, key)] = Position.of(key_node.start_mark)
            values.pop((*path, key), None)
            mapping[key] = _build(loader, value_node, (*path, key), values, keys)
        return mapping
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, index), values, keys) for index, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _refuse_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # unhashable key: reported when the mapping is built
            continue
        if duplicate:
            raise YamlProblem(f"duplicate key '{key}' in the same mapping", Position.of(key_node.start_mark))
