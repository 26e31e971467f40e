"""Transactional outbox: events are written in the same compare-and-set as the
state change that caused them, then published, then removed.

A publish that fails leaves them in the document; the next call touching the
queue (any function, or the retried delivery) publishes them. So a Kafka
outage delays events but never loses one, and deterministic event ids let
consumers drop the duplicates a retry may cause.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.adapters import events
from shared.adapters.bus import CONTROL, EVENTS, Bus
from shared.adapters.state import StateStore, mutate
from shared.core import constants
from shared.core.models import QueueState

Snapshot = tuple[str, dict[str, str]]


def snapshot(state: QueueState) -> Snapshot:
    # The members themselves: statuses are StrEnums, equal to their strings, and
    # reading `.value` on every delivery costs more than the comparison.
    return state.status, {j.id: j.status for j in state.jobs}


HISTORY = 64
"""Change events kept in the document for live-update clients that reconnect."""
_HISTORY_FIELDS = ("job_id", "period", "status", "records_written", "reason", "error_message")


def add(state: QueueState, *, channel: str, type_: str, id_: str, data: dict[str, Any],
        source: str, now: str) -> None:
    if any(e["event"]["id"] == id_ for e in state.outbox):
        return
    event = events.make(type_=type_, source=source, subject=state.id, id_=id_, data=data, time=now)
    state.outbox.append({"channel": channel, "event": event})
    if channel == EVENTS:
        state.seq += 1
        # Compact: every change is followed by a full `queue` snapshot on the stream anyway.
        brief = {k: data[k] for k in _HISTORY_FIELDS if data.get(k) is not None}
        state.history.append({"seq": state.seq, "type": type_, "time": now, "data": brief})
        del state.history[:-HISTORY]


def record_changes(state: QueueState, before: Snapshot, *, source: str, now: str) -> None:
    """Queue and job status changes since `before`, as events in the outbox."""
    old_status, old_jobs = before
    for job in state.jobs:
        old = old_jobs.get(job.id)
        if old != job.status:
            add(state, channel=EVENTS, type_=constants.CE_JOB_STATUS_CHANGED,
                id_=f"{state.id}/{job.id}/{job.status.value}", source=source, now=now,
                data={"queue_id": state.id, "job_id": job.id, "target": job.target,
                      "type": job.type, "status": job.status.value,
                      "previous": None if old is None else str(old), "records_written": job.records_written,
                      "error_message": job.error_message,
                      **({"period": job.period, "time_range": job.time_range} if job.period else {})})
    if old_status != state.status:
        add(state, channel=EVENTS, type_=constants.CE_QUEUE_STATUS_CHANGED,
            id_=f"{state.id}/{state.status.value}", source=source, now=now,
            data={"queue_id": state.id, "status": state.status.value, "previous": str(old_status),
                  "records_written": state.records_written,
                  "error_message": state.error_message})


def tracked(change: Callable[[QueueState], bool], *, source: str, now: str) -> Callable[[QueueState], bool]:
    def run(state: QueueState) -> bool:
        before = snapshot(state)
        changed = change(state)
        if changed:
            record_changes(state, before, source=source, now=now)
        return changed

    return run


def flush(store: StateStore, bus: Bus, state: QueueState) -> list[str]:
    """Publish what the outbox holds; :raises BackendUnavailable: and keeps the rest."""
    if not state.outbox:
        return []
    sent: set[str] = set()
    channels: list[str] = []
    try:
        for item in state.outbox:
            bus.publish(item["channel"], item["event"], key=state.id)
            sent.add(item["event"]["id"])
            channels.append(item["channel"])
    finally:
        if sent:
            def drop(s: QueueState) -> bool:
                before = len(s.outbox)
                s.outbox = [i for i in s.outbox if i["event"]["id"] not in sent]
                return len(s.outbox) != before

            mutate(store, state.id, drop)
    return channels


__all__ = ["CONTROL", "EVENTS", "add", "flush", "record_changes", "snapshot", "tracked"]
