"""Ports: what the application needs from storage and locking, in domain terms only.

The task store is three ports, by reader: the transitions (what moves a task), the views
(what reads tasks), and the feed (what is pushed: work to claim, events, stop requests).
The values they exchange are in `domain.values`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from domain.audit import AuditEntry
from domain.limits import LimitsView, QueueLimits
from domain.schedule import Cadence, Schedule
from domain.task import JSONObject, StopKind, Task, TaskStatus
from domain.templates import Template
from domain.values import (
    ClaimBatch,
    ClaimRequest,
    Enqueued,
    FencedWrite,
    Lease,
    LeaseState,
    QueueStats,
    StopRequest,
    TaskEvent,
    TaskPage,
    TaskQuery,
    WorkerInfo,
)


class EventFeed(Protocol):
    """One reader's live feed of task transitions (see ITaskFeed.events)."""

    @property
    def ended(self) -> str | None:
        """Why the feed ended; None while it runs. "lagged": the reader fell further behind
        than its buffer; "lost": the subscription broke, so transitions may be missing;
        "shutdown": the process is stopping; "closed": the reader closed it. An ended feed
        delivers nothing more: subscribe again (and read the tasks again) to go on."""
        ...

    async def next_batch(self, timeout_s: float) -> list[TaskEvent]:
        """The transitions since the previous call, in order, waiting up to `timeout_s`
        for some: [] when none came in time, or once the feed has ended."""
        ...

    def close(self) -> None:
        """The reader is done (idempotent)."""
        ...


class ITaskTransitions(Protocol):
    """Durable task storage with atomic, fenced state transitions.

    Ordering: a claim takes due tasks by priority (lower first), then by the order they
    became ready (FIFO). Delayed tasks become claimable at `run_at`; a claim promotes
    every due one first, so no separate poller is needed.

    Delivery is at least once. A claim marks a task `active`, stamps a fresh fencing token
    (strictly increasing per queue) into `task.fence`, and gives it a lease of `lease_ms`.
    Only the holder of the current token can settle the task or extend its lease; anyone
    else gets `LockLost`. A lease that is not extended expires, and the task is then
    reported by `expired` so that it can be recovered as a stall.

    Where the lock of a task lives with the tasks (one Redis, no other lock master), the
    store takes it with the claim (`ClaimBatch.leases`, `Lease.with_task`), renews it with
    the lease and releases it with the outcome: the worker sends nothing of its own for it.
    """

    async def enqueue(self, tasks: Sequence[Task], batch_id: str | None = None) -> list[Enqueued]:
        """Store new tasks atomically each, in one round trip for the whole sequence.

        With `batch_id`, the tasks are also recorded as that batch (see `batch`).

        An id already held by a task with the same name and payload answers EXISTING with
        that task; one removed within the idempotency window answers REMOVED. The same id
        with another name or payload answers CONFLICT and stores nothing for that task.

        A queue with a depth limit holds at most that many unfinished tasks (waiting,
        delayed, active): if the call's new tasks (repeats of stored ids are not new) would
        take one past it, the call stores nothing, in any queue, and raises QueueFull.
        """
        ...

    async def claim(
        self, queue: str, worker_id: str, limit: int, lease_ms: int, now: int
    ) -> ClaimBatch:
        """Take up to `limit` due tasks of `queue` (none while it is paused), and the locks
        of those whose lock the store can take with them."""
        ...

    async def claim_queues(
        self, quotas: Sequence[tuple[str, int]], request: ClaimRequest
    ) -> ClaimBatch:
        """Take up to `request.limit` due tasks of several queues, as `claim` does: each
        queue up to its quota, in order, then the slots left to the queues in that same
        order, each giving what it has ready. Where the store can, this is one atomic step
        (so a queue listed later gets a slot only if the earlier ones had nothing ready for
        it); otherwise the quotas are claimed together and the rest queue by queue.
        `next_due_at`: the earliest due time of the unpaused queues' delayed tasks, when
        nothing was claimed."""
        ...

    async def settle(
        self, task: Task, *, lease: Lease | None = None, then: ClaimRequest | None = None
    ) -> ClaimBatch:
        """Write the outcome of an active task (its new state, decided by `Task`), and
        with `then`, claim the next tasks of its queue in the same step.

        Accepted only while `task.fence` is the task's current token: `LockLost` otherwise,
        and nothing is claimed. The same outcome sent again under the same token (a retry
        whose first answer was lost) is accepted again. A `lease` the store took with the
        claim is released whatever the outcome; any other lease is the caller's to release.
        """
        ...

    async def recover(self, task: Task, expired_by: int) -> None:
        """Write the outcome of a stall (decided by `Task.stalled`): only if `task.fence`
        is still current and the lease ran out before `expired_by`, so that a worker
        that is merely slow, and renewed meanwhile, keeps its task. `LockLost` otherwise."""
        ...

    async def change(self, task: Task, previous: Task, *, stop: StopKind | None = None) -> None:
        """Write an operator's change of a task read as `previous`.

        Accepted only if the task still has the status and fencing token it had then;
        `TaskChanged` otherwise (read it again and decide anew). With `stop`, the worker
        running it, if any, is told to stop its handler.
        """
        ...

    async def request_cancel(self, task: Task) -> None:
        """Ask the worker running an active task to cancel it; the worker records the
        outcome. `TaskChanged` if the task is no longer active."""
        ...

    async def extend_leases(
        self, held: Sequence[tuple[Task, Lease | None]], lease_ms: int, now: int
    ) -> list[LeaseState]:
        """Push the leases of a worker's running tasks to `now + lease_ms` in one step, and
        the locks taken with them (`Lease.with_task`). For each task, in order: HELD,
        CANCEL_REQUESTED (held, and an operator asked to cancel it), or LOST (not its
        holder's any more: stop before a second run overlaps)."""
        ...

    async def set_progress(self, task: Task, progress: Any) -> None:
        """Record progress of an active task; `LockLost` if the token is stale."""
        ...

    async def write_fenced(self, task: Task, write: FencedWrite) -> Any:
        """Run a handler's own write on the effect key `effect_key(task.queue, write.name)`,
        in the same atomic step as the check that `task` is active under its token:
        `LockLost` (and nothing written) otherwise. Redis's reply (SET: None); a
        ValueError when the key holds another type."""
        ...

    def effect_key(self, queue: str, name: str) -> str:
        """The Redis key a fenced write named `name` writes: in the queue's hash slot."""
        ...

    async def remove(self, task: Task) -> None:
        """Delete a task that is not active (`TaskActive` otherwise).

        Its id stays reserved for the idempotency window: a repeated enqueue with the
        same name and payload answers REMOVED, any other CONFLICT.
        """
        ...

    async def sweep(
        self,
        queue: str,
        finished_before: Mapping[TaskStatus, int],
        limit: int,
        keep: Mapping[TaskStatus, int] | None = None,
    ) -> int:
        """Retention: remove up to `limit` terminal tasks, oldest first, that finished
        before the time given for their status, or that are behind the newest `keep[status]`
        of it (ids stay reserved as with `remove`). The number removed."""
        ...

    async def set_paused(self, queue: str, paused: bool) -> None:
        """A paused queue hands out no task; running ones finish."""
        ...

    async def expired(self, queue: str, now: int, limit: int) -> list[Task]:
        """Active tasks whose lease ran out before `now`: their worker vanished."""
        ...


