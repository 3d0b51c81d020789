"""Values the ports exchange: requests, outcomes and records, without behaviour."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from domain.task import StopKind, Task, TaskStatus


class EnqueueOutcome(StrEnum):
    CREATED = "created"
    EXISTING = "existing"  # same id, same name and payload: the earlier task stands
    REMOVED = "removed"  # same id as a task removed within the idempotency window
    CONFLICT = "conflict"  # the id is held by a task with another name or payload


# The Redis commands a handler's fenced write may run, by the shape of their arguments: each
# writes the one key it names, and no other.
FENCED_COMMANDS = frozenset({"SET", "DEL", "PEXPIRE", "INCRBY", "HSET", "HINCRBY", "RPUSH", "SADD"})


@dataclass(frozen=True, slots=True)
class FencedWrite:
    """One of a handler's own writes: `command` (one of FENCED_COMMANDS) on the effect key
    `name` of the task's queue, with `args`. The store runs it only while the execution
    that asks still holds the task (`ctx.fenced`)."""

    command: str
    name: str
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.command not in FENCED_COMMANDS:
            raise ValueError(f"{self.command!r} is not a fenced write")


@dataclass(frozen=True, slots=True)
class Enqueued:
    task: Task  # for REMOVED and CONFLICT, the request as it would have been stored
    outcome: EnqueueOutcome


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """A worker asking for up to `limit` tasks, leased for `lease_ms` from `now`."""

    worker_id: str
    limit: int
    lease_ms: int
    now: int


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    tasks: list[Task]
    next_due_at: int | None = None  # earliest delayed task, when nothing was claimable
    # task id -> its lock, for the tasks whose lock was taken with the claim
    leases: Mapping[str, Lease] = field(default_factory=dict)


class LeaseState(StrEnum):
    """What renewing a running task's lease found."""

    HELD = "held"
    CANCEL_REQUESTED = "cancel_requested"  # held, and an operator asked to cancel the task
    LOST = "lost"  # no longer this holder's: someone else may run the task now


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


MINUTE_MS = 60_000
MINUTES_KEPT = 60  # the per-minute series: this many whole minutes, and the current one


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """Tasks that finished (any terminal status) in the minute starting at `at` (ms since
    the epoch), and how many of them failed."""

    at: int
    finished: int
    failed: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    paused: bool
    counts: dict[TaskStatus, int]
    type_counts: dict[str, dict[TaskStatus, int]]
    durations_ms: dict[str, list[int]]  # recent durations of completed tasks, per type
    finished_last_minute: int
    finished_last_hour: int
    per_minute: tuple[MinuteCount, ...] = ()  # the last MINUTES_KEPT whole minutes, and now's


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
    """A held lock: valid for `ttl_ms` after its last acquire or extend.

    `with_task` marks a lock the task store took with the claim, because the lock lives
    where the tasks do: the store renews it with the task's lease and releases it with the
    outcome, and `token` is the lock's value. Any other lease is the lock service's, and
    `token` is its handle there."""

    resource: str
    ttl_ms: int
    token: str
    with_task: bool = False
