"""Which statuses are final, and the one forward-only move a job's status makes."""

from __future__ import annotations

import re

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
# UTC stamps of one shape compare as text; any other pair is compared as times.
_CANONICAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z")


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


def _order(stamp: str) -> tuple[int, object, str]:
    try:
        return 1, clock.parse(stamp), stamp
    except ValueError:  # not a time: below every time, among themselves by text
        return 0, "", stamp


def latest(a: str | None, b: str | None) -> str | None:
    """The later of two load times, as times: `…T00:00:00.5Z` is after `…T00:00:00Z`, though
    not as text. Two UTC stamps of one shape (same length) compare as text, unparsed."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    if len(a) == len(b) and _CANONICAL.fullmatch(a) and _CANONICAL.fullmatch(b):
        return max(a, b)
    return max(a, b, key=_order)