class ITaskViews(Protocol):
    """Reads of stored tasks: one by id, pages of a listing, counts, batches. None of them
    scans every task."""

    async def get(self, task_id: str, queue: str | None = None) -> Task:
        """The task with this id, in `queue` or else in any queue; `TaskNotFound` if none."""
        ...

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        """Newest first. Filters on status, name, queue and creation time use indexes;
        `search` (whitespace alone is no search) matches an id prefix or the words of
        the name and string payload values, and falls back to a scan capped per call
        (then `total` is None). Tasks matching an id prefix come by id, descending;
        there `total` and `offset` count every id match, and the other filters only thin
        the page (it may hold fewer than `limit` tasks while `next_cursor` goes on)."""
        ...

    async def stats(self, now: int) -> list[QueueStats]:
        """Counts per queue, status and task type, recent durations, throughput: O(1) per
        queue and type, never a scan of tasks. Each queue's `per_minute` holds the
        MINUTES_KEPT whole minutes before `now`'s and `now`'s own, oldest first, every
        one of them (zeros included)."""
        ...

    async def batch(self, batch_id: str) -> list[Task]:
        """The tasks of a batch as they are now (removed ones left out);
        `TaskNotFound` for an unknown batch."""
        ...


class ITaskFeed(Protocol):
    """What the storage pushes: work to claim, finished tasks, transitions, stop requests.
    Nothing here is polled."""

    async def wait_for_work(self, queues: Sequence[str], timeout_ms: int) -> None:
        """Block until a task may be claimable in one of `queues`, or the timeout passes.

        Wakes early when a task is enqueued or returned; it may wake spuriously.
        """
        ...

    async def wait_finished(self, task: Task, timeout_ms: int) -> Task:
        """The task as soon as it reaches a terminal status, or as it is after the timeout
        (pushed by the storage, not polled)."""
        ...

    async def events(self) -> EventFeed:
        """Subscribe: the feed holds every transition of every queue's tasks from the
        moment this returns, until it ends (a reader too slow to keep up, or a broken
        subscription, ends it rather than skip events). `TooManyStreams` when this
        process already serves its maximum of feeds."""
        ...

    def stop_requests(self, queues: Sequence[str]) -> AsyncIterator[StopRequest]:
        """Operators' requests to stop running handlers, as they come (at most once each:
        a worker also learns of a cancel when it next renews the task's lease)."""
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


