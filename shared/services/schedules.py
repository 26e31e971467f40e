"""Schedules (`shared.core.schedules`): set up, read, paused and deleted; the tick that starts
their queues is shared/services/ticking.py."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import ValidationError

from shared.adapters.state import update_record
from shared.adapters.state.base import AlreadyExists
from shared.core import clock, cron
from shared.core.errors import Conflict, InvalidInput, NotFound
from shared.core.facts import ACTIVE
from shared.core.models import QueueStart
from shared.core.schedules import PREFIX, Run, Schedule, ScheduleSpec, key, payload, upcoming
from shared.services import groups

PAGE = 200
MAX_ATTEMPTS = 20
"""A tick's reads of the due schedules, and its compare-and-set attempts on one schedule."""


def now_utc() -> dt.datetime:
    return clock.parse(clock.now())


def _template(service: Any, spec: ScheduleSpec, at: dt.datetime) -> None:
    """The queue must be a valid start at any fire time: checked on today's range.

    :raises InvalidInput:
    """
    body = payload(spec, at)
    try:
        if groups.is_group(body):
            groups.parse(body)
        else:
            QueueStart.parse(body)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'queue'}: {err['msg']}"
                             for err in e.errors()[:5])
        raise InvalidInput(f"queue: {problems}") from None


def create(service: Any, spec: ScheduleSpec) -> tuple[Schedule, bool]:
    """(the schedule, created). The same spec again answers the stored one; another spec under
    a taken name is a 409."""
    records = service.store.records
    stamp = clock.now()
    _template(service, spec, clock.parse(stamp))
    schedule = Schedule(**spec.model_dump(), uid=uuid.uuid4().hex[:12], created_at=stamp, updated_at=stamp,
                        after=stamp)
    schedule.advance(clock.parse(stamp))
    if schedule.next_at is None:
        raise InvalidInput(f"cron {spec.cron!r} never fires in the next {cron.YEARS_AHEAD} years")
    try:
        records.put(key(spec.name), schedule.model_dump_json(exclude_none=True), rev=None, due=schedule.due())
    except AlreadyExists:
        stored, _ = load(service, spec.name)
        same = set(ScheduleSpec.model_fields) - {"paused"}  # paused since: still the same schedule
        if stored.model_dump(include=same) != spec.model_dump(include=same):
            raise Conflict(f"schedule {spec.name!r} exists with another spec: delete it first") from None
        return stored, False
    return schedule, True


class Unreadable(Conflict):
    """A stored schedule this version cannot read (written by a later one, or damaged)."""


def _parse(name: str, doc: str) -> Schedule:
    try:
        return Schedule.model_validate_json(doc)
    except ValueError as e:  # pydantic's ValidationError, a zone gone from tzdata
        raise Unreadable(f"schedule {name!r} is stored in a form this version cannot read "
                         f"({str(e).splitlines()[0]}): delete it and create it again") from None


def load(service: Any, name: str) -> tuple[Schedule, str]:
    """:raises NotFound: :raises Unreadable:"""
    found = service.store.records.get(key(name))
    if found is None:
        raise NotFound(f"schedule {name!r} not found")
    return _parse(name, found[0]), found[1]


def view(service: Any, schedule: Schedule, *, runs: int = 20) -> dict[str, Any]:
    """What GET /schedules/{name} shows: the spec, the next fire times, the last runs (newest
    first) with their queues' statuses now, and what was missed."""
    now = now_utc()
    shown = []
    for run in reversed(schedule.runs[-runs:]):
        item = run.model_dump(exclude_none=True)
        if run.queue_id:
            try:
                item["queue_status"] = service.get(run.queue_id).status.value
            except NotFound:
                item["queue_status"] = None
        shown.append(item)
    return {**schedule.model_dump(include=set(ScheduleSpec.model_fields)), "created_at": schedule.created_at,
            "next_fire_times": [] if schedule.paused else upcoming(schedule, now),
            "handled_until": schedule.after, "runs": shown, "missed": schedule.missed.model_dump()}


