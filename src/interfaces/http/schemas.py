"""The wire format: request and response models in the seeds' camelCase."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from application.enqueue_task import EnqueueRequest
from domain.task import PRIORITY_LIMIT, Backoff
from interfaces.http.values import (
    TEN_YEARS_MS,
    BackoffDelay,
    DueTime,
    Payload,
    WireBool,
    WireFloat,
    WireInt,
    millis,
)

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EARLIEST_MS = (_EARLIEST - _EPOCH) // timedelta(milliseconds=1)
_LATEST_MS = (_LATEST - _EPOCH) // timedelta(milliseconds=1)


def _from_millis(value: Any) -> Any:
    if not isinstance(value, int):
        return value
    if _EARLIEST_MS < value < _LATEST_MS:
        return _EPOCH + timedelta(milliseconds=value)  # exact: value / 1000 rounds far ones
    # A stored time outside datetime's years 1-9999 (written before due times were
    # bounded, say) shows as the nearest one it can: one such task must not fail a whole
    # page of a listing.
    return _EARLIEST if value <= _EARLIEST_MS else _LATEST


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def time_text(value: int) -> str:
    """A stored time (ms) as the wire writes it: ISO 8601, UTC, to the millisecond (what
    `_iso(_from_millis(value))` gives; the second's text is kept, since an answer's times
    mostly share their second)."""
    if not _EARLIEST_MS < value < _LATEST_MS:
        return _iso(_from_millis(value))
    second, millisecond = divmod(value, 1000)
    return f"{_second_text(second)}.{millisecond:03d}Z"


@functools.lru_cache(maxsize=256)
def _second_text(second: int) -> str:
    return datetime.fromtimestamp(second, tz=UTC).replace(tzinfo=None).isoformat()


Timestamp = Annotated[
    datetime, BeforeValidator(_from_millis), PlainSerializer(_iso, return_type=str)
]


class WireModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, from_attributes=True, extra="forbid"
    )


class BackoffBody(WireModel):
    """BullMQ's `{type, delay}`, plus the factor, cap and jitter of Conveyor's policy; a
    bare number is BullMQ's shorthand for `{delay}`."""

    type: Literal["exponential", "fixed"] = "exponential"
    delay: BackoffDelay = 1_000
    factor: WireFloat = Field(default=2.0, ge=1.0, le=100.0)
    max_delay: BackoffDelay = 300_000
    jitter: WireBool = True

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # Read here, not as `BackoffBody | int`: a union's errors name its members
        # (`backoff.BackoffBody.delay`), and a bad delay is `backoff.delay` either way.
        if isinstance(value, int) and not isinstance(value, bool):
            return {"delay": value}
        if isinstance(value, dict | BackoffBody):
            return value
        raise PydanticCustomError("backoff_type", "Input should be an object or a number of ms")

    def to_domain(self) -> Backoff:
        factor = 1.0 if self.type == "fixed" else self.factor
        jitter = self.jitter and self.type == "exponential"
        return Backoff(self.delay, factor, max(self.max_delay, self.delay), jitter)


class EnqueueBody(WireModel):
    """Strict numbers: `true` or `"100"` is a 422, not a 1 or a 100 (the seeds' own routes
    stay lenient, for the clients written against them)."""

    task_name: str = Field(min_length=1, max_length=200)
    payload: Payload = Field(default_factory=dict)
    delay_ms: WireInt | None = Field(default=None, ge=0, le=TEN_YEARS_MS)
    run_at: DueTime | None = None
    priority: WireInt | None = Field(default=None, ge=-PRIORITY_LIMIT, le=PRIORITY_LIMIT)
    custom_job_id: str | None = Field(default=None, pattern=ID_PATTERN)
    attempts: WireInt | None = Field(default=None, ge=1, le=1_000)
    backoff: BackoffBody | None = Field(
        default=None, description="an object, or a number: the delay in ms (BullMQ's shorthand)"
    )
    timeout_ms: WireInt | None = Field(default=None, ge=1, le=TEN_YEARS_MS)
    queue: str | None = Field(default=None, pattern=ID_PATTERN)
    group: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="a tenant: a queue serves its groups in turn, within each group's limits",
    )

    @model_validator(mode="after")
    def _one_due_time(self) -> EnqueueBody:
        if self.delay_ms is not None and self.run_at is not None:
            raise ValueError("give delayMs or runAt, not both")
        return self

    def to_request(self, created_by: str | None = None) -> EnqueueRequest:
        return EnqueueRequest(
            task_name=self.task_name,
            payload=self.payload,
            task_id=self.custom_job_id,
            queue=self.queue,
            priority=self.priority,
            delay_ms=self.delay_ms,
            run_at=None if self.run_at is None else millis(self.run_at),
            attempts=self.attempts,
            backoff=_backoff(self.backoff),
            timeout_ms=self.timeout_ms,
            created_by=created_by,
            group=self.group,
        )


