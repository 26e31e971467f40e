"""The periodic sweep (a Knative PingSource calls it every minute).

Events drive everything; the sweep covers what no event announces: a queue
past its deadline, a stop whose grace period has passed, Jobs claimed by an
instance that died before creating them, leases of running jobs to renew,
slots freed by expiry, and events left in an outbox by a Kafka outage.
"""

from __future__ import annotations

from typing import Any

from shared import admission, clock, lifecycle
from shared.errors import QueueManagerError
from shared.models import JobStatus, QueueState, QueueStatus
from shared.service import QueueService

UNCONFIRMED_AFTER_S = 60.0
RECENT = 200
"""How many of the newest ended queues (per status) the sweep checks for unpublished events."""


def _age(stamp: str | None, at: str) -> float:
    return clock.seconds_between(stamp, at) if stamp else 0.0


def sweep(service: QueueService) -> dict[str, Any]:
    at = clock.now()
    report: dict[str, list[str]] = {"timed_out": [], "stopped": [], "relaunched": [], "flushed": [],
                                    "renewed": [], "failed": []}
    grace = service.settings.jobs.stop_grace_seconds
    slots = service.slots
    for state in list(admission.active_queues(service.store)):
        try:
            if state.status != QueueStatus.STOPPING and state.deadline_at and _age(state.deadline_at, at) >= 0:
                service.stop(state.id, reason="timeout")
                report["timed_out"].append(state.id)
                continue
            if state.status == QueueStatus.STOPPING:
                due = _age(state.stop_requested_at, at) >= grace
                if due and service.finish_stop(state.id).status == QueueStatus.STOPPED:
                    report["stopped"].append(state.id)
                continue
            stale = [j for j in state.jobs if j.status == JobStatus.LAUNCHED and not j.created
                     and _age(j.launched_at, at) > UNCONFIRMED_AFTER_S]
            if stale or state.outbox:
                service.advance(state.id, retry_unconfirmed=bool(stale))
                report["relaunched" if stale else "flushed"].append(state.id)
            if slots is not None:
                for job in state.jobs:
                    if job.status in (JobStatus.LAUNCHED, JobStatus.RUNNING) and slots.limited(job.target):
                        slots.renew(job.target, admission.holder(state, job))
                        report["renewed"].append(f"{state.id}/{job.id}")
        except QueueManagerError as e:  # one queue's trouble must not stop the sweep of the rest
            report["failed"].append(f"{state.id}: {e}")
    # Ended queues whose last events a Kafka outage left in the outbox.
    for status in lifecycle.TERMINAL_QUEUE:
        docs, _ = service.store.list(status=status.value, symbol=None, limit=RECENT, offset=0)
        for doc in docs:
            ended = QueueState.model_validate_json(doc)
            if ended.outbox:
                try:
                    service.advance(ended.id)
                    report["flushed"].append(ended.id)
                except QueueManagerError as e:
                    report["failed"].append(f"{ended.id}: {e}")
    # Slots freed by expiry or by the stops above go to the best waiting queues.
    for waiting in admission.waiting_for_slots(service.store)[:10]:
        try:
            if waiting.status not in lifecycle.TERMINAL_QUEUE:
                service.advance(waiting.id)
        except QueueManagerError as e:
            report["failed"].append(f"{waiting.id}: {e}")
    return report
