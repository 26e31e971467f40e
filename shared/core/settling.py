"""What follows from the jobs' statuses: a failure's cascade (skips, and under
`on_failure: stop` the stop of the rest) and the queue's derived fields and status."""

from __future__ import annotations

from shared.core import clock
from shared.core.models import JobState, JobStatus, QueueState, QueueStatus
from shared.core.statuses import REACHED, TERMINAL_JOB, TERMINAL_QUEUE, advance, closing, latest


def dependents(state: QueueState, *indexes: int) -> set[int]:
    """Every job that waits, directly or not, for one of the jobs `indexes` (one pass over the
    needs: a partitioned queue has up to a thousand jobs)."""
    waiting: dict[int, list[int]] = {}
    for job in state.jobs:
        for need in job.needs:
            waiting.setdefault(need.job, []).append(job.index)
    found: set[int] = set()
    frontier = list(indexes)
    while frontier:
        for index in waiting.get(frontier.pop(), ()):
            if index not in found:
                found.add(index)
                frontier.append(index)
    return found


def _unmeetable(state: QueueState, now: str) -> bool:
    """Skip every pending job with a need that can no longer be met: the job it waits for has
    ended without reaching the status needed (stopped, or skipped itself), repeated until
    nothing more is skipped, so no queue waits for ever on an input that is gone."""
    changed, moved = False, True
    while moved:
        moved = False
        for job in state.jobs:
            if job.status != JobStatus.PENDING:
                continue
            for need in job.needs:
                other = state.jobs[need.job]
                if other.status in TERMINAL_JOB and other.status not in REACHED[need.until]:
                    how = "failed" if other.status == JobStatus.ERROR else other.status.value
                    moved |= skip(job, f"skipped: input {other.target}/{other.type} {how}", now)
                    break
        changed |= moved
    return changed


SHORT = frozenset({JobStatus.ERROR, JobStatus.STOPPED, JobStatus.SKIPPED})
"""Ended without finishing: what a retry runs again."""


def _cascade_failures(state: QueueState, now: str) -> bool:
    """A failed job skips what waits for it, directly or not, even behind a job that already
    ran (its output was made from what the failed one gave); what waits for an input that ended
    short is skipped; under `on_failure: stop`, a failure stops everything else too."""
    if closing(state.status) or not any(j.status in SHORT for j in state.jobs):
        return False
    changed = False
    failed = [j for j in state.jobs if j.status == JobStatus.ERROR]
    for job in failed:
        for index in sorted(dependents(state, job.index)):
            dep = state.jobs[index]
            if dep.status == JobStatus.PENDING:
                changed |= skip(dep, f"skipped: input {job.target}/{job.type} failed", now)
    changed = _unmeetable(state, now) or changed
    if failed and state.on_failure == "stop":
        cause = failed[0]
        for job in state.jobs:
            if job.status == JobStatus.PENDING:
                changed |= skip(job, f"skipped: queue stopped after {cause.target}/{cause.type} failed", now)
            elif job.status in (JobStatus.LAUNCHED, JobStatus.RUNNING):
                changed |= advance(job, JobStatus.STOPPED, now)
                if job.created and job.job_name not in state.cleanup:
                    state.cleanup.append(job.job_name)
    return changed


def skip(job: JobState, why: str, now: str) -> bool:
    if not advance(job, JobStatus.SKIPPED, now):
        return False
    job.error_message = why
    job.waiting = job.wait = None
    return True


def settle(state: QueueState, changed: bool, now: str) -> bool:
    changed = _cascade_failures(state, now) or changed
    changed = _derive(state, now) or changed
    if changed:
        state.updated_at = now
    return changed


def _last_end(state: QueueState) -> str | None:
    """When the queue's last job ended, as the jobs say (their reports' `finished_at` included);
    a time that does not parse is not a time."""
    ends = []
    for job in state.jobs:
        if job.finished_at:
            try:
                ends.append((clock.parse(job.finished_at), job.finished_at))
            except ValueError:
                continue
    return max(ends)[1] if ends else None


def _derive(state: QueueState, now: str) -> bool:
    """Recompute the queue's aggregate fields; True if any changed.

    Runs on every report: fields are compared first and written only when they
    change (each model attribute write costs more than the comparison).
    """
    before = (state.status, state.records_written, state.last_loaded_timestamp, state.error_message)
    records = state.unattributed_records
    newest = state.last_loaded_timestamp
    for job in state.jobs:
        records += job.records_written
        newest = latest(newest, job.last_loaded_timestamp)
    if records != state.records_written:
        state.records_written = records
    if newest != state.last_loaded_timestamp:
        state.last_loaded_timestamp = newest
    if not closing(state.status):
        statuses = [j.status for j in state.jobs]
        failed = [j for j in state.jobs if j.status == JobStatus.ERROR]
        settled = all(s in TERMINAL_JOB for s in statuses)
        status = state.status
        if failed and (state.on_failure == "stop" or settled):
            status = QueueStatus.ERROR
            state.error_message = "; ".join(
                f"{j.target}/{j.type}: {j.error_message or 'failed'}" for j in failed
            )
        elif failed:
            status = QueueStatus.LOADING
        elif settled:
            done = all(s in (JobStatus.FINISHED, JobStatus.SKIPPED) for s in statuses)
            status = QueueStatus.FINISHED if done else QueueStatus.STOPPED
        elif any(s != JobStatus.PENDING for s in statuses):
            status = QueueStatus.LOADING
        if status != state.status:
            state.status = status
        if status in TERMINAL_QUEUE and not state.finished_at:
            state.finished_at = _last_end(state) or now
    after = (state.status, state.records_written, state.last_loaded_timestamp, state.error_message)
    return after != before
