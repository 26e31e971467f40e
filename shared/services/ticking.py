"""The schedules' tick (shared/services/schedules.py): one PingSource (eventing/schedules.yaml)
fires each minute, and the start function starts every schedule whose fire time has come.

A fire time's queue is started with the idempotency key of (schedule, creation, fire time),
so however often a tick arrives, or two instances handle it at once, it starts one queue. A
schedule's record then moves past that fire time (compare-and-set); a tick that lost that race
reads it again, still records the runs it started, and finds nothing left to start.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from shared.adapters import metrics
from shared.adapters.state.base import RevisionConflict
from shared.core import clock
from shared.core.errors import BackendUnavailable, ClientError, NotFound
from shared.core.facts import ACTIVE
from shared.core.models import QueueStart
from shared.core.schedules import PREFIX, Run, Schedule, due_fires, key, payload
from shared.services import groups
from shared.services.schedules import MAX_ATTEMPTS, PAGE, Unreadable, load, now_utc

log = logging.getLogger("streamforge.queue_manager")

SKEW = dt.timedelta(seconds=5)
"""A fire time this close ahead is due: a PingSource adapter whose clock runs ahead of ours
must not push its fire time to the next tick."""
BUDGET_S = 40.0
"""One tick stops starting after this long (the next tick goes on): a PingSource fires each
minute."""
GROUP_ACTIVE = ("running", "pending", "stopping")


@dataclass
class Tick:
    evaluated: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)
    missed: int = 0
    unavailable: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    left: bool = False

    def view(self, took_ms: float) -> dict[str, Any]:
        return {"evaluated": self.evaluated, "runs": self.runs, "missed": self.missed,
                "left_for_next_tick": self.left, "took_ms": round(took_ms, 1),
                **({"unavailable": self.unavailable} if self.unavailable else {}),
                **({"unreadable": self.unreadable} if self.unreadable else {})}


def tick(service: Any) -> dict[str, Any]:
    """Start what is due: every schedule whose next fire time has come, oldest due first."""
    began = time.perf_counter()
    deadline = began + BUDGET_S
    now = now_utc()
    result = Tick()
    done: set[str] = set()
    stuck = 0  # tried and still due (unreadable, or its store write failed): not asked for again
    while time.perf_counter() < deadline:
        due = [r for r in service.store.records.due(PREFIX, clock.format(now + SKEW), PAGE + stuck)
               if r[0] not in done]
        if not due:
            break
        for record_key, _, _ in due:
            if time.perf_counter() >= deadline:
                result.left = True
                break
            done.add(record_key)
            try:
                if not _evaluate(service, record_key.removeprefix(PREFIX), now + SKEW, deadline, result):
                    result.left = True
            except BackendUnavailable as e:
                result.unavailable.append(f"{record_key}: {e.message}")
                stuck += 1
            except Unreadable as e:
                log.error("schedule tick: %s", e.message)
                metrics.SCHEDULE_TICKS.labels("failed").inc()
                result.unreadable.append(record_key.removeprefix(PREFIX))
                stuck += 1
            except NotFound:  # deleted meanwhile
                continue
    if not result.left and time.perf_counter() >= deadline:  # out of time: is anything still due?
        result.left = any(r[0] not in done for r in
                          service.store.records.due(PREFIX, clock.format(now + SKEW), PAGE + stuck))
    if result.unavailable and not result.runs:
        raise BackendUnavailable("state", "; ".join(result.unavailable[:3]))
    return result.view((time.perf_counter() - began) * 1000)


def _evaluate(service: Any, name: str, until: dt.datetime, deadline: float, result: Tick) -> bool:
    """Start the schedule's due fire times and record them; False when the deadline cut it short
    (the fire times not started stay due). The runs started are kept across attempts: a write
    that lost to a pause, or to another tick, still records them."""
    started: dict[str, Run] = {}
    for _ in range(MAX_ATTEMPTS):
        schedule, rev = load(service, name)
        fires, bounds, missed = ([], [], 0) if schedule.paused else due_fires(schedule, until)
        whole = True
        for fire in fires:
            stamp = clock.format(fire)
            if stamp not in started:
                if time.perf_counter() >= deadline:
                    whole = False
                    break
                started[stamp] = _run(service, schedule, fire, _latest(schedule, started))
        taken = [f for f in fires if clock.format(f) in started]
        fresh = _merge(schedule, started)
        # The missed fire times come before the first one started: counted once it is.
        counted = 0 if schedule.paused or not (taken or whole) else missed
        if not schedule.paused:
            schedule.skip(bounds, counted)
            if taken:
                schedule.advance(max(taken[-1], until) if whole else taken[-1])
            elif whole:
                schedule.advance(until)  # due by `next_at` with nothing in (after, until]: a stale entry
        schedule.updated_at = clock.now()
        try:
            service.store.records.put(key(name), schedule.model_dump_json(exclude_none=True), rev=rev,
                                      due=schedule.due())
        except RevisionConflict:
            continue  # moved meanwhile (a pause, another tick): read again, keeping what was started
        result.evaluated += 1
        if counted:
            result.missed += counted
            metrics.SCHEDULE_TICKS.labels("missed").inc(counted)
            log.warning("schedule %s: %d fire times missed past its catch-up bound of %d",
                        name, counted, schedule.catch_up)
        for run in fresh:
            metrics.SCHEDULE_TICKS.labels(run.outcome).inc()
            if run.replaced:
                metrics.SCHEDULE_TICKS.labels("replaced").inc()
            result.runs.append({"schedule": name, **run.model_dump(exclude_none=True)})
        return whole
    raise BackendUnavailable("state", f"schedule {name!r} kept changing under the tick")


def _merge(schedule: Schedule, started: dict[str, Run]) -> list[Run]:
    """Record the runs this tick started that the schedule does not hold yet, or holds without
    the queue this tick started (another instance recorded it forbidden); the ones added."""
    held = {run.fire: i for i, run in enumerate(schedule.runs)}
    added = []
    for stamp, run in sorted(started.items()):
        at = held.get(stamp)
        if at is None:
            schedule.record(run)
            added.append(run)
        elif (run.queue_id or run.group_id) and not (schedule.runs[at].queue_id or schedule.runs[at].group_id):
            schedule.runs[at] = run
            added.append(run)
    return added


def _active(service: Any, run: Run) -> bool:
    """Whether a run's queue, or any queue of its group, is still active."""
    try:
        if run.group_id:
            return groups.status(service, run.group_id)["status"] in GROUP_ACTIVE
        return run.queue_id is not None and service.get(run.queue_id).status in ACTIVE
    except NotFound:
        return False


