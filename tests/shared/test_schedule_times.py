"""A schedule's fire times (shared/core/schedules.py over shared/core/cron.py): what a tick
finds due after an outage, the bound on catching up, and the count of what was missed."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.core import clock, cron
from shared.core.schedules import Schedule, due_fires, upcoming

T0 = dt.datetime(2026, 3, 28, 12, 0, tzinfo=dt.UTC)


def make(cron_text: str = "* * * * *", *, catch_up: int = 3, timezone: str = "UTC") -> Schedule:
    stamp = clock.format(T0)
    s = Schedule(name="s", cron=cron_text, timezone=timezone, catch_up=catch_up, uid="u", created_at=stamp,
                 updated_at=stamp, after=stamp,
                 queue={"symbol": "BTCUSDT", "time_range": "yesterday", "requests": [{"target": "loader-producer"}]})
    s.advance(T0)
    return s


def minutes(n: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def test_on_time_one_fire_time_is_due() -> None:
    s = make()
    assert s.next_at == clock.format(minutes(1))
    assert due_fires(s, minutes(1) + dt.timedelta(seconds=1)) == ([minutes(1)], [], 0)
    assert due_fires(s, minutes(1) - dt.timedelta(seconds=1)) == ([], [], 0)


def test_after_an_outage_the_newest_up_to_the_bound_and_the_rest_counted() -> None:
    s = make(catch_up=2)
    kept, bounds, missed = due_fires(s, minutes(10))
    assert kept == [minutes(9), minutes(10)]
    assert (bounds, missed) == ([minutes(1), minutes(8)], 8)
    s.skip(bounds, missed)
    assert s.missed.count == 8 and s.missed.recent == [
        {"from": clock.format(minutes(1)), "to": clock.format(minutes(8)), "count": 8}]
    s.advance(minutes(10))
    assert due_fires(s, minutes(10)) == ([], [], 0)


def test_a_week_long_outage_is_counted_up_to_the_bound() -> None:
    s = make(catch_up=1)
    kept, _, missed = due_fires(s, minutes(7 * 24 * 60))
    assert kept == [minutes(7 * 24 * 60)]
    assert missed == 10_000 - 1  # counted up to cron.between's bound


def test_a_daily_schedule_in_a_zone_with_a_clock_change() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29: that day does not fire (as robfig/cron)
    s = make("30 2 * * *", timezone="Europe/Berlin")
    assert upcoming(s, T0, 3) == ["2026-03-30T00:30:00.000Z", "2026-03-31T00:30:00.000Z",
                                  "2026-04-01T00:30:00.000Z"]
    s = make("0 1 * * *", timezone="Europe/Berlin")
    assert upcoming(s, T0, 2) == ["2026-03-29T00:00:00.000Z", "2026-03-29T23:00:00.000Z"]


def test_an_expression_that_never_fires_has_no_next_time() -> None:
    s = make("0 0 30 2 *")
    assert s.next_at is None and s.due() is None and upcoming(s, T0) == []


def test_paused_is_never_due() -> None:
    s = make()
    s.paused = True
    assert s.due() is None


@pytest.mark.parametrize("text", ["@daily", "@hourly", "0 9 * * MON-FRI", "*/15 * * * *", "0 0 1 JAN,JUL ?"])
def test_descriptors_and_names_parse(text: str) -> None:
    assert cron.next_after(cron.parse(text), cron.zone("UTC"), T0) is not None


def test_handled_up_to_never_moves_back() -> None:
    """A tick that lost its write to a later tick must not reopen fire times that one handled."""
    s = make()
    s.advance(minutes(5))
    s.advance(minutes(2))
    assert s.after == clock.format(minutes(5)) and s.next_at == clock.format(minutes(6))
