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
import heapq
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


MAX_EARLIER_S = 86400.0
"""How much earlier than its claim a Job's own start report is believed (a Job's clock, or a
report of a start the manager saw late); anything earlier is a bad stamp."""
MAX_TOOK_MS = 30 * 86400 * 1000
"""A job's time beyond this is a bad stamp, not history (one would skew the sums for weeks)."""


def _began(job: JobState) -> str | None:
    """When the job took its slot: its claim (launch), or the start it reported if earlier by
    less than MAX_EARLIER_S."""
    if not job.launched_at or not job.started_at:
        return job.launched_at or job.started_at
    try:
        earlier = clock.seconds_between(job.started_at, job.launched_at)
    except (ValueError, OverflowError):
        return job.launched_at
    return job.started_at if 0 < earlier <= MAX_EARLIER_S else job.launched_at


def _took(job: JobState) -> int | None:
    """Milliseconds from launch to finish of a finished job (the time it held a slot); None if
    unknown."""
    began = _began(job)
    if job.status != JobStatus.FINISHED or job.streaming or not began or not job.finished_at:
        return None  # a stream that ended is no measure of a load
    try:
        ms = int(clock.seconds_between(began, job.finished_at) * 1000)
    except (ValueError, OverflowError):
        return None
    return ms if 0 <= ms <= MAX_TOOK_MS else None