def _stop(service: Any, run: Run, reason: str) -> None:
    if run.group_id:
        groups.stop(service, run.group_id, reason=reason)
    elif run.queue_id:
        service.stop(run.queue_id, reason=reason)


def _started_before(service: Any, body: dict[str, Any], key: str) -> bool:
    """Whether this fire time's queue (or group) exists: a tick that started it and lost the
    race to record it is repeated, and must not be taken for a second run."""
    if groups.is_group(body):
        return service.store.records.get(groups.PREFIX + groups.group_id_for(key)) is not None
    return service.store.get(service.queue_id_for(key)) is not None


def _latest(schedule: Schedule, started: dict[str, Run]) -> Run | None:
    """The run before the next one: the last this tick started (catching up), else the record's."""
    mine = [run for _, run in sorted(started.items()) if run.queue_id or run.group_id]
    return mine[-1] if mine else schedule.last_queue()


def _run(service: Any, schedule: Schedule, fire: dt.datetime, previous: Run | None) -> Run:
    """Start the run of one fire time, under the schedule's concurrency policy (`previous`: the
    run before it)."""
    stamp = clock.format(fire)
    body = payload(schedule, fire)
    ikey = schedule.idempotency_key(stamp)
    run = Run(fire=stamp, outcome="started", at=clock.now(), time_range=body["time_range"])
    if previous is not None and schedule.concurrency != "allow" and not _started_before(service, body, ikey) \
            and _active(service, previous):
        held = previous.group_id or previous.queue_id
        if schedule.concurrency == "forbid":
            run.outcome = "forbidden"
            run.message = f"the previous run's {'group' if previous.group_id else 'queue'} {held} is still active"
            return run
        _stop(service, previous, f"replaced by schedule {schedule.name}'s run of {stamp}")
        run.replaced = held
    try:
        if groups.is_group(body):
            started = groups.start(service, body, idempotency_key=ikey)
            run.group_id = started["group_id"]
            run.outcome = "started" if started.get("created", True) else "replayed"
            return run
        result = service.start(QueueStart.parse(body), idempotency_key=ikey)
    except ValidationError as e:
        run.outcome, run.message = "failed", f"queue: {e.errors()[0]['msg']}"
        return run
    except ClientError as e:
        run.outcome, run.message = "failed", e.message
        return run
    if result.state is None:
        run.outcome = "covered"
        run.message = "other queues cover every period"
        return run
    run.queue_id = result.state.id
    run.outcome = "started" if result.created else "replayed"
    seconds = service.eta(result.state).get("seconds")
    run.estimate_seconds = None if seconds is None else float(seconds)
    return run


