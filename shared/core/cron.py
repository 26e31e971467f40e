"""Cron expressions of schedules, and their fire times in a zone, read as robfig/cron v3 (the
parser and runner of Knative's PingSource) reads them.

Five fields (minute, hour, day of month, month, day of week) or a descriptor (`@yearly`,
`@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`): what PingSource accepts
less a seconds field and `@every` (the schedules' clock ticks each minute). A field is a list of
`*`, `?`, `N`, `A-B`, with an optional `/STEP` (`A/STEP` runs from A to the field's end);
months and week days also by name (`JAN`, `MON`), week days 0-6 from Sunday. As in robfig:
when both day fields are restricted (neither starts with `*` or `?`, a step over 1 counting as
restricted), a day matching either fires; otherwise both must match.

Fire times are wall-clock times of the zone, each at most once, strictly after the time asked
from. Away from a clock change they are robfig's (tests/shared/test_cron_reference.py runs
robfig itself). Around one this module keeps to the wall clock where robfig does not: a time
the change skips does not fire (robfig agrees, but in zones that move by 30 minutes, Lord Howe
and Chatham, it steps whole hours and fires at times the expression does not name); a time the
change repeats fires once, at its first pass (robfig fires at both, so a daily "30 1 * * *"
would load "yesterday" twice). A search looks at most five years ahead.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
               "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_MONTHS = {name: i for i, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_DAYS = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}), ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS))
YEARS_AHEAD = 5
_DIGITS = re.compile(r"[0-9]{1,18}")  # what Go's Atoi takes (robfig refuses an overflow)
_ASCII = re.compile(r"[ -~\t\n\v\f\r]+")


class CronError(ValueError):
    """Not a cron expression PingSource accepts; the message says which part and why."""


@dataclass(frozen=True)
class Cron:
    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: tuple[int, ...]
    weekdays: frozenset[int]
    any_day: bool
    """Either day field starts with `*`/`?`: both must match (else either)."""

    def day_matches(self, day: dt.date) -> bool:
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        return (dom and dow) if self.any_day else (dom or dow)


def _number(text: str, names: dict[str, int], what: str) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not _DIGITS.fullmatch(text):
        raise CronError(f"{what}: {text!r} is not a number{' or a name' if names else ''}")
    return int(text)


def _field(text: str, what: str, low: int, high: int, names: dict[str, int]) -> tuple[set[int], bool]:
    """(values, starred): robfig's getField."""
    values: set[int] = set()
    starred = False
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = 1
        if step_text or part.endswith("/"):
            if not _DIGITS.fullmatch(step_text) or int(step_text) == 0:
                raise CronError(f"{what}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if span in ("*", "?"):
            start, end = low, high
            starred = starred or step == 1
        else:
            first, dash, last = span.partition("-")
            start = _number(first, names, what)
            end = _number(last, names, what) if dash else (high if step_text else start)
        if not low <= start <= end <= high:
            raise CronError(f"{what}: {part!r} is outside {low}-{high}" if start <= end
                            else f"{what}: {part!r} runs backwards")
        values.update(range(start, end + 1, step))
    return values, starred


def parse(text: str) -> Cron:
    """:raises CronError:"""
    if not isinstance(text, str) or not text.strip():
        raise CronError("empty cron expression")
    if not _ASCII.fullmatch(text):
        raise CronError("a cron expression is printable ASCII, its fields separated by white space")
    spec = DESCRIPTORS.get(text.strip(), text.strip())
    if spec.startswith("@"):
        raise CronError(f"unknown descriptor {spec.split()[0]!r} (known: {', '.join(DESCRIPTORS)})")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        raise CronError("give the time zone as `timezone`, not inside the expression")
    parts = spec.split()
    if len(parts) != 5:
        raise CronError(f"expected 5 fields (minute hour day-of-month month day-of-week), found {len(parts)}")
    fields = [_field(part, what, low, high, names)
              for part, (what, low, high, names) in zip(parts, _FIELDS, strict=True)]
    return Cron(text=text.strip(), minutes=tuple(sorted(fields[0][0])), hours=tuple(sorted(fields[1][0])),
                days=frozenset(fields[2][0]), months=tuple(sorted(fields[3][0])), weekdays=frozenset(fields[4][0]),
                any_day=fields[2][1] or fields[4][1])


@functools.lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - {"localtime"}  # the host's: no name of a zone


def zone(name: str) -> ZoneInfo:
    """:raises CronError: not an IANA zone name (of the tz database this process has)."""
    if name not in _zones():
        raise CronError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Berlin or UTC)")
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError) as e:  # ZoneInfoNotFoundError is a KeyError
        raise CronError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Berlin or UTC)") from e


def _local_candidates(cron: Cron, start: dt.datetime) -> Iterator[dt.datetime]:
    """Naive wall-clock times matching `cron`, ascending, from `start` (naive, on a minute)."""
    for year in range(start.year, start.year + YEARS_AHEAD + 1):
        for month in cron.months:
            if (year, month) < (start.year, start.month):
                continue
            for day in range(1, calendar.monthrange(year, month)[1] + 1):
                date = dt.date(year, month, day)
                if date < start.date() or not cron.day_matches(date):
                    continue
                for hour in cron.hours:
                    if (date, hour) < (start.date(), start.hour):
                        continue
                    for minute in cron.minutes:
                        at = dt.datetime(year, month, day, hour, minute)
                        if at >= start:
                            yield at


def next_after(cron: Cron, tz: ZoneInfo, after: dt.datetime) -> dt.datetime | None:
    """The first fire time strictly after `after` (aware), in UTC; None within five years."""
    local = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
    # In the hour a clock change repeats, `after` may be its second pass: the candidates of the
    # first pass fall before it in UTC and are passed over.
    for at in _local_candidates(cron, local):
        utc = at.replace(tzinfo=tz).astimezone(dt.UTC)
        if utc.astimezone(tz).replace(tzinfo=None) != at:
            continue  # skipped by a daylight-saving change
        if utc > after:
            return utc
    return None


def between(cron: Cron, tz: ZoneInfo, after: dt.datetime, until: dt.datetime, *, keep: int,
            count_up_to: int = 10_000) -> tuple[list[dt.datetime], int]:
    """The last `keep` fire times in (after, until], oldest first, and how many fire times
    there are in all (counted up to `count_up_to`; more are reported as that many)."""
    window = dt.timedelta(hours=1)
    while True:  # the newest first: a window back from `until`, doubled until it holds `keep`
        low = max(after, until - window)
        kept = _walk(cron, tz, low, until, limit=None)
        if len(kept) >= keep or low == after:
            break
        window *= 2
    kept = kept[-keep:] if keep else []
    older = _walk(cron, tz, after, kept[0] - dt.timedelta(microseconds=1), limit=count_up_to) if kept else \
        _walk(cron, tz, after, until, limit=count_up_to)
    return kept, min(count_up_to, len(kept) + len(older))


def _walk(cron: Cron, tz: ZoneInfo, after: dt.datetime, until: dt.datetime, *, limit: int | None
          ) -> list[dt.datetime]:
    found: list[dt.datetime] = []
    at = after
    while limit is None or len(found) < limit:
        fire = next_after(cron, tz, at)
        if fire is None or fire > until:
            break
        found.append(fire)
        at = fire
    return found
