"""Admission across queues: concurrency slots, priorities, overlaps.

Within a queue, `scheduling` decides what *may* run; here it is decided what
*can* run now that other queues compete for the same slots. A ready job takes
a slot only if no waiting job of another queue outranks it (higher priority,
or equal priority and started earlier), so nothing starves and priorities do
what users expect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

from shared.adapters import metrics
from shared.adapters.state import StateStore
from shared.core import facts, lifecycle, lineage, partitions, scheduling
from shared.core.errors import Conflict
from shared.core.fields import parse_time_range
from shared.core.models import (
    JobState,
    QueueStart,
    QueueState,
)
from shared.services.leases import GLOBAL, Slots

if TYPE_CHECKING:
    from shared.services.context import Context

ACTIVE = facts.ACTIVE
SLOT_WAIT = facts.SLOT_WAIT


def active_queues(store: StateStore, *, symbol: str | None = None) -> Iterator[QueueState]:
    """Every active queue (the sweep visits each), by keyset pages."""
    for status in ACTIVE:
        after: tuple[str, str] | None = None
        while True:
            docs, _ = store.list(status=status.value, symbol=symbol, limit=200, offset=0, after=after)
            for doc in docs:
                state = QueueState.model_validate_json(doc)
                after = (state.started_at or "", state.id)
                yield state
            if len(docs) < 200:
                break


def holder(state: QueueState, job: JobState) -> str:
    return f"{state.id}/{job.id}"


def _rank(state: QueueState) -> str:
    return facts.rank(state.priority, state.started_at)


def waiting_for_slots(store: StateStore, target: str | None = None, limit: int = 10) -> list[str]:
    """The ids of the queues with ready jobs held back by a slot (of `target`, or any), best
    first: from the store's index of waiting queues, never by scanning the active ones."""
    return [key for key, _ in store.waiting(target, limit)]


def outranked(store: StateStore, slots: Slots, state: QueueState, job: JobState) -> bool:
    """Whether another queue waiting for a competing slot should get it first."""
    competing = None if GLOBAL in slots.limits else job.target  # a global limit: every slot competes
    mine = _rank(state)
    for other, rank in store.waiting(competing, 2):  # the best, and this queue maybe
        if other != state.id:
            return rank[:len(mine)] < mine  # its rank, without the id that breaks ties
    return False


def gate(store: StateStore, slots: Slots, state: QueueState) -> tuple[set[str], dict[str, str]]:
    """(jobs allowed to launch now, why the others wait). Per target, the priority check is
    asked once and a pool found full is not read again for the next job of the call: a
    partitioned queue has tens of ready jobs of one target."""
    allowed: set[str] = set()
    blocked: dict[str, str] = {}
    behind: dict[str, bool] = {}
    full: dict[str, str] = {}
    for job in scheduling.ready(state):
        target = job.target
        if not slots.limited(target):
            allowed.add(job.id)
            continue
        if target not in behind:
            behind[target] = outranked(store, slots, state, job)
        if behind[target]:
            blocked[job.id] = SLOT_WAIT + f"{target}: queues of higher priority are waiting first"
        elif target in full:
            blocked[job.id] = full[target]
        elif slots.acquire(target, holder(state, job)):
            allowed.add(job.id)
        else:
            full[target] = blocked[job.id] = SLOT_WAIT + (slots.full_pool(target) or f"{target} in use")
    return allowed, blocked


def _overlap(a: str, b: str) -> bool:
    a0, a1 = parse_time_range(a)
    b0, b1 = parse_time_range(b)
    return a0 <= b1 and b0 <= a1


def check_overlap(store: StateStore, command: QueueStart, queue_id: str) -> None:
    """:raises Conflict: a request overlaps one of another active queue (naming it). Reads the
    facts of the symbol's active queues only, not their documents."""
    if command.allow_overlap:
        return
    # Partitioned requests skip what is covered instead (shared/services/backfill.py).
    mine = {f"{r.target}/{r.type}" for r in command.requests if not partitions.partition_of(command, r)}
    if not mine:
        return
    for other_id, text in sorted(store.active_facts(command.symbol)):
        other = json.loads(text)
        if other_id == queue_id or not other.get("t") or not _overlap(command.time_range, other["t"]):
            continue
        clash = sorted(mine & set(other.get("l", ())))
        if clash:
            what = ", ".join(clash)
            raise Conflict(
                f"overlaps queue {other_id} ({what} for {command.symbol} {other['t']}); "
                "send allow_overlap: true to run both",
                details=[{"queue_id": other_id, "requests": [c.split("/", 1) for c in clash]}])


def after_report(ctx: Context, state: QueueState, reporters: list[str], ended: list[str]) -> list[str]:
    """Count the jobs that ended, keep the reporters' leases alive, free the ended jobs' slots;
    the queues that may launch now (the caller advances them)."""
    for job in state.jobs:
        if job.id in ended:
            metrics.JOB_RESULTS.labels(job.target, job.status.value).inc()
    slots = ctx.slots
    if slots is None:
        return []
    for reporter in reporters:
        reporting = lifecycle.find_job(state, reporter)
        if reporting is not None and reporting.id not in ended and slots.limited(reporting.target):
            slots.renew(reporting.target, holder(state, reporting))  # alive: keep its lease
    # Jobs the failure policy stopped or skipped end too.
    ended = ended + [j.id for j in state.jobs if j.status in lifecycle.TERMINAL_JOB and j.id not in ended]
    return release(ctx, state, ended)


def release(ctx: Context, state: QueueState, job_ids: list[str]) -> list[str]:
    """Free the slots of jobs that ended; the best waiting queues, which may take them now."""
    slots = ctx.slots
    if slots is None or not job_ids:
        return []
    for job in state.jobs:
        if job.id in job_ids and slots.limited(job.target):
            slots.release(job.target, holder(state, job))
    return [waiting for waiting in waiting_for_slots(ctx.store, None, 6) if waiting != state.id][:5]


__all__ = ["ACTIVE", "SLOT_WAIT", "active_queues", "after_report", "check_overlap", "gate", "holder",
           "lineage", "release", "waiting_for_slots"]
