"""Durations as people write and read them: `90s`, `30m`, `2h`, `1h30m`, `1d`, or plain seconds."""

from __future__ import annotations

import re

UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
LONGEST = 365 * 86400
HINT = "give seconds (7200) or a number with a unit s, m, h or d (90s, 30m, 2h, 1h30m)"
_NUMBER = r"\d+(?:\.\d+)?"
_PART = re.compile(rf"({_NUMBER})([dhms])")


def parse_duration(text: str) -> float:
    """`"2h"` -> 7200, `"1h30m"` -> 5400, `"90"` and `"90s"` -> 90, `"1.5d"` -> 129600; ValueError otherwise."""
    value = text.strip().lower()
    if re.fullmatch(_NUMBER, value):
        seconds = float(value)
    elif value and re.fullmatch(rf"(?:{_NUMBER}[dhms])+", value):
        seconds = sum(float(number) * UNITS[unit] for number, unit in _PART.findall(value))
    else:
        raise ValueError(f"{text!r} is not a duration: {HINT}")
    if not seconds <= LONGEST:  # NaN and infinity too; waits take at most this much
        raise ValueError(f"{text!r} is longer than {format_duration(LONGEST)}, the longest wait there is")
    return seconds


def format_duration(seconds: float) -> str:
    """7200 -> "2h", 5400 -> "1h30m", 312 -> "5m12s", 604800 -> "7d", 0 -> "0s", 2.5 -> "2.5s"."""
    rest, parts = float(seconds), []
    for unit, size in UNITS.items():
        if size > 1 and rest >= size:
            count, rest = divmod(rest, size)
            parts.append(f"{count:.0f}{unit}")
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return "".join(parts)


def elapsed(seconds: float) -> str:
    """How long something has been running, to the second: '5m12s', '1h2m5s', '42s'."""
    return format_duration(max(0, int(seconds)))
