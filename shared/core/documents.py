"""The stored side of the wire models: the statuses, and the queue document kept in
`queue_state` with its jobs. `shared.core.models` re-exports all of it."""

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class QueueStatus(StrEnum):
    PENDING = "pending"
    LOADING = "loading"
    STOPPING = "stopping"
    FINISHED = "finished"
    STOPPED = "stopped"
    ERROR = "error"


class Outcome(StrEnum):
    """What became of one report (a Job's telemetry, or the cluster's word on a Job)."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"  # nothing new: a repeat, or out of date
    UNKNOWN_QUEUE = "unknown_queue"
    UNKNOWN_JOB = "unknown_job"
    NO_NEWS = "no_news"  # a cluster event that says nothing about the job's state


class WaitReason(StrEnum):
    """What a pending job waits for."""

    INPUTS = "inputs"  # jobs it needs have not reached the status it needs
    PARTNER = "partner"  # its co-scheduled jobs cannot launch with it yet
    SLOT = "slot"  # a concurrency slot (JOB_LIMITS), or queues of higher priority waiting first


class JobStatus(StrEnum):
    PENDING = "pending"
    LAUNCHED = "launched"
    RUNNING = "running"
    FINISHED = "finished"
    ERROR = "error"
    STOPPED = "stopped"
    SKIPPED = "skipped"


class Need(BaseModel):
    """What a job waits for: another job of the queue reaching a status (the one type for it:
    lineage plans with it, the queue document stores it)."""

    model_config = ConfigDict(defer_build=True)  # built on first use: each function needs a few

    job: int = Field(description="Index of the request waited for")
    until: Literal["launched", "running", "finished"] = Field(
        description="launched (co-scheduled), running or finished")
    reason: str = Field(description="The dataset, or depends_on, or the mode: shown when a job waits")


class JobState(BaseModel):
    """One request of a queue and the Job that runs it."""

    model_config = ConfigDict(defer_build=True)  # built on first use: each function needs a few

    id: str = Field(description="Stable id within the queue; the Job's JOB_ID env")
    index: int
    request_id: str | None = None
    streaming: bool = False
    needs: list[Need] = Field(default=[])
    waiting: str | None = Field(default=None, description="Why a pending job has not launched yet")
    wait: WaitReason | None = Field(default=None, description="What a pending job waits for")
    launch_refused: str | None = Field(
        default=None, description="Why the cluster refused this job's Job: its launch failed for good")
    attempt: int = 0
    created: bool = Field(default=False, description="The launcher confirmed the Job exists")
    target: str
    type: str
    params: dict[str, Any] = Field(default={})
    job_name: str
    loader_type: str
    kafka_topic: str | None = None
    status: JobStatus = JobStatus.PENDING
    records_written: int = 0
    last_loaded_timestamp: str | None = None
    error_message: str | None = None
    launched_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    request: int | None = Field(
        default=None, description="Index of the request it runs, in a partitioned queue (else its own index)")
    period: str | None = Field(default=None, description="The partition it loads (YYYY_MM, YYYY_MM_DD)")
    time_range: str | None = Field(default=None, description="Its own range, the period within the queue's")
    gaps: list[list[str]] = Field(default=[], description="Intervals [from, to] its telemetry said have no data")


class QueueState(BaseModel):
    """The document kept per queue in `queue_state` (the seed's fields plus the jobs)."""

    model_config = ConfigDict(defer_build=True)  # built on first use: each function needs a few

    id: str
    symbol: str
    type: str
    status: QueueStatus
    loader_type: str
    time_range: str
    start_time: str | None = None
    end_time: str | None = None
    last_loaded_timestamp: str | None = None
    records_written: int = 0
    error_message: str | None = None
    kafka_topic: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    stop_reason: str | None = None
    mode: str = "dag"
    on_failure: str = "stop"
    priority: int = 5
    deadline_at: str | None = None
    stop_requested_at: str | None = None
    seq: int = Field(default=0, description="Counts the queue's changes; the id of its live-update events")
    history: list[dict[str, Any]] = Field(
        default=[], description="The latest change events, for clients that reconnect")
    cleanup: list[str] = Field(default=[], description="Job names to delete (failure stop)")
    unattributed_records: int = Field(
        default=0, description="records_written from queue-level telemetry that names no job"
    )
    jobs: list[JobState] = Field(default=[])
    idempotency_key: str | None = None
    group: str | None = Field(default=None, description="The group (`symbols` start) the queue belongs to")
    request_hash: str | None = None
    outbox: list[dict[str, Any]] = Field(
        default=[], description="Events written with the state, not yet published"
    )
    partition: str | None = Field(default=None, description="The queue's default partition: month or day")
    skipped: list[dict[str, Any]] = Field(
        default=[], description="Periods not loaded at start because another queue covers them")

    def range_of(self, job: JobState) -> str:
        """The job's time range: its period's, in a partitioned queue; else the queue's."""
        return job.time_range or self.time_range
