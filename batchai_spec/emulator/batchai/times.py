"""Time formats of the Batch AI wire: ISO-8601 UTC instants and ISO-8601 durations."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pydantic import TypeAdapter


def iso_millis(epoch_seconds: float) -> str:
    """`2018-06-07T21:16:00.909Z`: how the service wrote resource times."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_seconds(epoch_seconds: float) -> str:
    """`2018-06-07T21:21:42Z`: how the service wrote file times in listOutputFiles."""
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_duration(span: timedelta) -> str:
    """`P7D`, `PT1H30M`: the form the service (and msrest) use for durations."""
    whole_seconds = int(span.total_seconds())
    fraction = span.total_seconds() - whole_seconds
    days, rest = divmod(whole_seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    date_part = f"{days}D" if days else ""
    time_part = "".join(
        f"{value}{unit}" for value, unit in ((hours, "H"), (minutes, "M")) if value
    )
    if seconds or fraction:
        time_part += f"{seconds + fraction:g}S"
    if not date_part and not time_part:
        return "PT0S"
    return "P" + date_part + (f"T{time_part}" if time_part else "")


_DURATION = TypeAdapter(timedelta)


def parse_duration(text: str) -> timedelta:
    """An ISO-8601 duration as stored (`P7D`, `PT1H`)."""
    return _DURATION.validate_python(text)
