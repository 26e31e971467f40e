"""Which pending jobs may launch now, and why the others wait.

Launching is event-driven and stateless: whichever function instance moves a
job to the status its dependents wait for (telemetry, a Job event, a start, a
retry) runs `admit` inside a compare-and-set. The jobs it admits are *claimed*
in that same write (status `launched`), so when two events race, only the
instance whose write wins launches them; the loser re-reads and finds them
claimed. Job names are deterministic, so even a retried launch of a claimed
job adopts the existing Job instead of creating a second.
"""

from __future__ import annotations

from shared.core import lifecycle, settling
from shared.core.models import JobState, JobStatus, Need, QueueState, QueueStatus, WaitReason
from shared.core.statuses import REACHED

_REACHED = REACHED


def _met(need: Need, state: QueueState, admitting: set[int]) -> bool:
    other = state.jobs[need.job]
    if need.until == "launched" and need.job in admitting:
        return True
    return other.status in _REACHED[need.until]


def _why(job: JobState, state: QueueState) -> tuple[WaitReason, str]:
    waits = []
    for need in job.needs:
        other = state.jobs[need.job]
        if other.status not in _REACHED[need.until]:
            verb = {"launched": "to launch", "running": "to run", "finished": "to finish"}[need.until]
            waits.append(f"{other.target}/{other.type} {verb} ({need.reason})")
    if not waits:
        return WaitReason.PARTNER, "waiting to launch together with its co-scheduled jobs"
    return WaitReason.INPUTS, "waiting for inputs: " + "; ".join(waits)


def _fixpoint(state: QueueState, allowed: set[str] | None) -> set[int]:
    admitting: set[int] = set()
    grew = True
    while grew:  # a connector is admitted with the loader it is co-scheduled with
        grew = False
        for job in state.jobs:
            if (job.status == JobStatus.PENDING and job.index not in admitting
                    and (allowed is None or job.id in allowed)
                    and all(_met(n, state, admitting) for n in job.needs)):
                admitting.add(job.index)
                grew = True
    return admitting


def ready(state: QueueState) -> list[JobState]:
    """Pending jobs whose inputs allow them to launch now, slots aside."""
    if lifecycle.closing(state.status):
        return []
    indexes = _fixpoint(state, None)
    return [j for j in state.jobs if j.index in indexes]


def admit(state: QueueState, now: str, claimed: list[str], *, allowed: set[str] | None = None,
          blocked: dict[str, str] | None = None) -> bool:
    """Claim every pending job whose needs are met (co-scheduled jobs together).

    With `allowed`, only those jobs may be claimed (the others lack a slot;
    `blocked` says why). Appends the claimed job ids to `claimed`; returns
    whether the state changed.
    """
    if lifecycle.closing(state.status):
        return False
    admitting = _fixpoint(state, allowed)
    blocked = blocked or {}
    changed = False
    for job in state.jobs:
        if job.index in admitting:
            job.status = JobStatus.LAUNCHED
            job.launched_at = now
            job.waiting = job.wait = None
            claimed.append(job.id)
            changed = True
        elif job.status == JobStatus.PENDING:
            wait, why = (WaitReason.SLOT, blocked[job.id]) if job.id in blocked else _why(job, state)
            if job.waiting != why or job.wait != wait:
                job.waiting, job.wait = why, wait
                changed = True
    return lifecycle.settle(state, changed, now)


def mark_created(state: QueueState, job_ids: set[str]) -> bool:
    changed = False
    for job in state.jobs:
        if job.id in job_ids and not job.created:
            job.created = True
            changed = True
    return changed


def rerun_set(state: QueueState, seeds: set[int]) -> set[int]:
    """The jobs to run again with `seeds`: what waits for them, directly or not (its output was
    made from theirs; a loader's connector with it). What they read stays (a connector run again
    reads its loader's topic from Kafka)."""
    return set(seeds) | settling.dependents(state, *seeds)


def _again(state: QueueState, job: JobState) -> None:
    """A new attempt: a new Job name and JOB_ID, so late telemetry of the last one cannot touch it."""
    from shared.core import naming

    job.attempt += 1
    name = naming.job_name(state.id, job.index, job.target, f"{job.type}-r{job.attempt}")
    job.id = job.job_name = name
    job.status = JobStatus.PENDING
    job.created = False
    job.records_written = 0
    job.last_loaded_timestamp = None
    job.gaps = []
    job.error_message = job.waiting = job.wait = job.launch_refused = None
    job.launched_at = job.started_at = job.finished_at = None


def _reopen(state: QueueState, indexes: set[int], now: str) -> bool:
    for job in state.jobs:
        if job.index in indexes:
            _again(state, job)
    state.status = QueueStatus.LOADING
    state.error_message = None
    state.finished_at = None
    state.cleanup = []
    return lifecycle.settle(state, True, now)


def _short(state: QueueState) -> set[int]:
    return {j.index for j in state.jobs if j.status in settling.SHORT}


def retry(state: QueueState, now: str) -> bool:
    """Re-run what failed, was skipped or was stopped by a failure, with `rerun_set`; keep
    what finished otherwise (of a partitioned queue: the other periods)."""
    if state.status != QueueStatus.ERROR:
        return False
    return _reopen(state, rerun_set(state, _short(state)), now)


def repair(state: QueueState, now: str) -> list[str]:
    """Re-run the jobs whose telemetry reported gaps (the periods with missing data), with
    `rerun_set`; of a failed queue, what `retry` re-runs too (else the failure would skip them
    again at once). The ids of the jobs it re-runs (none: nothing to repair, or the queue is not
    over yet)."""
    if state.status not in (QueueStatus.FINISHED, QueueStatus.ERROR):
        return []
    gapped = {j.index for j in state.jobs if j.gaps and j.status == JobStatus.FINISHED}
    if not gapped:
        return []
    if state.status == QueueStatus.ERROR:
        gapped |= _short(state)
    indexes = rerun_set(state, gapped)
    _reopen(state, indexes, now)
    return [state.jobs[i].id for i in sorted(indexes)]
