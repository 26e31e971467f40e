"""Stopping queues and taking the cluster's word: the parts of the service that
wait for Kubernetes rather than for the Jobs' own telemetry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.adapters import metrics
from shared.adapters.bus import CONTROL, EVENTS
from shared.adapters.state import load, load_archived, mutate
from shared.core import constants, lifecycle
from shared.core.clock import now
from shared.core.cluster import JobObserved
from shared.core.errors import NotFound
from shared.core.models import Outcome, QueueState, QueueStatus, Telemetry
from shared.services import admission, launching, outbox, reports

if TYPE_CHECKING:
    from shared.services.context import Context


def stop(ctx: Context, queue_id: str, *, reason: str | None = None) -> tuple[QueueState, bool]:
    """Tell the Jobs on queue-control and mark the queue `stopping`.

    The Jobs are deleted after the grace period (`finish_stop`, called by the
    stop function after it answered, or by the sweep); the queue is
    `stopped` only once the cluster has none of its Jobs or pods left. With
    the local launcher nothing runs, so the stop completes at once.

    :raises NotFound:
    :raises BackendUnavailable:
    """
    stamp = now()

    def change(state: QueueState) -> bool:
        if not lifecycle.request_stop(state, reason, stamp):
            return False
        outbox.add(state, channel=CONTROL, type_=constants.CE_STOP_COMMAND,
                   id_=f"{queue_id}/stop-command", source=ctx.source, now=stamp,
                   data={"type": "stop", "command": "stop", "queue_id": queue_id,
                         "reason": state.stop_reason})
        return True

    try:
        state, changed = mutate(ctx.store, queue_id, outbox.tracked(change, source=ctx.source, now=stamp))
    except NotFound:
        archived = load_archived(ctx.store, queue_id)
        if archived is None:
            raise
        state = archived  # ended long ago: nothing to stop
        metrics.STOPS.labels("already_" + state.status.value).inc()
        return state, False
    metrics.STOPS.labels("stopping" if changed else "already_" + state.status.value).inc()
    # Publish the stop command before deleting, so running Jobs can flush their counts.
    launching.flush(ctx, state)
    if state.status == QueueStatus.STOPPING and (
        ctx.launcher.kind == "local" or ctx.settings.jobs.stop_grace_seconds <= 0
    ):
        state = finish_stop(ctx, queue_id)
    return state, changed

def finish_stop(ctx: Context, queue_id: str) -> QueueState:
    """Delete the queue's Jobs; mark it `stopped` if the cluster confirms none is left."""
    state, _ = load(ctx.store, queue_id)
    if state.status != QueueStatus.STOPPING:
        return state
    ctx.launcher.delete_queue(queue_id)
    left = ctx.launcher.remaining(queue_id)
    if left:
        return state  # Job delete events or the next sweep finish it
    stamp = now()
    ended: list[str] = []

    def done(s: QueueState) -> bool:
        running = {j.id for j in s.jobs if j.status not in lifecycle.TERMINAL_JOB}
        if not lifecycle.finish_stop(s, stamp):
            return False
        ended[:] = [j.id for j in s.jobs if j.id in running]  # a retried compare-and-set starts over
        outbox.add(s, channel=EVENTS, type_=constants.CE_QUEUE_STOPPED, id_=f"{queue_id}/stopped",
                   source=ctx.source, now=stamp,
                   data={"queue_id": queue_id, "reason": s.stop_reason, "records_written": s.records_written})
        return True

    state, changed = mutate(ctx.store, queue_id, outbox.tracked(done, source=ctx.source, now=stamp))
    if changed:
        for job in state.jobs:  # stopped and skipped are results too
            if job.id in ended:
                metrics.JOB_RESULTS.labels(job.target, job.status.value).inc()
        for waiting in admission.release(ctx, state, [j.id for j in state.jobs]):
            launching.advance(ctx, waiting)
    launching.flush(ctx, state)
    return state


def cluster_event(ctx: Context, observed: JobObserved) -> Outcome:
    """Apply what the cluster says about one of our Jobs (see `shared.core.cluster`)."""
    if observed.pod:
        try:
            state, _ = load(ctx.store, observed.queue_id)
        except NotFound:
            return Outcome.UNKNOWN_QUEUE
        if state.status != QueueStatus.STOPPING:
            return Outcome.NO_NEWS
        return Outcome.APPLIED if finish_stop(ctx, state.id).status == QueueStatus.STOPPED else Outcome.DUPLICATE
    if not observed.deleted:
        if observed.status is None:
            return Outcome.NO_NEWS
        (outcome,) = reports.merge(ctx, [Telemetry(queue_id=observed.queue_id, job_id=observed.job_name,
                                                    status=observed.status, error_message=observed.error_message)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    stamp = now()

    def vanished(state: QueueState) -> bool:
        job = lifecycle.find_job(state, observed.job_name)
        if job is None or job.status in lifecycle.TERMINAL_JOB or state.status in lifecycle.TERMINAL_QUEUE:
            return False
        if state.status == QueueStatus.STOPPING:
            return False  # the stop's own deletions coming back
        return lifecycle.fail_job(state, job.id, "the Job was deleted outside the queue manager before it finished",
                                  stamp)

    try:
        state, changed = mutate(ctx.store, observed.queue_id,
                                outbox.tracked(vanished, source=ctx.source, now=stamp))
    except NotFound:
        return Outcome.UNKNOWN_QUEUE
    if state.status == QueueStatus.STOPPING:
        before = state.status
        state = finish_stop(ctx, state.id)  # a stop waits for exactly these deletions
        return Outcome.APPLIED if state.status != before else Outcome.DUPLICATE
    if changed:
        launching.advance(ctx, state.id)
        # the deleted job ended in error: counted, its slot freed
        job = lifecycle.find_job(state, observed.job_name)
        for waiting in admission.after_report(ctx, state, [], [job.id] if job else []):
            launching.advance(ctx, waiting)
    return Outcome.APPLIED if changed else Outcome.DUPLICATE
