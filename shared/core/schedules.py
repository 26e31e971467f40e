"""Schedules: a cron expression in a time zone, and the queue it starts at each fire time
(a start payload whose `time_range` may be relative: `shared.core.relative`).

A schedule is stored as one record, `schedule:<name>`, due (`Records.due`) at its next fire
time while it is not paused. `after` is the fire time it has handled up to: a tick handles the
fire times in (after, now], so a duplicated or retried tick finds nothing left, and a tick
after an outage finds the ones it missed.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.core import clock, cron, relative
from shared.core.cron import Cron

PREFIX = "schedule:"
MAX_RUNS = 50
MAX_MISSED_SHOWN = 20
MAX_CATCH_UP = 100
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

Name = Annotated[str, StringConstraints(pattern=NAME.pattern)]
Concurrency = Literal["allow", "forbid", "replace"]


def key(name: str) -> str:
    return PREFIX + name


class ScheduleSpec(BaseModel):
    """What a user sets: POST /schedules."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name = Field(description="A DNS label: lower-case letters, digits and '-', at most 63")
    cron: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        examples=["0 1 * * *"], description="Five fields or a descriptor (@daily), as PingSource reads it")
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        default="UTC", examples=["Europe/Berlin"])
    queue: dict[str, Any] = Field(
        description="A start payload (symbol or symbols, requests, ...); time_range may be relative: "
                    + ", ".join(relative.NAMES))
    concurrency: Concurrency = Field(
        default="allow", description="allow; forbid: skip a fire time while the previous run is active; "
                                     "replace: stop the previous run and start")
    catch_up: Annotated[int, Field(ge=1, le=MAX_CATCH_UP)] = Field(
        default=3, description="After an outage, how many of the fire times missed (the newest) are started, "
                               "oldest first; the older ones are reported as missed")
    paused: bool = False

    @model_validator(mode="after")
    def _parts(self) -> Self:
        cron.parse(self.cron)
        cron.zone(self.timezone)
        relative.check(self.queue.get("time_range"))
        return self

    def expression(self) -> Cron:
        return cron.parse(self.cron)

    def zone(self) -> ZoneInfo:
        return cron.zone(self.timezone)


class Run(BaseModel):
    """One fire time handled."""

    model_config = ConfigDict(extra="ignore")

    fire: str
    outcome: Literal["started", "replayed", "covered", "forbidden", "failed"]
    at: str
    time_range: str | None = None
    queue_id: str | None = None
    group_id: str | None = None
    replaced: str | None = None
    message: str | None = None
    estimate_seconds: float | None = None


class Missed(BaseModel):
    model_config = ConfigDict(extra="ignore")

    count: int = 0
    """Fire times never started (past the catch-up bound), in all (each outage counted up to
    `cron.between`'s bound)."""
    recent: list[dict[str, Any]] = Field(default_factory=list)
    """The latest outages: {from, to, count} of the fire times each one skipped."""


class Schedule(ScheduleSpec):
    """As stored."""

    model_config = ConfigDict(extra="ignore", strict=False)

    uid: str
    """Per creation: a schedule deleted and created again under its name starts new queues."""
    created_at: str
    updated_at: str
    after: str
    next_at: str | None = None
    runs: list[Run] = Field(default_factory=list)
    missed: Missed = Field(default_factory=Missed)

    def due(self) -> str | None:
        return None if self.paused else self.next_at

    def idempotency_key(self, fire: str) -> str:
        return f"schedule/{self.name}/{self.uid}/{fire}"

    def last_queue(self) -> Run | None:
        """The latest run that started a queue or a group."""
        return next((run for run in reversed(self.runs) if run.queue_id or run.group_id), None)

    def advance(self, until: dt.datetime) -> None:
        """Handled up to `until` (never back: a tick that lost the write to a later one): the
        next fire time after it is due."""
        until = max(until, clock.parse(self.after))
        self.after = clock.format(until)
        fire = cron.next_after(self.expression(), self.zone(), until)
        self.next_at = None if fire is None else clock.format(fire)

    def record(self, run: Run) -> None:
        self.runs = [*self.runs, run][-MAX_RUNS:]

    def skip(self, missed: list[dt.datetime], count: int) -> None:
        """`count` fire times before the kept ones are not run; `missed` bounds them."""
        if count <= 0:
            return
        self.missed.count += count
        outage = {"from": clock.format(missed[0]), "to": clock.format(missed[-1]), "count": count}
        self.missed.recent = [*self.missed.recent, outage][-MAX_MISSED_SHOWN:]


def due_fires(schedule: Schedule, now: dt.datetime) -> tuple[list[dt.datetime], list[dt.datetime], int]:
    """(to start, oldest first; the first and last of those missed; how many missed)."""
    kept, total = cron.between(schedule.expression(), schedule.zone(), clock.parse(schedule.after), now,
                               keep=schedule.catch_up)
    missed = total - len(kept)
    if missed <= 0:
        return kept, [], 0
    first = cron.next_after(schedule.expression(), schedule.zone(), clock.parse(schedule.after))
    bounds = [f for f in (first, _before(schedule, kept[0])) if f is not None]
    return kept, bounds, missed


def _before(schedule: Schedule, fire: dt.datetime) -> dt.datetime | None:
    """The fire time just before `fire` (after `schedule.after`)."""
    kept, _ = cron.between(schedule.expression(), schedule.zone(), clock.parse(schedule.after),
                           fire - dt.timedelta(microseconds=1), keep=1, count_up_to=1)
    return kept[0] if kept else None


def upcoming(schedule: Schedule, now: dt.datetime, n: int = 5) -> list[str]:
    fires: list[str] = []
    at = max(now, clock.parse(schedule.after))
    for _ in range(n):
        fire = cron.next_after(schedule.expression(), schedule.zone(), at)
        if fire is None:
            break
        fires.append(clock.format(fire))
        at = fire
    return fires


def payload(schedule: Schedule | ScheduleSpec, fire: dt.datetime) -> dict[str, Any]:
    """The start payload of the run at `fire`: its relative range resolved in the zone."""
    body = dict(schedule.queue)
    body["time_range"] = relative.on(str(body.get("time_range")), fire, schedule.zone())
    return body
