"""The periodic sweep (a Knative PingSource calls it every minute).

Events drive everything; the sweep covers what no event announces: a queue
past its deadline, a stop whose grace period has passed, Jobs claimed by an
instance that died before creating them, leases of running jobs to renew,
slots freed by expiry, events left in an outbox by a Kafka outage, and Jobs
whose end no event announced: the ApiServerSource adapter does not retry a
500, gives up on a 503 after ~3 s and sends nothing for what changed while it
was down, so a Job that completes, fails or is deleted without telemetry of its
own would leave its queue as it was. Queues with a launched or running Job
whose stored status is older than DRIFT_AFTER_SECONDS are compared with the
cluster and repaired (shared/services/drift.py), at most DRIFT_CHECKS_PER_SWEEP of them
per sweep: one Job list call each.
"""

from __future__ import annotations

from typing import Any

from shared.adapters.state import upkeep
from shared.adapters.state.base import GroupConflict
from shared.core import clock, lifecycle
from shared.core.errors import BackendUnavailable, QueueManagerError
from shared.core.models import JobStatus, QueueState, QueueStatus
from shared.services import admission, drift
from shared.services.service import QueueService

UNCONFIRMED_AFTER_S = 60.0
RECENT = 200
"""How many of the newest ended queues (per status) the sweep checks for unpublished events."""
ARCHIVE_PER_SWEEP = 500


def _age(stamp: str | None, at: str) -> float:
    return clock.seconds_between(stamp, at) if stamp else 0.0


def _unchanged_for(state: QueueState, at: str) -> float | None:
    """How long the stalest launched or running Job of the queue has kept its stored status
    (since its launch, or its start once running); None if it has no such Job."""
    ages = [_age(j.started_at or j.launched_at, at) for j in state.jobs
            if j.created and j.status in (JobStatus.LAUNCHED, JobStatus.RUNNING) and (j.started_at or j.launched_at)]
    return max(ages) if ages else None


def drift_turn(candidates: dict[str, float], budget: int, at: str) -> list[str]:
    """Which queues to compare with the cluster in this sweep, at most ``budget`` of them.

    ``candidates`` maps each queue id to how long its state has been unchanged. With more
    than ``budget``, half the budget (rounded down) goes to the stalest queues and the rest
    to the others in turn (by id, a window that moves every minute): queues whose Jobs run
    long and healthy, always the stalest, cannot keep the others from ever being checked.
    With C candidates for a while, each is checked at least every
    ceil((C - budget // 2) / (budget - budget // 2)) minutes (399 for 10,000 and 50).
    """
    ranked = sorted(candidates, key=lambda q: (-candidates[q], q))
    if len(ranked) <= budget:
        return ranked
    stalest = budget // 2
    rest = sorted(ranked[stalest:])
    share = budget - stalest
    start = int(clock.parse(at).timestamp() // 60) * share % len(rest)
    return ranked[:stalest] + [rest[(start + i) % len(rest)] for i in range(share)]


def sweep(service: QueueService) -> dict[str, Any]:
    at = clock.now()
    report: dict[str, list[str]] = {"timed_out": [], "stopped": [], "relaunched": [], "flushed": [],
                                    "renewed": [], "drift_checked": [], "repaired": [], "archived": [], "upkeep": [],
                                    "failed": []}
    grace = service.settings.jobs.stop_grace_seconds
    drift_after = service.settings.jobs.drift_after_seconds
    slots = service.slots
    unchanged: dict[str, float] = {}
    try:  # documents stored without facts (an earlier version's): indexed, then the counters rebuilt
        report["upkeep"] = [f"{k}: {v}" for k, v in upkeep(service.store).items()]
    except Exception as e:  # the rest of the sweep (timeouts, stops, slots) must still run
        report["failed"].append(f"upkeep: {type(e).__name__}: {e}")
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
            idle = _unchanged_for(state, at)
            if idle is not None and idle >= drift_after:
                unchanged[state.id] = idle
        except QueueManagerError as e:  # one queue's trouble must not stop the sweep of the rest
            report["failed"].append(f"{state.id}: {e}")
    # Jobs that ended (or went) without an event saying so; before admitting waiting queues,
    # so that the slots such Jobs held go to them in this same sweep.
    for queue_id in drift_turn(unchanged, service.settings.jobs.drift_checks_per_sweep, at):
        try:
            found = drift.check(service, queue_id, repair=True)
        except BackendUnavailable as e:  # the cluster (or the store) is down: not once per queue
            report["failed"].append(f"{queue_id}: {e}")
            break
        except QueueManagerError as e:
            report["failed"].append(f"{queue_id}: {e}")
            continue
        report["drift_checked"].append(queue_id)
        if found["repaired"]:
            report["repaired"].append(queue_id)
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
    # Queues that ended long ago leave the hot set, a batch per sweep (readable in the archive).
    days = service.settings.jobs.retention_days
    if days:
        try:
            report["archived"] = service.store.archive(clock.plus(at, -days * 86400), ARCHIVE_PER_SWEEP)
        except (GroupConflict, BackendUnavailable) as e:
            report["failed"].append(f"archive: {e}")
    # Slots freed by expiry or by the stops above go to the best waiting queues.
    for waiting in admission.waiting_for_slots(service.store, None, 10):  # active ones only: the index holds no other
        try:
            service.advance(waiting)
        except QueueManagerError as e:
            report["failed"].append(f"{waiting}: {e}")
    return report
