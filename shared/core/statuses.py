"""Which statuses are final, and the one forward-only move a job's status makes."""

from __future__ import annotations

import functools

from shared.core import clock
from shared.core.models import JobState, JobStatus, QueueStatus

TERMINAL_JOB = frozenset({JobStatus.FINISHED, JobStatus.ERROR, JobStatus.STOPPED, JobStatus.SKIPPED})
TERMINAL_QUEUE = frozenset({QueueStatus.FINISHED, QueueStatus.STOPPED, QueueStatus.ERROR})
_RANK = {JobStatus.PENDING: 0, JobStatus.LAUNCHED: 1, JobStatus.RUNNING: 2}
REACHED = {
    "launched": (JobStatus.LAUNCHED, JobStatus.RUNNING, JobStatus.FINISHED),
    "running": (JobStatus.RUNNING, JobStatus.FINISHED),
    "finished": (JobStatus.FINISHED,),
}
"""The statuses that satisfy a need's `until`."""


def closing(status: QueueStatus) -> bool:
    """Ended, or stopping: nothing new starts in the queue."""
    return status in TERMINAL_QUEUE or status == QueueStatus.STOPPING


def rank(status: JobStatus) -> int:
    return 3 if status in TERMINAL_JOB else _RANK[status]


def advance(job: JobState, status: JobStatus, now: str, error: str | None = None) -> bool:
    """Move the job forward to `status`; False if that is not forward (or it has ended)."""
    if job.status in TERMINAL_JOB or rank(status) <= rank(job.status):
        return False
    job.status = status
    if status == JobStatus.LAUNCHED:
        job.launched_at = job.launched_at or now
    if status == JobStatus.RUNNING:
        job.started_at = job.started_at or now
    if status in TERMINAL_JOB:
        job.finished_at = job.finished_at or now
    if status == JobStatus.ERROR and error:
        job.error_message = error
    return True


@functools.lru_cache(maxsize=4096)  # a job's load time repeats in every report until it moves
def _order(stamp: str) -> tuple[int, object, str]:
    try:
        return 1, clock.parse(stamp), stamp
    except ValueError:  # not a time: below every time, among themselves by text
        return 0, "", stamp


def latest(a: str | None, b: str | None) -> str | None:
    """The later of two load times, as times: `…T00:00:00.5Z` is after `…T00:00:00Z`, though
    not as text; a stamp that is no time ranks below every time (one total order, so the
    result is the same in any order of reports)."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    return max(a, b, key=_order)