class ISchedules(Protocol):
    """Recurring schedules, by name, with where their firing stands.

    A change by an operator (add, replace) writes the definition and the next slot; a
    firing (advance) writes the record and the next slot, and only if the schedule is
    still at the slot the firing process read: two processes firing one slot move it once.
    """

    async def add(self, schedule: Schedule) -> None:
        """Store a new schedule; `DuplicateSchedule` if the name is taken."""
        ...

    async def replace(self, schedule: Schedule) -> None:
        """Store a changed definition and next slot (None: paused), keeping the firing
        record; `ScheduleNotFound` if there is none."""
        ...

    async def get(self, name: str) -> Schedule:
        """`ScheduleNotFound` if there is none."""
        ...

    async def list_all(self) -> list[Schedule]:
        """Every schedule, oldest first."""
        ...

    async def due(self, now: int, limit: int) -> list[Schedule]:
        """Active schedules whose next slot is at or before `now`, earliest first."""
        ...

    async def earliest(self, skip: frozenset[str] = frozenset()) -> int | None:
        """The earliest next slot of the active schedules not named in `skip`."""
        ...

    async def advance(
        self,
        name: str,
        *,
        expected: int,
        next_at: int,
        fired: list[int],
        task_id: str | None,
        skipped: int,
    ) -> bool:
        """Record `fired` slots (the last one's task `task_id`) and `skipped` ones, and
        move the next slot from `expected` to `next_at`; False if it was not `expected`."""
        ...

    async def remove(self, name: str) -> None:
        """`ScheduleNotFound` if there is none."""
        ...


class IFlowLimits(Protocol):
    """Each queue's rate and concurrency limits, which every claim applies."""

    async def get(self, queue: str, now: int) -> LimitsView:
        """The queue's limits (none set: empty) and its usage at `now`."""
        ...

    async def set(self, queue: str, limits: QueueLimits) -> None:
        """Replace the queue's limits; empty limits lift them all."""
        ...


class ICalendar(Protocol):
    """Cadences: a cron expression in a time zone, or an interval."""

    def check(self, cron: str | None, timezone: str, now: int) -> None:
        """`InvalidTask` naming `cron` or `timezone` unless the cadence can fire."""
        ...

    def cadence(self, schedule: Schedule) -> Cadence:
        """The schedule's slots."""
        ...


class IAuditLog(Protocol):
    """An append-only record of operators' actions, bounded to the latest ~100,000 entries.

    Entries are read newest first, a page at a time. A page comes with a cursor when older
    entries remain: `read(limit, before=cursor)` continues strictly after the last entry of
    that page, so no entry is read twice, even while new ones are recorded. Cursors are
    opaque strings; one older than the retained entries simply yields an empty page.

    The entries of one target (a task id, a queue or schedule name) are read on their own,
    in O(limit), never by a scan of the log: the latest 100 of each target, kept while its
    tasks may be (they expire together some time after the target's latest entry). A
    cursor of the whole log is no cursor of a target's entries, nor the other way round.
    """

    async def record(self, entry: AuditEntry) -> None:
        """Append one entry; once stored, readers see it at the head of the log."""
        ...

    async def read(
        self, limit: int, before: str | None = None, target: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        """Up to `limit` entries older than `before` (None: the newest), of `target` alone
        unless it is None, and the cursor of the next page, or None when this page reaches
        the oldest entry."""
        ...


class IWorkerRegistry(Protocol):
    """Live workers, as their heartbeats tell: a worker not seen for `stale_ms` is gone."""

    async def heartbeat(
        self, worker: WorkerInfo, ttl_ms: int, increments: Mapping[str, float]
    ) -> None:
        """Record that the worker is alive now; forgotten after `ttl_ms` without another.
        `increments` are added to the deployment's metric totals in the same step, so
        they are counted once if the heartbeat is recorded, and not at all if it fails."""
        ...

    async def metric_totals(self) -> dict[str, float]:
        """Every increment workers handed over with their heartbeats, summed by field."""
        ...

    async def forget(self, worker_id: str) -> None:
        """The worker stopped cleanly."""
        ...

    async def live(self, now: int) -> list[WorkerInfo]:
        """Workers whose last heartbeat has not expired, oldest started first."""
        ...
