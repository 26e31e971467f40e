"""Admission across queues: concurrency slots, priorities, overlaps.

Within a queue, `scheduling` decides what *may* run; here it is decided what
*can* run now that other queues compete for the same slots. A ready job takes
a slot only if no waiting job of another queue outranks it (higher priority,
or equal priority and started earlier), so nothing starves and priorities do
what users expect.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from shared.adapters import metrics
from shared.adapters.state import StateStore
from shared.core import lifecycle, lineage, scheduling
from shared.core.errors import Conflict
from shared.core.fields import parse_time_range
from shared.core.models import (
    JobState,
    JobStatus,
    QueueStart,
    QueueState,
    QueueStatus,
    WaitReason,
)
from shared.services.leases import GLOBAL, Slots

if TYPE_CHECKING:
    from shared.services.context import Context

ACTIVE = (QueueStatus.PENDING, QueueStatus.LOADING, QueueStatus.STOPPING)
SLOT_WAIT = "waiting for slot: "


def active_queues(store: StateStore, *, symbol: str | None = None) -> Iterator[QueueState]:
    for status in ACTIVE:
        offset = 0
        while True:
            docs, total = store.list(status=status.value, symbol=symbol, limit=200, offset=offset)
            for doc in docs:
                yield QueueState.model_validate_json(doc)
            offset += len(docs)
            if not docs or offset >= total:
                break


def holder(state: QueueState, job: JobState) -> str:
    return f"{state.id}/{job.id}"


def _rank(state: QueueState) -> tuple[int, str]:
    return (-state.priority, state.started_at or "")


def _competes(slots: Slots, a: str, b: str) -> bool:
    return a == b or (GLOBAL in slots.limits)


def _waits_for_slot(job: JobState) -> bool:
    if job.status != JobStatus.PENDING:
        return False
    if job.wait is None:  # a document written before `wait` existed: its text says it
        return (job.waiting or "").startswith(SLOT_WAIT)
    return job.wait == WaitReason.SLOT


def waiting_for_slots(store: StateStore) -> list[QueueState]:
    """Queues with ready jobs held back by a slot, best first."""
    found = [q for q in active_queues(store) if any(_waits_for_slot(j) for j in q.jobs)]
    return sorted(found, key=_rank)


def outranked(waiting: list[QueueState], slots: Slots, state: QueueState, job: JobState) -> bool:
    """Whether a queue in `waiting` (from `waiting_for_slots`) should get the slot first."""
    mine = _rank(state)
    for other in waiting:
        if other.id == state.id or _rank(other) >= mine:
            continue
        if any(_waits_for_slot(j) and _competes(slots, j.target, job.target) for j in other.jobs):
            return True
    return False


def gate(store: StateStore, slots: Slots, state: QueueState) -> tuple[set[str], dict[str, str]]:
    """(jobs allowed to launch now, why the others wait)."""
    allowed: set[str] = set()
    blocked: dict[str, str] = {}
    waiting: list[QueueState] | None = None  # one scan of the other queues per call, only if needed
    for job in scheduling.ready(state):
        if not slots.limited(job.target):
            allowed.add(job.id)
            continue
        if waiting is None:
            waiting = waiting_for_slots(store)
        if outranked(waiting, slots, state, job):
            blocked[job.id] = SLOT_WAIT + f"{job.target}: queues of higher priority are waiting first"
        elif slots.acquire(job.target, holder(state, job)):
            allowed.add(job.id)
        else:
            blocked[job.id] = SLOT_WAIT + (slots.full_pool(job.target) or f"{job.target} in use")
    return allowed, blocked


def _overlap(a: str, b: str) -> bool:
    a0, a1 = parse_time_range(a)
    b0, b1 = parse_time_range(b)
    return a0 <= b1 and b0 <= a1


def check_overlap(store: StateStore, command: QueueStart, queue_id: str) -> None:
    """:raises Conflict: a request overlaps one of another active queue (naming it)."""
    if command.allow_overlap:
        return
    mine = {(r.target, r.type) for r in command.requests}
    for other in active_queues(store, symbol=command.symbol):
        if other.id == queue_id or not _overlap(command.time_range, other.time_range):
            continue
        clash = sorted(mine & {(j.target, j.type) for j in other.jobs
                               if j.status not in (JobStatus.FINISHED, JobStatus.SKIPPED)})
        if clash:
            what = ", ".join(f"{t}/{k}" for t, k in clash)
            raise Conflict(
                f"overlaps queue {other.id} ({what} for {command.symbol} {other.time_range}); "
                "send allow_overlap: true to run both",
                details=[{"queue_id": other.id, "requests": [list(c) for c in clash]}])


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
    return [waiting.id for waiting in waiting_for_slots(ctx.store)[:5] if waiting.id != state.id]


__all__ = ["ACTIVE", "SLOT_WAIT", "active_queues", "after_report", "check_overlap", "gate", "holder",
           "lineage", "release", "waiting_for_slots"]