def listing(service: Any, *, limit: int, after: str | None) -> dict[str, Any]:
    records = service.store.records
    rows = records.scan(PREFIX, limit=limit, after=None if after is None else key(after))
    items = []
    for record_key, doc, _ in rows:
        try:
            s = _parse(record_key.removeprefix(PREFIX), doc)
        except Unreadable as e:
            items.append({"name": record_key.removeprefix(PREFIX), "unreadable": e.message})
            continue
        last = s.runs[-1] if s.runs else None
        items.append({"name": s.name, "cron": s.cron, "timezone": s.timezone, "paused": s.paused,
                      "concurrency": s.concurrency, "next_at": None if s.paused else s.next_at,
                      "last_run": None if last is None else last.model_dump(exclude_none=True)})
    more = len(rows) == limit
    return {"items": items, "total": records.count(PREFIX), "next_after": items[-1]["name"] if more else None}


def _write(service: Any, name: str, change: Any) -> Schedule:
    """Read, `change(schedule)`, compare-and-set, until it wins."""
    written: list[Schedule] = []

    def step(doc: str) -> tuple[str, str | None]:
        schedule = _parse(name, doc)
        change(schedule)
        schedule.updated_at = clock.now()
        written[:] = [schedule]
        return schedule.model_dump_json(exclude_none=True), schedule.due()

    update_record(service.store.records, key(name), step, what=f"schedule {name!r}",
                  missing=lambda: NotFound(f"schedule {name!r} not found"))
    return written[0]


def set_paused(service: Any, name: str, paused: bool) -> Schedule:
    """Paused: no fire time is due. Resumed: the fire times from now on (those that fell while
    it was paused are not run, and not counted as missed)."""
    def change(schedule: Schedule) -> None:
        if schedule.paused == paused:
            return
        schedule.paused = paused
        if not paused:
            schedule.advance(now_utc())
    return _write(service, name, change)


def delete(service: Any, name: str) -> bool:
    return bool(service.store.records.delete(key(name)))


MAX_GAUGED = 5000
MAX_GAUGE_READS = 500
"""A scrape reads at most this many runs' queues (the newest runs first) to see if they still
run: every pod serves these gauges, and each read is a store round trip."""


def gauges(service: Any) -> list[dict[str, Any]]:
    """The schedule gauges' rows (`metrics.ScheduleGauges`), read at scrape time: each schedule's
    next fire time, its latest run's, and, while that run's queue is active, its age and estimate."""
    rows: list[dict[str, Any]] = []
    latest: list[tuple[str, int, Run]] = []
    after: str | None = None
    while len(rows) < MAX_GAUGED:
        page = service.store.records.scan(PREFIX, limit=PAGE, after=after)
        for record_key, doc, _ in page:
            after = record_key
            try:
                s = _parse(record_key.removeprefix(PREFIX), doc)
            except Unreadable:
                continue  # listed as unreadable by GET /schedules; no gauge to show
            rows.append({"schedule": s.name, "paused": s.paused, "last_run": None, "run_elapsed": None,
                         "run_estimate": None,
                         "next_run": None if s.next_at is None else clock.parse(s.next_at).timestamp()})
            started = [run for run in s.runs if run.outcome in ("started", "replayed")]
            if started:
                rows[-1]["last_run"] = clock.parse(started[-1].fire).timestamp()
                if started[-1].queue_id:
                    latest.append((started[-1].fire, len(rows) - 1, started[-1]))
        if len(page) < PAGE:
            break
    now = now_utc()
    for _, index, run in sorted(latest, key=lambda item: item[0], reverse=True)[:MAX_GAUGE_READS]:
        try:
            state = service.get(str(run.queue_id))
        except NotFound:
            continue
        if state.status in ACTIVE:
            rows[index]["run_elapsed"] = max(0.0, (now - clock.parse(state.started_at)).total_seconds())
            rows[index]["run_estimate"] = run.estimate_seconds
    return rows