def counters(state: QueueState) -> dict[str, int]:
    """The history counters the queue's finished jobs add to."""
    found: dict[str, int] = {}
    for job in state.jobs:
        ms = _took(job)
        if ms is None:
            continue
        name = f"{PREFIX}{_part(job.target)}.{_part(job.type)}."
        for field, n in zip(FIELDS, (1, ms, days(state.range_of(job)), job.records_written),
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
    return None if rate is None else rate.seconds(days(state.range_of(job)))


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
    except (ValueError, OverflowError):
        return expected
    share = progress.fraction(job.status, job.last_loaded_timestamp, state.range_of(job))
    by_history = None if expected is None else max(0.0, expected - elapsed)
    if share <= 0.01:
        return by_history
    by_progress = elapsed * (1 - share) / share
    return by_progress if by_history is None else share * by_progress + (1 - share) * by_history


_CACHE_S = 2.0
_CACHE_MAX = 256
_cache: dict[tuple[object, ...], tuple[float, dict[str, Any]]] = {}


def estimate(state: QueueState, known: Mapping[tuple[str, str], Rate], now: str,
             limits: Mapping[str, int] | None = None) -> dict[str, Any]:
    """{"seconds", "finish_at", "basis", "jobs": {job id: seconds until it ends}, "rates"} of the
    queue's remaining work; seconds None when a remaining job streams (it runs until stopped) or
    has no history and no progress to go by. The same queue, history and limits within
    _CACHE_S answer from a cache: a watched queue is asked on every change."""
    limits = dict(limits or {})
    key = (state.id, state.seq, state.updated_at, tuple(sorted(known.items())), tuple(sorted(limits.items())))
    at = clock.parse(now).timestamp()
    hit = _cache.get(key)
    if hit is not None and at - hit[0] < _CACHE_S:
        return hit[1]
    found = _estimate(state, known, now, limits)
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[key] = (at, found)
    return found


def _estimate(state: QueueState, known: Mapping[tuple[str, str], Rate], now: str,
              limits: Mapping[str, int]) -> dict[str, Any]:
    left = [j for j in state.jobs if j.status not in TERMINAL_JOB]
    used = {f"{t}/{k}": rate.view() for (t, k), rate in sorted(known.items())
            if k != _GLOBAL and any((j.target, j.type) == (t, k) for j in state.jobs)}
    if any(j.streaming for j in left):
        return {"seconds": None, "finish_at": None, "jobs": {}, "rates": used,
                "basis": "streaming jobs run until stopped"}
    rest = {j.index: remaining(j, state, known, now) for j in state.jobs}
    unknown = sorted({f"{j.target}/{j.type}" for j in left if rest[j.index] is None})
    if unknown:
        return {"seconds": None, "finish_at": None, "rates": used,
                "jobs": {j.id: _rounded(rest[j.index]) for j in left if j.status != JobStatus.PENDING},
                "basis": f"no finished {', '.join(unknown)} in the history yet"}
    end = _replay(state, {i: r or 0.0 for i, r in rest.items()}, limits)
    finish = max(end.values(), default=0.0)
    try:
        finish_at: str | None = clock.format(clock.parse(now) + dt.timedelta(seconds=finish))
    except OverflowError:  # past the year 9999
        finish_at = None
    return {"seconds": round(finish, 1), "finish_at": finish_at, "rates": used,
            "jobs": {j.id: _rounded(end.get(j.index)) for j in left},
            "basis": "finished jobs of the same target and type (else target), and the running jobs' progress"}


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _replay(state: QueueState, rest: dict[int, float], limits: Mapping[str, int]) -> dict[int, float]:
    """When each job ends (seconds from now), replaying the queue from now. Event-driven, in
    O((jobs + needs) log jobs): a job becomes ready when its last need is met (a partner
    started, an input ended), ready jobs take free slots lowest index first, as admission does."""
    start: dict[int, float] = {}
    end: dict[int, float] = {}
    busy: dict[str, int] = {}
    ends: list[tuple[float, int]] = []
    unmet: dict[int, int] = {}
    dependents: dict[int, list[tuple[int, bool]]] = {}  # job -> (dependent, waits for its end)
    ready: dict[str, list[int]] = {}
    jobs = state.jobs

    for job in jobs:
        if job.status != JobStatus.PENDING:
            continue
        ready.setdefault(job.target, [])
        unmet[job.index] = 0
        for need in job.needs:
            other = jobs[need.job]
            if other.status in TERMINAL_JOB:
                if other.status not in REACHED[need.until]:
                    unmet[job.index] = -1  # an input ended short: it will be skipped, never run
                    break
                continue
            if other.status != JobStatus.PENDING and need.until != "finished":
                continue  # launched or running already
            unmet[job.index] += 1
            dependents.setdefault(need.job, []).append((job.index, need.until == "finished"))
    for index, n in unmet.items():
        if n == 0:
            heapq.heappush(ready[jobs[index].target], index)

    def met(index: int, ended: bool) -> None:
        for dep, on_end in dependents.get(index, ()):
            if on_end == ended and unmet[dep] > 0:
                unmet[dep] -= 1
                if unmet[dep] == 0:
                    heapq.heappush(ready[jobs[dep].target], dep)

    def begin(index: int, t: float) -> None:
        start[index], end[index] = t, t + rest[index]
        if rest[index] > 0:
            heapq.heappush(ends, (end[index], index))
            for pool in {jobs[index].target, _GLOBAL}:
                busy[pool] = busy.get(pool, 0) + 1
        met(index, ended=False)
        if rest[index] <= 0:
            met(index, ended=True)

    def free(target: str) -> bool:
        return all(busy.get(p, 0) < limits[p] for p in (target, _GLOBAL) if p in limits)

    for job in jobs:
        if job.status in TERMINAL_JOB:
            start[job.index] = end[job.index] = 0.0
        elif job.status != JobStatus.PENDING:
            begin(job.index, 0.0)
    t = 0.0
    while True:
        while True:  # the lowest ready index among targets with a free slot, until none
            heads = [(heap[0], target) for target, heap in ready.items() if heap and free(target)]
            if not heads:
                break
            _, target = min(heads)
            begin(heapq.heappop(ready[target]), t)
        if not ends:
            return end  # what has not started waits for what never comes (it will be skipped)
        t = ends[0][0]
        while ends and ends[0][0] <= t:  # the jobs ending at t free their slots
            _, index = heapq.heappop(ends)
            for pool in {jobs[index].target, _GLOBAL}:
                busy[pool] -= 1
            met(index, ended=True)
