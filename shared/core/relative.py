"""Time ranges relative to a schedule's fire time, resolved to `YYYY-MM-DD:YYYY-MM-DD` (both
ends included, as every time range) on the fire time's date in the schedule's zone.

- `today`, `yesterday`
- `last N days`: the N whole days before today (`last 1 day` is yesterday)
- `this month`: from the 1st to today; `previous month`: the whole month before
- `this year`: from January 1 to today; `previous year`: the whole year before
- an absolute range stays as it is
"""

from __future__ import annotations

import datetime as dt
import re

from shared.core.fields import TIME_RANGE_RE, parse_time_range

MAX_DAYS = 3660
_LAST = re.compile(r"^last (\d{1,4}) days?$")
NAMES = ("today", "yesterday", "last N days", "this month", "previous month", "this year", "previous year")


def _span(first: dt.date, last: dt.date) -> str:
    return f"{first.isoformat()}:{last.isoformat()}"


def _month_before(day: dt.date) -> tuple[dt.date, dt.date]:
    last = day.replace(day=1) - dt.timedelta(days=1)
    return last.replace(day=1), last


def check(text: object) -> str:
    """The range as given, if it resolves on any day.

    :raises ValueError: neither relative (`NAMES`) nor an absolute range
    """
    if not isinstance(text, str):
        raise ValueError("time_range must be a string")
    resolve(text, dt.date(2000, 3, 1))
    return text


def resolve(text: str, today: dt.date) -> str:
    """:raises ValueError: neither a relative range nor an absolute one."""
    phrase = " ".join(text.lower().split())
    if TIME_RANGE_RE.fullmatch(text):
        parse_time_range(text)
        return text
    try:
        if phrase == "today":
            return _span(today, today)
        if phrase == "yesterday":
            day = today - dt.timedelta(days=1)
            return _span(day, day)
        if (last := _LAST.fullmatch(phrase)) is not None:
            n = int(last.group(1))
            if not 1 <= n <= MAX_DAYS:
                raise ValueError(f"last N days: N must be 1-{MAX_DAYS}, not {n}")
            return _span(today - dt.timedelta(days=n), today - dt.timedelta(days=1))
        if phrase == "this month":
            return _span(today.replace(day=1), today)
        if phrase == "previous month":
            return _span(*_month_before(today))
        if phrase == "this year":
            return _span(today.replace(month=1, day=1), today)
        if phrase == "previous year":
            return _span(dt.date(today.year - 1, 1, 1), dt.date(today.year - 1, 12, 31))
    except OverflowError as e:  # the first days of year 1
        raise ValueError(f"time_range {text!r} falls before year 1 on {today}") from e
    raise ValueError(f"time_range {text!r} is neither YYYY-MM-DD:YYYY-MM-DD nor relative "
                     f"({', '.join(NAMES)})")


def on(text: str, fire: dt.datetime, zone: dt.tzinfo) -> str:
    """The range for a fire time (aware), on its date in `zone`."""
    return resolve(text, fire.astimezone(zone).date())
