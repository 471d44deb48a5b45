"""OData query options of the data plane: `$filter`, `$select`, `maxresults` and `$skiptoken` paging.

Lists answer `{"odata.metadata", "value": [...], "odata.nextLink"?}`; the next link repeats the request's query
options (the SDK keeps them and overwrites only `api-version`) with a `$skiptoken` naming the last entity served.
`$filter` understands comparisons (`eq ne gt ge lt le`) of a property path (`state`, `executionInfo/result`) with a
string, number, boolean or `datetime'...'` literal, `startswith(path, 'x')`, `and`, `or`, `not` and parentheses;
strings compare without case (the service's enum values do). Anything else is 400 InvalidQueryParameterValue.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from batchai_spec.emulator.batch.dataplane.wire import Request, invalid_query

MAX_RESULTS = 1000
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<datetime>datetime'[^']*')|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<punct>[(),])|(?P<word>[A-Za-z_$][\w/.$]*))"
)
_COMPARISONS = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
}
Predicate = Callable[[dict[str, Any]], bool]


def select(entity: dict[str, Any], request: Request) -> dict[str, Any]:
    """`$select=a, b`: only those top-level properties (recorded: `$select=allocationState, targetLowPriorityNodes`)."""
    text = request.query.get("$select")
    if not text:
        return entity
    wanted = {name.strip().lower() for name in text.split(",") if name.strip()}
    return {key: value for key, value in entity.items() if key.lower() in wanted}


def page(request: Request, items: Iterable[dict[str, Any]], metadata: str) -> Response:
    """Filter, page and select `items` (already in the service's order)."""
    predicate = parse_filter(request.query.get("$filter", ""))
    limit = _max_results(request)
    start = _skip(request)
    matching = [item for item in items if predicate(item)]
    served = matching[start:start + limit]
    body: dict[str, Any] = {"value": [select(item, request) for item in served]}
    if start + limit < len(matching):
        body["odata.nextLink"] = _next_link(request, start + limit)
    return request.json(body, metadata)


def _max_results(request: Request) -> int:
    text = request.query.get("maxresults")
    if text is None or text == "":
        return MAX_RESULTS
    if not text.isdigit() or not 1 <= int(text) <= MAX_RESULTS:
        raise invalid_query("maxresults", text, f"maxresults must be between 1 and {MAX_RESULTS}.")
    return int(text)


def _skip(request: Request) -> int:
    token = request.query.get("$skiptoken")
    if not token:
        return 0
    if not token.startswith("next-") or not token[5:].isdigit():
        raise invalid_query("$skiptoken", token, "The continuation token is not one this service issued.")
    return int(token[5:])


def _next_link(request: Request, offset: int) -> str:
    options = [(name, value) for name, value in request.query.items() if name not in ("$skiptoken",)]
    options.append(("$skiptoken", f"next-{offset}"))
    query = "&".join(f"{quote(name, safe='$')}={quote(value, safe='')}" for name, value in options)
    return f"{request.call.origin}{request.call.raw_path}?{query}"


def parse_filter(text: str) -> Predicate:
    if not text.strip():
        return lambda entity: True
    tokens = _tokenize(text)
    parser = _Parser(tokens, text)
    predicate = parser.expression()
    if parser.position != len(tokens):
        raise invalid_query("$filter", text, "The filter expression could not be parsed.")
    return predicate


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise invalid_query("$filter", text, "The filter expression could not be parsed.")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


# Parentheses and `not` nested deeper than this are refused (400), never a RecursionError (500).
MAX_FILTER_DEPTH = 64


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], text: str):
        self.tokens = tokens
        self.text = text
        self.position = 0
        self.depth = 0

    def fail(self) -> Exception:
        return invalid_query("$filter", self.text, "The filter expression could not be parsed.")

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if not token[0]:
            raise self.fail()
        self.position += 1
        return token

    def expect(self, value: str) -> None:
        if self.take()[1].lower() != value:
            raise self.fail()

    def expression(self) -> Predicate:
        # A flat list, not a chain of closures: a long `a or b or ...` must not recurse when it is evaluated.
        terms = [self.conjunction()]
        while self.peek()[0] == "word" and self.peek()[1].lower() == "or":
            self.take()
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else lambda entity: any(term(entity) for term in terms)

    def conjunction(self) -> Predicate:
        terms = [self.unary()]
        while self.peek()[0] == "word" and self.peek()[1].lower() == "and":
            self.take()
            terms.append(self.unary())
        return terms[0] if len(terms) == 1 else lambda entity: all(term(entity) for term in terms)

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_FILTER_DEPTH:
            raise invalid_query("$filter", self.text,
                                f"The filter expression nests parentheses or 'not' deeper than {MAX_FILTER_DEPTH}.")

    def unary(self) -> Predicate:
        kind, value = self.peek()
        if kind == "word" and value.lower() == "not":
            self.take()
            self.nest()
            inner = self.unary()
            self.depth -= 1
            return lambda entity: not inner(entity)
        if kind == "punct" and value == "(":
            self.take()
            self.nest()
            inner = self.expression()
            self.expect(")")
            self.depth -= 1
            return inner
        if kind == "word" and value.lower() == "startswith":
            self.take()
            self.expect("(")
            path = self.path()
            self.expect(",")
            prefix = self.literal()
            self.expect(")")
            return lambda entity: isinstance(_value(entity, path), str) and str(
                _value(entity, path)).lower().startswith(str(prefix).lower())
        path = self.path()
        operator = self.take()[1].lower()
        if operator not in _COMPARISONS:
            raise self.fail()
        literal = self.literal()
        compare = _COMPARISONS[operator]

        def predicate(entity: dict[str, Any]) -> bool:
            actual = _value(entity, path)
            if actual is None:
                return operator == "ne" and literal is not None
            if isinstance(actual, str) and isinstance(literal, str):
                return compare(actual.lower(), literal.lower())
            try:
                return compare(actual, literal)
            except TypeError:
                return False

        return predicate

    def path(self) -> list[str]:
        kind, value = self.take()
        if kind != "word":
            raise self.fail()
        return value.split("/")

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "string":
            return value[1:-1].replace("''", "'")
        if kind == "datetime":
            return value[len("datetime'"):-1]
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "word" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if kind == "word" and value.lower() == "null":
            return None
        raise self.fail()


def _value(entity: dict[str, Any], path: list[str]) -> Any:
    current: Any = entity
    for name in path:
        if not isinstance(current, dict):
            return None
        lowered = {key.lower(): value for key, value in current.items()}
        current = lowered.get(name.lower())
    return current