def _backoff(value: BackoffBody | None) -> Backoff | None:
    return None if value is None else value.to_domain()


class BackoffOut(WireModel):
    delay_ms: int
    factor: float
    max_delay_ms: int
    jitter: bool


class ErrorOut(WireModel):
    type: str
    message: str
    traceback: str = ""


def _known_fence(value: Any) -> Any:
    return value or None  # 0: an entry recorded before the history kept tokens


class AttemptOut(WireModel):
    """One execution: which worker ran it, under which fencing token, and how it ended."""

    worker_id: str
    started_at: Timestamp
    finished_at: Timestamp
    outcome: str
    fence: Annotated[int | None, BeforeValidator(_known_fence)] = Field(
        description="the fencing token the execution held; null when not recorded"
    )


class TaskOut(WireModel):
    """A task on the wire: the bare object, `status` at its top level."""

    id: str
    task_name: str = Field(validation_alias=AliasChoices("name", "taskName"))  # entity, wire
    payload: dict[str, Any]
    queue: str
    priority: int
    status: str
    attempts: int
    max_attempts: int
    stalls: int
    backoff: BackoffOut
    timeout_ms: int
    run_at: Timestamp
    created_at: Timestamp
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    result: Any = None
    error: ErrorOut | None = None
    progress: Any = None
    worker_id: str | None = None
    fence: int
    history: list[AttemptOut]
    created_by: str | None = None
    group: str | None = None


class RemovedOut(WireModel):
    id: str
    status: Literal["removed"] = "removed"


class ErrorBody(BaseModel):
    """Every error response: what went wrong, in words, and which fields."""

    error: str
    detail: str
    fields: dict[str, str] | None = None


class HealthOut(BaseModel):
    status: str


class PageOut(WireModel):
    items: list[TaskOut]
    total: int | None
    next_cursor: str | None


class BulkEnqueueBody(WireModel):
    tasks: list[EnqueueBody] = Field(min_length=1, max_length=1_000)


class BulkItemOut(WireModel):
    """One task of a bulk enqueue: `status` is the task's, or `removed`, or `conflict`."""

    id: str
    status: str
    task: TaskOut | None = None


class BulkEnqueueOut(WireModel):
    batch_id: str
    tasks: list[BulkItemOut]


class IdsBody(WireModel):
    ids: list[str | int] = Field(min_length=1, max_length=1_000)

    @field_validator("ids", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        if isinstance(value, list) and any(isinstance(item, bool) for item in value):
            raise ValueError("ids are strings or integers, not true or false")
        return value

    def task_ids(self) -> list[str]:
        """Seed 001 sends numeric ids; ours are strings."""
        return [str(task_id) for task_id in self.ids]


class BulkOutcomeOut(WireModel):
    id: str
    outcome: Literal["ok", "not_found", "conflict"]
    status: str | None = None
    detail: str | None = None


class BulkOutcomesOut(WireModel):
    results: list[BulkOutcomeOut]


class DuplicateBody(WireModel):
    run_at: DueTime | None = None

    def run_at_ms(self) -> int | None:
        return None if self.run_at is None else millis(self.run_at)


class DurationsOut(WireModel):
    p50: int | None
    p95: int | None


class TypeStatsOut(WireModel):
    counts: dict[str, int]
    duration_ms: DurationsOut


class QueueStatsOut(WireModel):
    waiting: int
    active: int
    completed: int
    failed: int
    delayed: int
    cancelled: int
    paused: bool


class MinuteOut(WireModel):
    """One minute of the series: the tasks that finished in it (any terminal status),
    and how many of them failed."""

    at: Timestamp = Field(description="the start of the minute")
    finished: int
    failed: int


class ThroughputOut(WireModel):
    last_minute: int
    last_hour: int
    per_minute: list[MinuteOut] = Field(
        description="the last 60 whole minutes and the current one, oldest first, summed "
        "over the queues"
    )


class StatsOut(WireModel):
    waiting: int
    active: int
    completed: int
    failed: int
    delayed: int
    cancelled: int
    queues: dict[str, QueueStatsOut]
    task_types: dict[str, TypeStatsOut]
    throughput: ThroughputOut


class BatchOut(WireModel):
    batch_id: str
    total: int
    finished: bool
    counts: dict[str, int]
    tasks: list[TaskOut]


class QueueStateOut(WireModel):
    queue: str
    paused: bool


class WorkerOut(WireModel):
    worker_id: str
    queues: list[str]
    concurrency: int
    running: int
    processed: int
    started_at: Timestamp
    seen_at: Timestamp


class WorkersOut(WireModel):
    workers: list[WorkerOut]
