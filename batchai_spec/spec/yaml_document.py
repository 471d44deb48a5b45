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


class YamlTooLarge(YamlProblem):
    """A document past a bound (MAX_NODES, MAX_SCALAR_TEXT, a recursive alias): the same for every parser, so it is
    never parsed again by the slower one."""


# What a document may expand to, aliases counted each time they are used (a 2,000-job sweep written out has about
# 34,000 nodes). Without these bounds nine levels of nine aliases (530 bytes) expand to 387 million nodes: minutes and
# gigabytes before anything is reported.
MAX_NODES = 250_000
# The largest spec or var file, and the most text a spec's template may render: a 2,000-job sweep written out is
# 0.55 MiB.
MAX_SPEC_BYTES = 2 * 1024 * 1024
MAX_SCALAR_TEXT = MAX_SPEC_BYTES


class _CountingComposer(yaml.composer.Composer):
    """PyYAML's composer, counting the nodes of the document as if every alias were written out, while composing.

    Aliases stay shared nodes (nothing is expanded): an anchored node's expanded size is recorded once it is
    composed, and each alias adds it to the running totals, which are checked as they grow, so that an alias bomb is
    refused at the alias that passes a bound after composing at most the document's own nodes.
    """

    def __init__(self) -> None:  # after the loader's own __init__, which sets up the parser
        yaml.composer.Composer.__init__(self)
        self._nodes = 0
        self._text = 0
        self._expanded: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, scalar characters) it expands to

    def compose_document(self) -> yaml.Node:
        self._expanded = {}
        return super().compose_document()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)  # the anchored node; an undefined alias is PyYAML's error
            if event.anchor not in self._expanded:
                problem = f"the alias *{event.anchor} refers to a node that contains it (a recursive alias)"
                raise YamlTooLarge(problem, Position.of(event.start_mark))
            nodes, text = self._expanded[event.anchor]
            self._add(nodes, text, event.start_mark, f"the alias *{event.anchor} expands the document past ")
            return node
        event = self.peek_event()
        before = (self._nodes, self._text)
        text = len(event.value) if isinstance(event, yaml.ScalarEvent) else 0
        self._add(1, text, event.start_mark, "the document has more than ")
        node = super().compose_node(parent, index)
        if event.anchor is not None:
            self._expanded[event.anchor] = (self._nodes - before[0], self._text - before[1])
        return node

    def _add(self, nodes: int, text: int, mark: yaml.Mark, problem: str) -> None:
        self._nodes += nodes
        self._text += text
        if self._nodes > MAX_NODES:
            raise YamlTooLarge(f"{problem}{MAX_NODES:,} nodes (keys and values), the limit{_ALIASES}", Position.of(mark))
        if self._text > MAX_SCALAR_TEXT:
            raise YamlTooLarge(f"{problem}{mib(MAX_SCALAR_TEXT)} of values, the limit{_ALIASES}", Position.of(mark))


_ALIASES = " (an alias counts in full each time it is used)"


def mib(size: int, precision: int | None = None) -> str:
    """2097152 -> "2 MiB"; with a precision, 52428800 -> "50.0 MiB"."""
    value = size / 1024 / 1024
    return f"{value:.{precision}f} MiB" if precision is not None else f"{value:g} MiB"


class _SafeLoader(_CountingComposer, yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        yaml.SafeLoader.__init__(self, stream)
        _CountingComposer.__init__(self)


# libyaml parses large documents (a 2,000-job sweep) several times faster than PyYAML's Python parser; its events are
# composed by the counting composer above. Errors are always reported by the Python parser, whose messages and
# positions the spec's error texts are written against.
_FastLoader: type | None = None
if hasattr(yaml, "CSafeLoader"):

    class _FastLoader(_CountingComposer, yaml.CSafeLoader):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.CSafeLoader.__init__(self, stream)
            _CountingComposer.__init__(self)


def parse_yaml(text: str) -> YamlDocument:
    """The document's data and positions; a YamlProblem for bad YAML and for documents past MAX_NODES or
    MAX_SCALAR_TEXT (aliases counted each time they are used)."""
    if _FastLoader is not None:
        try:
            return _parse_with(_FastLoader, text)
        except YamlTooLarge:
            raise
        except YamlProblem:
            pass  # reported by the Python parser, in the words the spec's error texts expect
    return _parse_with(_SafeLoader, text)


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
        raise YamlProblem("the document nests too deeply", None) from None
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
