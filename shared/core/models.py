"""The wire models: commands in, telemetry in, queue state out.

Validation lives here so every entry point (HTTP, CloudEvent, Kafka) rejects
the same bad input with the same field-level message.
"""


from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from shared.core import clock, constants
from shared.core.documents import JobState as JobState
from shared.core.documents import JobStatus as JobStatus
from shared.core.documents import Need as Need
from shared.core.documents import Outcome as Outcome
from shared.core.documents import QueueState as QueueState
from shared.core.documents import QueueStatus as QueueStatus
from shared.core.documents import WaitReason as WaitReason
from shared.core.fields import (
    MAX_PARAMS,
    MAX_STRING,
    NAME_RE,
    QUEUE_OPTIONS,
    STAMP_PATTERN,
    Count,
    Integer,
    Symbol,
    Target,
    TimeRange,
    TypeName,
    any_case,
    check_param,
    integer,
    is_streaming,
    params_schema,
)

MAX_REQUESTS = 50
MAX_GAPS = 100
Partition = Literal["month", "day", "none"]
Stamp = Annotated[str, StringConstraints(max_length=64, pattern=STAMP_PATTERN)]


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
    partition: Partition | None = Field(
        default=None, description="One Job per calendar month or day of the range (none: one for the whole)")

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if value not in constants.TARGETS:
            raise ValueError(f"unknown target {value!r}; known: {', '.join(constants.TARGETS)}")
        return value

    @model_validator(mode="after")
    def _check_partition(self) -> Self:
        if self.partition in ("month", "day") and is_streaming(self.type):
            raise ValueError(f"{self.type} streams until stopped: a streaming request cannot be partitioned")
        return self

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
    partition: Partition | None = Field(
        default=None, description="The requests' default partition: one Job per month or day of the range")
    newest_first: bool = Field(default=False, description="Partitions run newest period first (default oldest)")
    force: bool = Field(default=False, description="Reload periods another queue already loaded or is loading")
    repair: bool = Field(default=False, description="Reload covered periods that have gaps; skip the rest")

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

class Gap(BaseModel):
    """An interval with no data: ISO-8601 times, `from` not after `to`."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True, populate_by_name=True)

    start: Stamp = Field(alias="from")
    end: Stamp = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        try:
            start, end = clock.parse(self.start), clock.parse(self.end)
        except ValueError:
            raise ValueError("gap times must be ISO-8601, e.g. 2024-06-03T10:00:00Z") from None
        if start > end:
            raise ValueError(f"gap starts ({self.start}) after it ends ({self.end})")
        return self


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
    gaps: list[Gap] | None = Field(default=None, max_length=MAX_GAPS,
                                   description="Intervals in the job's range with no data (an exchange outage)")

