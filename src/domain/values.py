"""Values the ports exchange: requests, outcomes and records, without behaviour."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.task import Task, TaskStatus


class EnqueueOutcome(StrEnum):
    CREATED = "created"
    EXISTING = "existing"  # same id, same name and payload: the earlier task stands
    REMOVED = "removed"  # same id as a task removed within the idempotency window
    CONFLICT = "conflict"  # the id is held by a task with another name or payload


@dataclass(frozen=True, slots=True)
class Enqueued:
    task: Task  # for REMOVED and CONFLICT, the request as it would have been stored
    outcome: EnqueueOutcome


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    tasks: list[Task]
    next_due_at: int | None = None  # earliest delayed task, when nothing was claimable


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """A listing: filters (None = any), then a page by `cursor` or by `offset`."""

    queue: str | None = None
    status: TaskStatus | None = None
    name: str | None = None
    search: str | None = None
    created_from: int | None = None
    created_to: int | None = None
    created_by: str | None = None
    limit: int = 20
    offset: int = 0
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class TaskPage:
    items: list[Task]
    total: int | None  # None where a capped scan cannot know it
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    paused: bool
    counts: dict[TaskStatus, int]
    type_counts: dict[str, dict[TaskStatus, int]]
    durations_ms: dict[str, list[int]]  # recent durations of completed tasks, per type
    finished_last_minute: int
    finished_last_hour: int


class StopKind(StrEnum):
    CANCEL = "cancel"  # stop the handler and record the task cancelled
    KILL = "kill"  # stop the handler; the task was already failed by the operator


@dataclass(frozen=True, slots=True)
class StopRequest:
    task_id: str
    queue: str
    kind: StopKind


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """A task moved: its new status (or "removed")."""

    task_id: str
    queue: str
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    worker_id: str
    queues: list[str]
    concurrency: int
    running: int
    processed: int
    started_at: int
    seen_at: int


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lock: valid for `ttl_ms` after its last acquire or extend."""

    resource: str
    ttl_ms: int
    token: str
