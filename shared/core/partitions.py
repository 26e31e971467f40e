"""Partitioned requests: a range cut into calendar months or days, one Job per period.

A request with `partition: month` (or the queue's default) over 2020-01-01:2024-12-31 becomes
60 *units*, one per month, each with its own sub-range (the month, clipped to the queue's
range) and period name, the name the seed gives the data: `2024_06` for a month, `2024_06_03`
for a day (`naming.period`). A unit's parameters have `{period}` replaced by its period, so
`"collection_inputs": ["btc_candles_5m_{period}"]` reads that period's collection and the
lineage pairs each period's consumers with the same period's producers. An unpartitioned
request is one unit over the whole range (its `{period}` is the range's name).

Units are ordered oldest period first (`newest_first` reverses it), unpartitioned ones first:
within a queue that is the order in which ready jobs take the slots of `JOB_LIMITS`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from shared.core import naming
from shared.core.errors import InvalidInput
from shared.core.fields import PERIOD, is_streaming, parse_time_range
from shared.core.models import JobRequest, QueueStart

MAX_UNITS = 1000
"""Jobs per queue: each report rewrites the queue document, which grows with its jobs."""


@dataclass(frozen=True)
class Unit:
    """One Job of a queue: a request, for one period or for the whole range."""

    request: int
    spec: JobRequest
    period: str | None
    time_range: str

    @property
    def dataset_period(self) -> str:
        """The period part of the names of what it writes (`naming`)."""
        if self.period is not None:
            return self.period
        start, end = parse_time_range(self.time_range)
        return naming.period(start, end)


def month_end(day: dt.date) -> dt.date:
    """The last day of the day's month (December 9999 included)."""
    if day.month == 12:
        return day.replace(day=31)
    return day.replace(month=day.month + 1, day=1) - dt.timedelta(days=1)


def periods(start: dt.date, end: dt.date, partition: str) -> list[tuple[str, dt.date, dt.date]]:
    """(name, first day, last day) of each period of [start, end], oldest first, clipped."""
    found = []
    day = start
    while True:
        last = day if partition == "day" else min(end, month_end(day))
        found.append((day.strftime("%Y_%m_%d" if partition == "day" else "%Y_%m"), day, last))
        if last >= end:
            return found
        day = last + dt.timedelta(days=1)


def count_periods(start: dt.date, end: dt.date, partition: str) -> int:
    """How many periods `periods` would give, without making them."""
    if partition == "day":
        return (end - start).days + 1
    return (end.year - start.year) * 12 + end.month - start.month + 1


def partition_of(command: QueueStart, request: JobRequest) -> str | None:
    """The request's own partition, else the queue's (which a streaming request does not take:
    it runs until stopped)."""
    chosen = request.partition or (None if is_streaming(request.type) else command.partition)
    return None if chosen in (None, "none") else chosen


def substitute(params: dict[str, Any], period: str) -> dict[str, Any]:
    def one(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(PERIOD, period)
        if isinstance(value, list):
            return [one(v) for v in value]
        return value

    return {k: one(v) for k, v in params.items()}


def _unit(index: int, request: JobRequest, period: str | None, time_range: str, name: str) -> Unit:
    params = request.params
    if any(PERIOD in str(v) for v in params.values()):
        fields = request.model_dump(exclude=set(params), exclude_none=True)
        request = JobRequest.model_validate({**fields, **substitute(params, name)})
    return Unit(index, request, period, time_range)


def units(command: QueueStart) -> list[Unit]:
    """Every Job the queue's requests make, in launch order.

    :raises InvalidInput: more than MAX_UNITS of them.
    """
    start, end = parse_time_range(command.time_range)
    whole: list[Unit] = []
    cut: dict[str, list[tuple[str, dt.date, dt.date]]] = {}
    by_period: dict[tuple[dt.date, str], list[Unit]] = {}
    count = 0
    for index, request in enumerate(command.requests):
        partition = partition_of(command, request)
        if partition is None:
            whole.append(_unit(index, request, None, command.time_range, naming.period(start, end)))
            count += 1
            continue
        many = count_periods(start, end, partition)  # counted before any is made: a range may hold millions
        count += many
        if count > MAX_UNITS:
            raise InvalidInput(
                f"the queue would run {count}+ Jobs, more than {MAX_UNITS}: split the range into several "
                "queues or partition by month", details=[{"loc": ["requests", index, "partition"],
                                                         "msg": f"{many} periods of a {partition}"}])
        found = cut.setdefault(partition, periods(start, end, partition))
        for name, first, last in found:
            by_period.setdefault((first, name), []).append(
                _unit(index, request, name, f"{first.isoformat()}:{last.isoformat()}", name))
    if count > MAX_UNITS:
        raise InvalidInput(f"the queue would run {count} Jobs, more than {MAX_UNITS}: split the range into "
                           "several queues or partition by month",
                           details=[{"loc": ["requests"], "msg": f"{count} Jobs"}])
    _same_partition(command)
    ordered = sorted(by_period, reverse=command.newest_first)
    return whole + [u for key in ordered for u in by_period[key]]


def _same_partition(command: QueueStart) -> None:
    """A loader and the connector of its type must cut the range alike: the connector reads the
    topic of the loader's period.

    :raises InvalidInput:
    """
    seen: dict[str, tuple[int, str | None]] = {}
    for index, request in enumerate(command.requests):
        if request.target not in ("loader-producer", "arango-connector"):
            continue
        mine = partition_of(command, request)
        first = seen.setdefault(request.type, (index, mine))
        if first[1] != mine:
            raise InvalidInput(
                f"requests {first[0]} and {index} ({request.type}) are partitioned differently "
                f"({first[1] or 'none'} and {mine or 'none'}): a loader and its connector must share one partition",
                details=[{"loc": ["requests", index, "partition"],
                          "msg": f"{first[1] or 'none'} as request {first[0]}"}])


def partitioned(command: QueueStart) -> bool:
    return any(partition_of(command, r) for r in command.requests)
