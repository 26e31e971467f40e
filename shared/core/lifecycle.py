"""The state machine, in one place, as pure functions over `QueueState`.

Job statuses move only forward:

    pending -> launched -> running -> finished | error | stopped | skipped

and a terminal one (the last four) never changes again. A queue's status is
derived from its jobs (an error -> error, at once under `on_failure: stop`,
once the rest has ended under `continue`; all finished/skipped -> finished;
something launched or running -> loading) except for a stop, which sets
`stopping` and, once the cluster has nothing of the queue left, `stopped`.
A terminal queue (finished, stopped, error) never regresses; only an explicit
retry reopens a failed one. Counters only move up: `records_written` is the
Job's running total, so a duplicate or reordered report is harmless. Every
function returns whether it changed anything, which is how duplicates are
counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.core import clock, lineage, naming, partitions
from shared.core.errors import InvalidInput
from shared.core.models import (
    TELEMETRY_STATUS,
    JobState,
    JobStatus,
    Need,
    QueueStart,
    QueueState,
    QueueStatus,
    Telemetry,
)
from shared.core.settling import settle, skip
from shared.core.statuses import TERMINAL_JOB as TERMINAL_JOB
from shared.core.statuses import TERMINAL_QUEUE as TERMINAL_QUEUE
from shared.core.statuses import advance, latest
from shared.core.statuses import closing as closing
from shared.core.statuses import rank as rank


def loader_type(target: str, type_: str) -> str:
    if target == "arango-connector":
        return "connector"
    if lineage.is_streaming(type_):
        return "stream"
    return "job"


def new_queue(*, queue_id: str, command: QueueStart, now: str,
              needs: list[list[Need]] | None = None, units: list[partitions.Unit] | None = None) -> QueueState:
    """The queue document of a start: one job per unit (`partitions.units`), `needs` by unit."""
    start, end = command.time_range.split(":")
    if units is None:
        units = partitions.units(command)
    partitioned = any(u.period is not None for u in units)  # then a job's index is no request's
    jobs = []
    for index, unit in enumerate(units):
        request = unit.spec
        name = naming.job_name(queue_id, index, request.target, request.type)
        produces_topic = request.target in ("loader-producer", "arango-connector")
        jobs.append(
            JobState(
                id=name,
                index=index,
                request_id=request.id,
                streaming=lineage.is_streaming(request.type),
                needs=list(needs[index]) if needs else [],
                target=request.target,
                type=request.type,
                params=request.params,
                job_name=name,
                loader_type=loader_type(request.target, request.type),
                kafka_topic=(naming.dataset(command.symbol, request.type, unit.dataset_period)
                             if produces_topic else None),
                request=unit.request if partitioned else None,
                period=unit.period,
                time_range=unit.time_range if unit.period is not None else None,
            )
        )
    single = jobs[0] if len(jobs) == 1 else None
    return QueueState(
        id=queue_id,
        symbol=command.symbol,
        type=command.type or "pipeline",
        status=QueueStatus.PENDING,
        loader_type=single.loader_type if single else "pipeline",
        time_range=command.time_range,
        partition=command.partition if command.partition != "none" else None,
        start_time=start,
        end_time=end,
        kafka_topic=single.kafka_topic if single else None,
        mode=command.mode,
        on_failure=command.on_failure,
        priority=command.priority,
        deadline_at=None if command.timeout_seconds is None else clock.plus(now, command.timeout_seconds),
        started_at=now,
        updated_at=now,
        jobs=jobs,
    )


def find_job(state: QueueState, job_id: str) -> JobState | None:
    for job in state.jobs:
        if job_id in (job.id, job.job_name, str(job.index)):
            return job
    return None


def check_telemetry(telemetry: Telemetry) -> JobStatus | None:
    """The job status a report names, if any.

    :raises InvalidInput: unknown status word.
    """
    if telemetry.status is None:
        return None
    status = TELEMETRY_STATUS.get(telemetry.status.lower())
    if status is None:
        raise InvalidInput(
            f"unknown telemetry status {telemetry.status!r}",
            details=[{"loc": ["status"], "msg": f"one of {sorted(TELEMETRY_STATUS)}"}],
        )
    return status


@dataclass(frozen=True)
class Effect:
    """What one report changed in a queue. False when it told us nothing new."""

    applied: bool
    moved: tuple[str, ...] = ()
    """Jobs whose status changed (the failure policy's skips and stops included)."""
    ended: tuple[str, ...] = ()
    """Of those, the ones that ended."""

    def __bool__(self) -> bool:
        return self.applied


def apply_telemetry(state: QueueState, telemetry: Telemetry, now: str) -> Effect:
    """Merge one telemetry message, and say what it changed.

    :raises InvalidInput: unknown status word.
    """
    before = [j.status for j in state.jobs]
    applied = _apply(state, telemetry, now)
    if not applied:
        return Effect(False)
    moved = tuple(j.id for j, was in zip(state.jobs, before, strict=True) if j.status != was)
    return Effect(True, moved, tuple(j.id for j in state.jobs if j.id in moved and j.status in TERMINAL_JOB))


def _apply(state: QueueState, telemetry: Telemetry, now: str) -> bool:
    status = check_telemetry(telemetry)
    if telemetry.job_id is not None:
        job = find_job(state, telemetry.job_id)
        targets = [job] if job else []
    elif len(state.jobs) == 1:
        targets = list(state.jobs)
    else:
        targets = []
    changed = False
    if not targets:
        # Queue-level telemetry: a terminal status applies to every unfinished job.
        if telemetry.records_written is not None and telemetry.records_written > state.unattributed_records:
            state.unattributed_records = telemetry.records_written
            changed = True
        targets = list(state.jobs) if status in TERMINAL_JOB else []
        if status not in TERMINAL_JOB:
            status = None
    for job in targets:
        if status is not None and status not in (JobStatus.PENDING, JobStatus.LAUNCHED) and not job.started_at \
                and job.status not in TERMINAL_JOB and _stamp(telemetry.started_at):
            job.started_at = telemetry.started_at  # when the Job says it started (the history's durations)
            changed = True
        if status is not None:
            changed |= advance(job, status, telemetry.finished_at or now, telemetry.error_message)
        written = telemetry.records_written
        if len(targets) == 1 and written is not None and written > job.records_written:
            job.records_written = written
            changed = True
        newest = latest(job.last_loaded_timestamp, telemetry.last_loaded_timestamp)
        if newest != job.last_loaded_timestamp:
            job.last_loaded_timestamp = newest
            changed = True
        if len(targets) == 1 and telemetry.gaps:
            changed |= _add_gaps(job, telemetry)
    return settle(state, changed, now)


def _stamp(text: str | None) -> bool:
    if not text:
        return False
    try:
        clock.parse(text)
    except ValueError:
        return False
    return True


MAX_JOB_GAPS = 200


def _add_gaps(job: JobState, telemetry: Telemetry) -> bool:
    """Keep the gaps a job reported (a repeat adds nothing), oldest first, at most MAX_JOB_GAPS."""
    known = {tuple(g) for g in job.gaps}
    new = {(g.start, g.end) for g in telemetry.gaps or ()} - known
    if not new or len(known) >= MAX_JOB_GAPS:
        return False
    job.gaps = [list(g) for g in sorted(known | new)[:MAX_JOB_GAPS]]
    return True


def fail_job(state: QueueState, job_id: str, message: str, now: str) -> bool:
    """The manager's own finding that a job failed (its launch refused, its Job deleted by
    someone else): the job ends in error with `message`, and the failure policy runs."""
    job = find_job(state, job_id)
    changed = job is not None and advance(job, JobStatus.ERROR, now, message)
    return settle(state, changed, now)


def request_stop(state: QueueState, reason: str | None, now: str) -> bool:
    """`stopping`: the Jobs are told to stop; `stopped` comes when none is left."""
    if closing(state.status):
        return False
    state.status = QueueStatus.STOPPING
    state.stop_reason = reason or "stopped by user"
    state.stop_requested_at = now
    state.updated_at = now
    return True


def finish_stop(state: QueueState, now: str) -> bool:
    """The cluster confirmed no Job or pod of the queue is left."""
    if state.status != QueueStatus.STOPPING:
        return False
    for job in state.jobs:
        if job.status == JobStatus.PENDING:
            skip(job, "skipped: queue stopped", now)
        else:
            advance(job, JobStatus.STOPPED, now)
    state.status = QueueStatus.STOPPED
    state.finished_at = now
    state.updated_at = now
    return True
