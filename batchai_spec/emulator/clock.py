"""Time in the formats the Azure wire protocols use."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import formatdate


def now() -> float:
    return time.time()


def rfc1123(timestamp: float) -> str:
    """HTTP dates (Last-Modified): the storage SDK's deserializer crashes on anything else."""
    return formatdate(timestamp, usegmt=True)


def iso8601(timestamp: float) -> str:
    """Timestamps inside ARM JSON and Files listings, with the 7 fraction digits Azure sends."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def parse_sas_time(text: str) -> float:
    """SAS `st`/`se` values: `2026-11-26T04:14:24Z` (the SDK also allows a date only)."""
    for pattern in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    raise ValueError(f"not a SAS time: {text!r}")
