"""Relative time ranges (shared/core/relative.py), resolved on a fire time's date in a zone."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.core import relative
from shared.core.fields import parse_time_range

DAY = dt.date(2024, 3, 1)  # a leap year's March 1: yesterday is February 29


@pytest.mark.parametrize(("text", "expected"), [
    ("today", "2024-03-01:2024-03-01"),
    ("yesterday", "2024-02-29:2024-02-29"),
    ("last 1 day", "2024-02-29:2024-02-29"),
    ("last 7 days", "2024-02-23:2024-02-29"),
    ("Last  30   Days", "2024-01-31:2024-02-29"),
    ("this month", "2024-03-01:2024-03-01"),
    ("previous month", "2024-02-01:2024-02-29"),
    ("this year", "2024-01-01:2024-03-01"),
    ("previous year", "2023-01-01:2023-12-31"),
    ("2020-01-01:2020-01-31", "2020-01-01:2020-01-31"),
])
def test_each_phrase(text: str, expected: str) -> None:
    assert relative.resolve(text, DAY) == expected
    parse_time_range(expected)  # every answer is a valid range, both ends included


def test_previous_month_in_january_is_last_december() -> None:
    assert relative.resolve("previous month", dt.date(2025, 1, 15)) == "2024-12-01:2024-12-31"


@pytest.mark.parametrize("text", ["last week", "last 0 days", "last 3661 days", "tomorrow", "", "yesterday 2",
                                  "2024-02-30:2024-03-01", "2024-03-02:2024-03-01"])
def test_refused(text: str) -> None:
    with pytest.raises(ValueError):
        relative.check(text)


def test_not_a_string_is_refused() -> None:
    with pytest.raises(ValueError, match="string"):
        relative.check(None)


def test_the_date_is_the_fire_times_in_the_zone() -> None:
    fire = dt.datetime(2024, 3, 1, 23, 30, tzinfo=dt.UTC)
    assert relative.on("yesterday", fire, dt.UTC) == "2024-02-29:2024-02-29"
    from zoneinfo import ZoneInfo

    # 23:30 UTC is already March 2 in Tokyo, and still March 1 in Los Angeles
    assert relative.on("yesterday", fire, ZoneInfo("Asia/Tokyo")) == "2024-03-01:2024-03-01"
    assert relative.on("today", fire, ZoneInfo("America/Los_Angeles")) == "2024-03-01:2024-03-01"


def test_ranges_before_year_one_are_refused_not_crashed() -> None:
    with pytest.raises(ValueError, match="before year 1|year"):
        relative.resolve("last 30 days", dt.date(1, 1, 5))
    with pytest.raises(ValueError):
        relative.resolve("previous year", dt.date(1, 6, 1))
