"""List pages with `nextLink`, as Batch AI paged: the SDK GETs `nextLink` verbatim (even after a POST first page),
so the link carries every query parameter of the first request, api-version included, plus the page position."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from batchai_spec.emulator.batchai.errors import invalid
from batchai_spec.emulator.routing import Call

SKIP_TOKEN = "$skiptoken"
MAX_PAGE = 1000


def page(call: Call, items: list[Any]) -> dict[str, Any]:
    size = int_query(call, "maxresults", MAX_PAGE, 1, MAX_PAGE)
    start = int_query(call, SKIP_TOKEN, 0, 0, None)
    body: dict[str, Any] = {"value": items[start:start + size]}
    if start + size < len(items):
        query = {name: value for name, value in call.query.items() if name != SKIP_TOKEN}
        query[SKIP_TOKEN] = str(start + size)
        body["nextLink"] = f"{call.origin}{call.raw_path}?{urlencode(query, safe='$')}"
    return body


def int_query(call: Call, name: str, default: int, low: int, high: int | None) -> int:
    """An integer query parameter within [low, high] (400 naming it otherwise), `default` when absent."""
    text = call.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise invalid(name, "expected an integer") from None
    if value < low or (high is not None and value > high):
        raise invalid(name, f"expected a value from {low}" + (f" to {high}" if high is not None else ""))
    return value
