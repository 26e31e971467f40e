"""The wire models: commands in, telemetry in, queue state out.

Validation lives here so every entry point (HTTP, CloudEvent, Kafka) rejects
the same bad input with the same field-level message.
"""


from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from shared.core import constants
from shared.core.fields import (
    MAX_PARAMS,
    MAX_STRING,
    NAME_RE,
    QUEUE_OPTIONS,
    Count,
    Integer,
    Symbol,
    Target,
    TimeRange,
    TypeName,
    any_case,
    check_param,
    integer,
    params_schema,
)

MAX_REQUESTS = 50


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


class JobRequest(BaseModel):
    """One microservice run; every extra field is a parameter passed to its Job."""

    model_config = ConfigDict(extra="allow", strict=True, defer_build=True, json_schema_extra=params_schema)

    target: Target
    type: TypeName
    id: Annotated[str, StringConstraints(pattern=NAME_RE.pattern)] | None = Field(
        default=None, description="A name other requests can list in depends_on")
    depends_on: list[Integer | Annotated[str, StringConstraints(max_length=64)]] | None = Field(
        default=None, max_length=MAX_REQUESTS,
        description="Requests (index or id) this one waits for, besides those inferred from its inputs")

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if value not in constants.TARGETS:
            raise ValueError(f"unknown target {value!r}; known: {', '.join(constants.TARGETS)}")
        return value

    @model_validator(mode="after")
    def _check_params(self) -> Self:
        params = self.model_extra or {}
        if len(params) > MAX_PARAMS:
            raise ValueError(f"at most {MAX_PARAMS} parameters per request")
        for key, value in params.items():
            check_param(key, value)
        return self

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _with_queue_options(schema: dict[str, Any]) -> None:
    """The legacy form also takes the queue options (`QueueStart.parse`): the document says so."""
    options = QueueStart.model_json_schema()["properties"]
    schema["properties"].update({k: options[k] for k in QUEUE_OPTIONS})


class QueueCreate(BaseModel):
    """The seed's original single-loader command."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True, json_schema_extra=_with_queue_options)

    symbol: Symbol = Field(examples=["BTCUSDT"])
    type: TypeName = Field(description="Data acquisition method: api, ws, rest", examples=["api"])
    time_range: TimeRange = Field(examples=["2024-01-01:2024-01-03"])


class QueueStart(BaseModel):
    """A queue: one symbol and time range, one Job per request."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    symbol: Symbol = Field(examples=["BTCUSDT"])
    time_range: TimeRange = Field(examples=["2024-06-01:2024-06-30"])
    requests: list[JobRequest] = Field(min_length=1, max_length=MAX_REQUESTS)
    type: TypeName | None = Field(
        default=None, description="Queue-level type; the legacy form's acquisition method"
    )
    mode: Literal["dag", "sequential", "parallel"] = Field(
        default="dag", description="dag: wait for inputs; sequential: one after another; parallel: all at once")
    on_failure: Literal["stop", "continue"] = Field(
        default="stop", description="stop: a failure stops the queue; continue: independent branches finish")
    priority: Integer = Field(default=5, ge=1, le=10,
                              description="1 (lowest) to 10; first admitted when slots are short")
    timeout_seconds: integer(1, 30 * 86400) | None = Field(  # type: ignore[valid-type]
        default=None, description="The whole queue's deadline; overdue queues are stopped")
    allow_overlap: bool = Field(
        default=False, description="Allow requests overlapping an active queue's (target, type, symbol, range)")

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [r.id for r in self.requests if r.id is not None]
        if len(ids) != len(set(ids)):
            raise ValueError("request ids must be unique within a queue")
        return self

    @classmethod
    def parse(cls, payload: Any) -> Self:
        """Accept both the legacy QueueCreate and the multi-request form."""
        if isinstance(payload, dict) and "requests" not in payload:
            options = {k: payload[k] for k in QUEUE_OPTIONS if k in payload}
            legacy = QueueCreate.model_validate({k: v for k, v in payload.items() if k not in QUEUE_OPTIONS})
            return cls.model_validate({
                "symbol": legacy.symbol,
                "time_range": legacy.time_range,
                "type": legacy.type,
                "requests": [{"target": "loader-producer", "type": legacy.type}],
                **options,
            })
        return cls.model_validate(payload)


class QueueStop(BaseModel):
    """Stop a queue: its running Jobs are deleted, the rest never launch."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    queue_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    reason: Annotated[str, StringConstraints(max_length=MAX_STRING)] | None = None


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

class Telemetry(BaseModel):
    """What a Job reports on queue-control (the seed's format, plus the Job's identity)."""

    model_config = ConfigDict(extra="ignore", strict=True, defer_build=True)

    type: str = "telemetry"
    queue_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    job_id: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        default=None, description="The JOB_ID env given to the Job; absent for queue-level telemetry"
    )
    status: Annotated[str, StringConstraints(max_length=32),
                      Field(json_schema_extra={"pattern": any_case(sorted(TELEMETRY_STATUS))})] | None = Field(
        default=None, description="The job's status, in any letter case; absent for a progress-only report")
    records_written: Count | None = None
    last_loaded_timestamp: Annotated[str, StringConstraints(max_length=64)] | None = None
    started_at: Annotated[str, StringConstraints(max_length=64)] | None = None
    finished_at: Annotated[str, StringConstraints(max_length=64)] | None = None
    error_message: Annotated[str, StringConstraints(max_length=4096)] | None = None


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
    request_hash: str | None = None
    outbox: list[dict[str, Any]] = Field(
        default=[], description="Events written with the state, not yet published"
    )
