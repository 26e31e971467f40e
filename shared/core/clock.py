"""The one clock: ISO-8601 UTC with milliseconds and a Z, as stored and emitted,
and the arithmetic on such stamps (deadlines, ages, waits)."""

from __future__ import annotations

import datetime as dt


def now() -> str:
    return format(dt.datetime.now(dt.UTC))


def format(at: dt.datetime) -> str:  # noqa: A001 - the inverse of `parse`
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(stamp: str) -> dt.datetime:
    """:raises ValueError: not ISO-8601. A stamp without a zone is taken as UTC."""
    at = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def plus(stamp: str, seconds: float) -> str:
    return format(parse(stamp) + dt.timedelta(seconds=seconds))


def seconds_between(start: str, end: str) -> float:
    return (parse(end) - parse(start)).total_seconds()
