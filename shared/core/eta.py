"""Expected finish times, from how long finished jobs took.

Every finished job adds to the *history* counters of its (target, type), kept by the store
from the facts like every counter (so over the hot set: the queues of the last
RETENTION_DAYS): jobs, milliseconds from start to finish, days of data and records. From
them a job of that kind is expected to take `ms per day of data × its days`.

A job's time is from its launch (the claim of its slot) to its finish. A running job's
remaining time blends two estimates: from its progress (elapsed × (1 - p) / p,
`shared.core.progress`) and from the history (expected - elapsed), the first weighted by the
progress itself, so early on the history speaks and near the end the job's own pace does.
A queue's finish comes from replaying its remaining jobs in order: each starts when its needs
are met (inputs finished, partners launched) and a slot of `JOB_LIMITS` is free (this
queue's jobs only: other queues' claims are not foreseen), and runs its expected time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.core import clock, progress
from shared.core.fields import parse_time_range
from shared.core.models import JobState, JobStatus, QueueState
from shared.core.naming import counter_part as _part
from shared.core.naming import counter_unpart
from shared.core.statuses import REACHED, TERMINAL_JOB

PREFIX = "h."
FIELDS = ("n", "ms", "d", "r")
_GLOBAL = "*"


def days(time_range: str) -> int:
    start, end = parse_time_range(time_range)
    return (end - start).days + 1


def _began(job: JobState) -> str | None:
    """When the job took its slot: its claim (launch), or the start it reported if earlier."""
    stamps = [s for s in (job.launched_at, job.started_at) if s]
    try:
        return min(stamps, key=clock.parse) if stamps else None
    except ValueError:
        return job.launched_at or job.started_at


def _took(job: JobState) -> int | None:
    """Milliseconds from launch to finish of a finished job (the time it held a slot); None if
    unknown."""
    began = _began(job)
    if job.status != JobStatus.FINISHED or not began or not job.finished_at:
        return None
    try:
        ms = int(clock.seconds_between(began, job.finished_at) * 1000)
    except ValueError:
        return None
    return ms if ms >= 0 else None


def counters(state: QueueState) -> dict[str, int]:
    """The history counters the queue's finished jobs add to."""
    found: dict[str, int] = {}
    for job in state.jobs:
        ms = _took(job)
        if ms is None:
            continue
        name = f"{PREFIX}{_part(job.target)}.{_part(job.type)}."
        for field, n in zip(FIELDS, (1, ms, days(job.time_range or state.time_range), job.records_written),
                            strict=True):
            found[name + field] = found.get(name + field, 0) + n
    return found


def signature(job: JobState) -> tuple[object, ...]:
    """What of a job its history counters are made of, besides its status."""
    if job.status != JobStatus.FINISHED:
        return ()
    return (job.started_at, job.launched_at, job.finished_at, job.records_written)


@dataclass(frozen=True)
class Rate:
    jobs: int
    ms: int
    days: int
    records: int

    def seconds(self, days_: int) -> float:
        return self.ms / 1000 / max(self.days, 1) * days_

    def view(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "seconds_per_job": round(self.ms / 1000 / self.jobs, 3),
                "seconds_per_day_of_data": round(self.ms / 1000 / max(self.days, 1), 4),
                "records_per_second": round(self.records / (self.ms / 1000), 2) if self.ms else None}


def rates(named: Mapping[str, int]) -> dict[tuple[str, str], Rate]:
    """(target, type) -> Rate, from the store's history counters (and (target, "*"): all types)."""
    sums: dict[tuple[str, str], dict[str, int]] = {}
    for name, n in named.items():
        parts = name.split(".")
        if len(parts) != 4 or parts[0] + "." != PREFIX or parts[3] not in FIELDS:
            continue
        target, type_ = counter_unpart(parts[1]), counter_unpart(parts[2])
        for key in ((target, type_), (target, _GLOBAL)):
            sums.setdefault(key, dict.fromkeys(FIELDS, 0))[parts[3]] += n
    return {k: Rate(v["n"], v["ms"], v["d"], v["r"]) for k, v in sums.items() if v["n"] > 0}


def _expected(job: JobState, state: QueueState, known: Mapping[tuple[str, str], Rate]) -> float | None:
    rate = known.get((job.target, job.type)) or known.get((job.target, _GLOBAL))
    return None if rate is None else rate.seconds(days(job.time_range or state.time_range))


