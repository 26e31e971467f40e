"""Launching: claim what may start now, create its Jobs, record them, clean up after a failure,
and publish the outbox. The one way jobs are launched (start, retry, telemetry, stop, sweep).
"""

from __future__ import annotations

from typing import Any

from shared.adapters import metrics
from shared.adapters.state import load, mutate
from shared.core import clock, jobs, lifecycle, scheduling
from shared.core.clock import now
from shared.core.errors import ClientError
from shared.core.models import JobStatus, QueueState
from shared.services import admission, outbox
from shared.services.context import Context

REFUSED = "launch refused: "


def advance(ctx: Context, queue_id: str, *, retry_unconfirmed: bool = False) -> tuple[QueueState, list[str]]:
    """Launch what may launch now, clean up after a failure, publish the outbox.

    Only the jobs this call claimed are launched, plus, with
    `retry_unconfirmed`, claimed jobs whose launch was never confirmed (an
    earlier attempt died between claim and create).
    """
    stamp = now()
    claimed: list[str] = []
    slots = ctx.slots
    allowed: set[str] | None = None
    blocked: dict[str, str] = {}
    if slots is not None:
        current, _ = load(ctx.store, queue_id)
        allowed, blocked = admission.gate(ctx.store, slots, current)

    def claim(s: QueueState) -> bool:
        claimed.clear()  # a compare-and-set retry starts over: only the winning write's claims count
        return scheduling.admit(s, stamp, claimed, allowed=allowed, blocked=blocked)

    state, _ = mutate(ctx.store, queue_id, outbox.tracked(claim, source=ctx.source, now=stamp))
    if slots is not None and allowed:
        # Slots taken for jobs that did not launch after all (a partner still waits, a stop came).
        for job in state.jobs:
            if job.id in allowed and job.status == JobStatus.PENDING:
                slots.release(job.target, admission.holder(state, job))
    if state.started_at:
        waited = max(0.0, clock.seconds_between(state.started_at, stamp))
        for job in state.jobs:
            if job.id in claimed:
                metrics.ADMISSION_WAIT.labels(job.target).observe(waited)
    ids = set(claimed)
    if retry_unconfirmed:
        ids |= {j.id for j in state.jobs if j.status == JobStatus.LAUNCHED and not j.created}
    if ids:
        launch = [j for j in state.jobs if j.id in ids]
        refused: dict[str, str] = {}
        try:
            ctx.launcher.launch([render(ctx, state, j) for j in launch])
        except ClientError as e:
            # Permanent (a name taken by another queue, a Job the API server rejects):
            # those jobs fail, the failure policy decides about the rest.
            refused = {d["job"]: d.get("error", e.message) for d in e.details if "job" in d}
            if not refused:
                raise
        for job in launch:
            if job.job_name not in refused:
                metrics.JOBS_LAUNCHED.labels(job.target).inc()
        made = {j.id for j in launch if j.job_name not in refused}

        failed: list[str] = []

        def record(s: QueueState) -> bool:
            failed.clear()  # a compare-and-set retry starts over
            changed = scheduling.mark_created(s, made)
            for job in s.jobs:
                if job.job_name not in refused:
                    continue
                if lifecycle.fail_job(s, job.id, f"{REFUSED}{refused[job.job_name]}", stamp):
                    failed.append(job.id)
                    changed = True
                if job.launch_refused != refused[job.job_name]:  # also when the policy stopped it first
                    job.launch_refused = refused[job.job_name]
                    changed = True
            return changed

        state, _ = mutate(ctx.store, queue_id, outbox.tracked(record, source=ctx.source, now=stamp))
        for job in state.jobs:  # a refused launch is a result too (the error ratio counts it)
            if job.id in failed:
                metrics.JOB_RESULTS.labels(job.target, job.status.value).inc()
    if state.cleanup:
        # A failure stopped the queue: delete the Jobs it stopped, keep the failed one to inspect.
        names = list(state.cleanup)
        ctx.launcher.delete_jobs(names)

        def done(s: QueueState) -> bool:
            before = len(s.cleanup)
            s.cleanup = [n for n in s.cleanup if n not in names]
            return len(s.cleanup) != before

        state, _ = mutate(ctx.store, queue_id, done)
    flush(ctx, state)
    return state, sorted(ids)


def render(ctx: Context, state: QueueState, job: Any) -> dict[str, Any]:
    return jobs.render(queue=state, job=job, jobs=ctx.settings.jobs, kafka=ctx.settings.kafka,
                       arango_url=ctx.settings.arango.url, arango_db=ctx.settings.arango.db)


def flush(ctx: Context, state: QueueState) -> None:
    """Publish what the queue's outbox holds (events, stop commands)."""
    for channel in outbox.flush(ctx.store, ctx.bus, state):
        metrics.EVENTS_PUBLISHED.labels(channel).inc()
