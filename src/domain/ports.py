"""Ports: what the application needs from storage and locking, in domain terms only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from domain.task import JSONObject, Task
from domain.templates import Template


class EnqueueOutcome(StrEnum):
    CREATED = "created"
    EXISTING = "existing"  # same id, same name and payload: the earlier task stands
    REMOVED = "removed"  # same id as a task removed within the idempotency window


@dataclass(frozen=True, slots=True)
class Enqueued:
    task: Task  # for REMOVED, the request as it would have been stored
    outcome: EnqueueOutcome


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    tasks: list[Task]
    next_due_at: int | None = None  # earliest delayed task, when nothing was claimable


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lock: valid for `ttl_ms` after its last acquire or extend."""

    resource: str
    ttl_ms: int
    token: str


class ITaskQueue(Protocol):
    """Durable task storage with atomic, fenced state transitions.

    Ordering: a claim takes due tasks by priority (lower first), then by the order they
    became ready (FIFO). Delayed tasks become claimable at `run_at`; a claim promotes
    every due one first, so no separate poller is needed.

    Delivery is at least once. A claim marks a task `active`, stamps a fresh fencing token
    (strictly increasing per queue) into `task.fence`, and gives it a lease of `lease_ms`.
    Only the holder of the current token can settle the task or extend its lease; anyone
    else gets `LockLost`. A lease that is not extended expires, and the task is then
    reported by `expired` so that it can be recovered as a stall.
    """

    async def enqueue(self, tasks: Sequence[Task]) -> list[Enqueued]:
        """Store new tasks atomically each, in one round trip for the whole sequence.

        An id already held by a task with the same name and payload answers EXISTING with
        that task; one removed within the idempotency window answers REMOVED. The same id
        with another name or payload raises `DuplicateTask` (in bulk: for the first one).
        """
        ...

    async def get(self, task_id: str, queue: str | None = None) -> Task:
        """The task with this id, in `queue` or else in any queue; `TaskNotFound` if none."""
        ...

    async def claim(
        self, queue: str, worker_id: str, limit: int, lease_ms: int, now: int
    ) -> ClaimBatch:
        """Take up to `limit` due tasks of `queue` (none while it is paused)."""
        ...

    async def wait_for_work(self, queues: Sequence[str], timeout_ms: int) -> None:
        """Block until a task may be claimable in one of `queues`, or the timeout passes.

        Wakes early when a task is enqueued or returned; it may wake spuriously.
        """
        ...

    async def settle(self, task: Task, *, lease_expired_by: int | None = None) -> None:
        """Write the outcome of an active task (its new state, decided by `Task`).

        Accepted only while `task.fence` is the task's current token: `LockLost` otherwise.
        With `lease_expired_by`, only if the lease also ran out before that time (recovery
        of a stalled task must not race a worker that is merely slow).
        """
        ...

    async def set_progress(self, task: Task, progress: Any) -> None:
        """Record progress of an active task; `LockLost` if the token is stale."""
        ...

    async def remove(self, task: Task) -> None:
        """Delete a task that is not active (`TaskActive` otherwise).

        Its id stays reserved for the idempotency window: a repeated enqueue with the
        same name and payload answers REMOVED, any other `DuplicateTask`.
        """
        ...

    async def extend_lease(self, task: Task, lease_ms: int, now: int) -> None:
        """Push the lease of an active task to `now + lease_ms`; `LockLost` if not ours."""
        ...

    async def expired(self, queue: str, now: int, limit: int) -> list[Task]:
        """Active tasks whose lease ran out before `now`: their worker vanished."""
        ...


class ILockService(Protocol):
    """A distributed lease on a named resource (Redlock), not a mutex.

    A lease is valid for `ttl_ms` after it was acquired or last extended; after that the
    resource is free for anyone, whatever the holder believes. Holders must extend well
    before expiry and must treat `LockLost` as "stop and record nothing".
    """

    async def acquire(self, resource: str, ttl_ms: int, max_extensions: int | None) -> Lease:
        """Take the lock once, without waiting; `LockNotAcquired` if someone holds it.

        The lease can be extended `max_extensions` times (None: without limit).
        """
        ...

    async def extend(self, lease: Lease) -> None:
        """Renew the lease for another `ttl_ms`; `LockLost` if it expired or was taken."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give the lock up. Releasing an expired lease is not an error."""
        ...


class ITemplateStore(Protocol):
    """Saved task definitions (seed 001's templates), kept until deleted.

    Ids are assigned by the store: decimal strings of a counter that only grows ("1",
    "2", ...), so an id is never reused, even after its template is removed. The store
    keeps what it is given; validating the task type and data is the caller's business.
    """

    async def add(self, name: str, task_type: str, data: JSONObject, now: int) -> Template:
        """Store a new template created at `now` (ms) under the next id, and return it."""
        ...

    async def list(self) -> list[Template]:
        """Every template, newest first (by creation time, then by id)."""
        ...

    async def get(self, template_id: str) -> Template:
        """The template with this id; `TemplateNotFound` if there is none."""
        ...

    async def remove(self, template_id: str) -> None:
        """Delete the template; `TemplateNotFound` if there is none."""
        ...
