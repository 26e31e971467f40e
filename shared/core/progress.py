"""Data-aware progress: how far each job is through the queue's time range.

A finished job is 1; a pending or skipped one 0 (a skipped job loaded nothing); a
running one the share of its time range (a partitioned job's: its period's) up to its
`last_loaded_timestamp` when it reports one. The queue's progress is the mean over its jobs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared.core import clock
from shared.core.fields import parse_time_range
from shared.core.models import JobStatus, QueueState

DONE = (JobStatus.FINISHED,)


def _instant(text: str) -> dt.datetime | None:
    try:
        return clock.parse(text)
    except ValueError:
        try:  # epoch seconds or milliseconds
            return dt.datetime.fromtimestamp(float(text) / (1000 if float(text) > 1e11 else 1), dt.UTC)
        except (ValueError, OverflowError, OSError):  # not a number, or no time this machine can hold
            return None


def fraction(status: JobStatus, last_loaded: str | None, time_range: str) -> float:
    if status in DONE:
        return 1.0
    if status not in (JobStatus.RUNNING, JobStatus.STOPPED, JobStatus.ERROR) or not last_loaded:
        return 0.0
    at = _instant(last_loaded)
    if at is None:
        return 0.0
    start, end = parse_time_range(time_range)
    lo = dt.datetime.combine(start, dt.time(), dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
    return round(min(1.0, max(0.0, (at - lo) / (hi - lo))), 4)


def annotate(state: QueueState, view: dict[str, Any]) -> dict[str, Any]:
    shares = []
    for job, shown in zip(state.jobs, view["jobs"], strict=True):
        share = fraction(job.status, job.last_loaded_timestamp, state.range_of(job))
        shown["progress"] = share
        shares.append(share)
    view["progress"] = round(sum(shares) / len(shares), 4) if shares else 0.0
    return view


def view(state: QueueState) -> dict[str, Any]:
    """What the API shows of a queue: everything but the bookkeeping, with progress."""
    shown = state.model_dump(mode="json", exclude={"outbox", "request_hash", "history", "cleanup"})
    return annotate(state, shown)