def remaining(job: JobState, state: QueueState, known: Mapping[tuple[str, str], Rate], now: str) -> float | None:
    """Seconds until this job ends, expected; 0 if it has; None if nothing tells."""
    if job.status in TERMINAL_JOB:
        return 0.0
    expected = _expected(job, state, known)
    began = _began(job)
    if job.status == JobStatus.PENDING or not began:
        return expected
    try:
        elapsed = max(0.0, clock.seconds_between(began, now))
    except ValueError:
        return expected
    share = progress.fraction(job.status, job.last_loaded_timestamp, job.time_range or state.time_range)
    by_history = None if expected is None else max(0.0, expected - elapsed)
    if share <= 0.01:
        return by_history
    by_progress = elapsed * (1 - share) / share
    return by_progress if by_history is None else share * by_progress + (1 - share) * by_history


def estimate(state: QueueState, known: Mapping[tuple[str, str], Rate], now: str,
             limits: Mapping[str, int] | None = None) -> dict[str, Any]:
    """{"seconds", "finish_at", "basis", "jobs": {job id: seconds}} of the queue's remaining
    work; seconds None when some remaining job has no history and no progress to go by."""
    limits = limits or {}
    rest = {j.index: remaining(j, state, known, now) for j in state.jobs}
    unknown = sorted({f"{j.target}/{j.type}" for j in state.jobs if rest[j.index] is None})
    used = {f"{t}/{k}": rate.view() for (t, k), rate in sorted(known.items())
            if k != _GLOBAL and any((j.target, j.type) == (t, k) for j in state.jobs)}
    jobs = {j.id: _rounded(rest[j.index]) for j in state.jobs if j.status not in TERMINAL_JOB}
    if unknown:
        return {"seconds": None, "finish_at": None, "jobs": jobs,
                "basis": f"no finished {', '.join(unknown)} in the history yet", "rates": used}
    finish = _replay(state, {i: r or 0.0 for i, r in rest.items()}, limits)
    at = clock.format(clock.parse(now) + dt.timedelta(seconds=finish))
    return {"seconds": round(finish, 1), "finish_at": at, "jobs": jobs,
            "basis": "finished jobs of the same kind, and the running jobs' progress", "rates": used}


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _replay(state: QueueState, rest: dict[int, float], limits: Mapping[str, int]) -> float:
    """When the last remaining job ends, replaying the queue from now (0): O(jobs x events)."""
    start: dict[int, float] = {}
    end: dict[int, float] = {}
    pending = []
    for job in state.jobs:
        if job.status == JobStatus.PENDING:
            pending.append(job)
        else:
            start[job.index], end[job.index] = 0.0, rest[job.index]
    t = 0.0
    while pending:
        busy = {_GLOBAL: 0}
        for i, s in start.items():
            if s <= t < end[i]:
                target = state.jobs[i].target
                busy[target] = busy.get(target, 0) + 1
                busy[_GLOBAL] += 1
        started = True
        while started:  # partners launched at t let their co-scheduled jobs start at t too
            started = False
            waiting = []
            for job in pending:
                pools = [p for p in (job.target, _GLOBAL) if p in limits]
                if _met(job, start, end, t, state) and all(busy.get(p, 0) < limits[p] for p in pools):
                    start[job.index], end[job.index] = t, t + rest[job.index]
                    for p in {job.target, _GLOBAL}:
                        busy[p] = busy.get(p, 0) + (rest[job.index] > 0)
                    started = True
                else:
                    waiting.append(job)
            pending = waiting
        later = [e for e in end.values() if e > t]
        if not later:
            break  # what is left waits for something that never comes (it will be skipped)
        t = min(later)
    return max(end.values(), default=0.0)


def _met(job: JobState, start: dict[int, float], end: dict[int, float], t: float, state: QueueState) -> bool:
    for need in job.needs:
        other = state.jobs[need.job]
        if other.status in TERMINAL_JOB and other.status not in REACHED[need.until]:
            return False  # it ended short: this job will be skipped
        if need.until == "finished":
            if end.get(need.job, float("inf")) > t:
                return False
        elif start.get(need.job, float("inf")) > t:
            return False
    return True
