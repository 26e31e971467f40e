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

from shared.core import clock, lineage, naming
from shared.core.errors import InvalidInput
from shared.core.models import JobState, JobStatus, Need, QueueStart, QueueState, QueueStatus, Telemetry

TERMINAL_JOB = frozenset({JobStatus.FINISHED, JobStatus.ERROR, JobStatus.STOPPED, JobStatus.SKIPPED})
TERMINAL_QUEUE = frozenset({QueueStatus.FINISHED, QueueStatus.STOPPED, QueueStatus.ERROR})


def closing(status: QueueStatus) -> bool:
    """Ended, or stopping: nothing new starts in the queue."""
    return status in TERMINAL_QUEUE or status == QueueStatus.STOPPING
_RANK = {JobStatus.PENDING: 0, JobStatus.LAUNCHED: 1, JobStatus.RUNNING: 2}

# What Jobs say in telemetry `status`, mapped to job statuses.
TELEMETRY_STATUS = {
    "pending": JobStatus.PENDING,
    "launched": JobStatus.LAUNCHED,
    "started": JobStatus.RUNNING,
    "running": JobStatus.RUNNING,
    "loading": JobStatus.RUNNING,
    "finished": JobStatus.FINISHED,
    "completed": JobStatus.FINISHED,
    "done": JobStatus.FINISHED,
    "error": JobStatus.ERROR,
    "failed": JobStatus.ERROR,
    "stopped": JobStatus.STOPPED,
    "cancelled": JobStatus.STOPPED,
}


def rank(status: JobStatus) -> int:
    return 3 if status in TERMINAL_JOB else _RANK[status]


def loader_type(target: str, type_: str) -> str:
    if target == "arango-connector":
        return "connector"
    if lineage.is_streaming(type_):
        return "stream"
    return "job"


def new_queue(*, queue_id: str, command: QueueStart, now: str,
              needs: list[list[Need]] | None = None) -> QueueState:
    start, end = command.time_range.split(":")
    jobs = []
    for index, request in enumerate(command.requests):
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
                kafka_topic=(
                    naming.dataset_name(command.symbol, request.type, command.time_range)
                    if produces_topic
                    else None
                ),
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


def _max_str(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _advance(job: JobState, status: JobStatus, now: str, error: str | None = None) -> bool:
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
        if status is not None:
            changed |= _advance(job, status, telemetry.finished_at or now, telemetry.error_message)
        written = telemetry.records_written
        if len(targets) == 1 and written is not None and written > job.records_written:
            job.records_written = written
            changed = True
        newest = _max_str(job.last_loaded_timestamp, telemetry.last_loaded_timestamp)
        if newest != job.last_loaded_timestamp:
            job.last_loaded_timestamp = newest
            changed = True
    return settle(state, changed, now)


def fail_job(state: QueueState, job_id: str, message: str, now: str) -> bool:
    """The manager's own finding that a job failed (its launch refused, its Job deleted by
    someone else): the job ends in error with `message`, and the failure policy runs."""
    job = find_job(state, job_id)
    changed = job is not None and _advance(job, JobStatus.ERROR, now, message)
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
            _skip(job, "skipped: queue stopped", now)
        else:
            _advance(job, JobStatus.STOPPED, now)
    state.status = QueueStatus.STOPPED
    state.finished_at = now
    state.updated_at = now
    return True


def dependents(state: QueueState, index: int) -> set[int]:
    """Every job that waits, directly or not, for job `index`."""
    found: set[int] = set()
    frontier = [index]
    while frontier:
        current = frontier.pop()
        for job in state.jobs:
            if job.index not in found and any(n.job == current for n in job.needs):
                found.add(job.index)
                frontier.append(job.index)
    return found


def _cascade_failures(state: QueueState, now: str) -> bool:
    """A failed job skips what waits for it; under `on_failure: stop`, everything else stops too."""
    failed = [j for j in state.jobs if j.status == JobStatus.ERROR]
    if not failed or closing(state.status):
        return False
    changed = False
    for job in failed:
        for index in sorted(dependents(state, job.index)):
            dep = state.jobs[index]
            if dep.status == JobStatus.PENDING:
                changed |= _skip(dep, f"skipped: input {job.target}/{job.type} failed", now)
    if state.on_failure == "stop":
        cause = failed[0]
        for job in state.jobs:
            if job.status == JobStatus.PENDING:
                changed |= _skip(job, f"skipped: queue stopped after {cause.target}/{cause.type} failed", now)
            elif job.status in (JobStatus.LAUNCHED, JobStatus.RUNNING):
                changed |= _advance(job, JobStatus.STOPPED, now)
                if job.created and job.job_name not in state.cleanup:
                    state.cleanup.append(job.job_name)
    return changed


def _skip(job: JobState, why: str, now: str) -> bool:
    if not _advance(job, JobStatus.SKIPPED, now):
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
        newest = _max_str(newest, job.last_loaded_timestamp)
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
