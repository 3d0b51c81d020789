"""In-memory fakes of the ports with the Redis adapters' semantics, kept so by tests/contract."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import TypeAdapter

from application.clock import system_clock
from domain.errors import DuplicateTask, LockLost, LockNotAcquired, TaskActive, TaskNotFound
from domain.ports import ClaimBatch, Enqueued, EnqueueOutcome, Lease
from domain.task import Task, TaskStatus

Clock = Callable[[], int]

_TASK = TypeAdapter(Task)
_JSON = TypeAdapter(Any)

PROMOTE_LIMIT = 1_000  # claim_tasks.lua promotes at most this many due tasks per call
# What a settle writes (codec.MUTABLE_FIELDS); priority, payload, fence, progress... stay.
SETTLED_FIELDS = (
    "status",
    "attempts",
    "stalls",
    "run_at",
    "finished_at",
    "result",
    "error",
    "worker_id",
    "history",
)


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class ManualClock:
    """A clock in milliseconds that moves only when told to."""

    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = 5.0
) -> None:
    """Wait until `condition` holds, checking every few ms; fail after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.005)


class RecordingLog:
    """A Logger (application.handlers) that keeps every event for assertions."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def _record(self, level: str, event: str, fields: dict[str, Any]) -> None:
        self.events.append((level, event, fields))

    def debug(self, event: str, **fields: Any) -> None:
        self._record("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._record("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._record("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._record("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._record("exception", event, fields)

    def names(self, level: str | None = None) -> list[str]:
        return [event for lvl, event, _ in self.events if level is None or lvl == level]


def _stored(task: Task) -> Task:
    """The task as Redis would give it back: through pydantic's JSON mode, no aliasing."""
    return _TASK.validate_python(_TASK.dump_python(task, mode="json"))


def _fingerprint(task: Task) -> str:
    return task.name + "\0" + json.dumps(task.payload, sort_keys=True, separators=(",", ":"))


@dataclass
class _Queue:
    """One queue: task records plus one index per status, as the Redis sorted sets."""

    tasks: dict[str, Task] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    reserved: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (fp, until)
    # waiting: (priority, seq); delayed: due time; active: lease deadline; else finish time
    index: dict[TaskStatus, dict[str, Any]] = field(
        default_factory=lambda: {status: {} for status in TaskStatus}
    )
    seq: int = 0
    fence: int = 0
    marker: bool = False

    def make_ready(self, task_id: str) -> None:
        self.seq += 1
        self.index[TaskStatus.WAITING][task_id] = (self.tasks[task_id].priority, self.seq)
        self.marker = True

    def make_delayed(self, task_id: str, due: int) -> None:
        delayed = self.index[TaskStatus.DELAYED]
        if not delayed or due < min(delayed.values()):
            self.marker = True  # only a new earliest due time changes how long workers sleep
        delayed[task_id] = due

    def promote_due(self, now: int) -> None:
        delayed = self.index[TaskStatus.DELAYED]
        due = sorted((at, task_id) for task_id, at in delayed.items() if at <= now)
        for _, task_id in due[:PROMOTE_LIMIT]:
            del delayed[task_id]
            self.tasks[task_id] = replace(self.tasks[task_id], status=TaskStatus.WAITING)
            self.seq += 1
            self.index[TaskStatus.WAITING][task_id] = (self.tasks[task_id].priority, self.seq)

    def pop_ready(self, limit: int) -> list[str]:
        waiting = self.index[TaskStatus.WAITING]
        ids = sorted(waiting, key=waiting.__getitem__)[: max(limit, 0)]
        for task_id in ids:
            del waiting[task_id]
        return ids

    def next_due(self) -> int | None:
        delayed = self.index[TaskStatus.DELAYED]
        return min(delayed.values()) if delayed else None

    def current(self, task: Task) -> Task:
        """The stored task if `task` holds its current fencing token; `LockLost` otherwise."""
        stored = self.tasks.get(task.id)
        if stored is None or stored.status is not TaskStatus.ACTIVE or stored.fence != task.fence:
            raise LockLost(f"task {task.id!r}: fencing token is stale or the task is not active")
        return stored


class InMemoryTaskQueue:
    """ITaskQueue in a dict, matching RedisTaskQueue (and its Lua scripts) step by step.

    `clock` only measures the idempotency window of removed ids; every other time is
    passed in, as with the Redis adapter. Pausing queues is not modelled.
    """

    def __init__(self, idempotency_window_ms: int, clock: Clock = system_clock) -> None:
        self._window_ms = idempotency_window_ms
        self._clock = clock
        self._queues: dict[str, _Queue] = {}
        self._wakeup = asyncio.Event()

    def _queue(self, name: str) -> _Queue:
        return self._queues.setdefault(name, _Queue())

    def _signal(self, queue: _Queue) -> None:
        if queue.marker:
            self._wakeup.set()

    async def enqueue(self, tasks: Sequence[Task]) -> list[Enqueued]:
        # Like the pipelined scripts: each task is stored on its own, the error comes after.
        results = [self._enqueue_one(task) for task in tasks]
        for task, result in zip(tasks, results, strict=True):
            if result is None:
                raise DuplicateTask(task.id)
        return [result for result in results if result is not None]

    def _enqueue_one(self, task: Task) -> Enqueued | None:
        queue = self._queue(task.queue)
        fp = _fingerprint(task)
        if task.id in queue.tasks:
            same = queue.fingerprints[task.id] == fp
            return Enqueued(queue.tasks[task.id], EnqueueOutcome.EXISTING) if same else None
        reserved = queue.reserved.get(task.id)
        if reserved is not None and reserved[1] > self._clock():
            return Enqueued(task, EnqueueOutcome.REMOVED) if reserved[0] == fp else None
        queue.tasks[task.id] = _stored(task)
        queue.fingerprints[task.id] = fp
        if task.status is TaskStatus.DELAYED:
            queue.make_delayed(task.id, task.run_at)
        else:
            queue.make_ready(task.id)
        self._signal(queue)
        return Enqueued(task, EnqueueOutcome.CREATED)

    async def get(self, task_id: str, queue: str | None = None) -> Task:
        names = [queue] if queue else sorted(self._queues)
        for name in names:
            found = self._queues.get(name, _Queue()).tasks.get(task_id)
            if found is not None:
                return found
        raise TaskNotFound(task_id)

    async def claim(
        self, queue: str, worker_id: str, limit: int, lease_ms: int, now: int
    ) -> ClaimBatch:
        state = self._queue(queue)
        state.promote_due(now)
        claimed: list[Task] = []
        for task_id in state.pop_ready(limit):
            state.fence += 1
            task = replace(
                state.tasks[task_id],
                status=TaskStatus.ACTIVE,
                worker_id=worker_id,
                started_at=now,
                fence=state.fence,
            )
            state.tasks[task_id] = task
            state.index[TaskStatus.ACTIVE][task_id] = now + lease_ms
            claimed.append(task)
        if not claimed:
            return ClaimBatch([], state.next_due())
        if state.index[TaskStatus.WAITING]:
            state.marker = True  # more work left: wake the next idle worker
            self._signal(state)
        return ClaimBatch(claimed)

    async def wait_for_work(self, queues: Sequence[str], timeout_ms: int) -> None:
        if timeout_ms <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while not self._pop_marker(queues):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            # No await between the check and clear(): a marker set later sets the event.
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                return

    def _pop_marker(self, queues: Sequence[str]) -> bool:
        for name in queues:
            state = self._queues.get(name)
            if state is not None and state.marker:
                state.marker = False
                return True
        return False

    async def settle(self, task: Task, *, lease_expired_by: int | None = None) -> None:
        state = self._queue(task.queue)
        stored = state.current(task)
        active = state.index[TaskStatus.ACTIVE]
        if lease_expired_by and lease_expired_by > 0 and active.get(task.id, 0) >= lease_expired_by:
            raise LockLost(f"task {task.id!r}: the lease has not expired")
        active.pop(task.id, None)
        changes = {name: getattr(task, name) for name in SETTLED_FIELDS}
        state.tasks[task.id] = _stored(replace(stored, **changes))
        if task.status is TaskStatus.WAITING:
            state.make_ready(task.id)
        elif task.status is TaskStatus.DELAYED:
            state.make_delayed(task.id, task.run_at)
        else:
            state.index[task.status][task.id] = task.finished_at or 0
        self._signal(state)

    async def set_progress(self, task: Task, progress: Any) -> None:
        state = self._queue(task.queue)
        stored = state.current(task)
        state.tasks[task.id] = replace(stored, progress=_JSON.dump_python(progress, mode="json"))

    async def remove(self, task: Task) -> None:
        state = self._queue(task.queue)
        stored = state.tasks.get(task.id)
        if stored is None:
            raise TaskNotFound(task.id)
        if stored.status is TaskStatus.ACTIVE:
            raise TaskActive(task.id)
        for status, members in state.index.items():
            if status is not TaskStatus.ACTIVE:
                members.pop(task.id, None)
        del state.tasks[task.id]
        fp = state.fingerprints.pop(task.id)
        state.reserved[task.id] = (fp, self._clock() + self._window_ms)

    async def extend_lease(self, task: Task, lease_ms: int, now: int) -> None:
        state = self._queue(task.queue)
        state.current(task)
        active = state.index[TaskStatus.ACTIVE]
        if task.id in active:  # ZADD XX
            active[task.id] = now + lease_ms

    async def expired(self, queue: str, now: int, limit: int) -> list[Task]:
        state = self._queue(queue)
        active = state.index[TaskStatus.ACTIVE]
        due = sorted((deadline, task_id) for task_id, deadline in active.items() if deadline < now)
        chosen = due if limit < 0 else due[:limit]
        return [state.tasks[task_id] for _, task_id in chosen]


@dataclass
class _Hold:
    token: str
    ttl_ms: int
    expires_at: int
    extensions_left: int | None


class InMemoryLockService:
    """ILockService as RedlockService on one master: SET NX PX, fenced by a token.

    A lease is valid until `acquire`/`extend` time + `ttl_ms` on `clock`; then anyone may
    take it. Like pottery, a TTL too short to survive its clock-drift allowance (1% + 2 ms)
    is never acquired, and `extend` fails once `max_extensions` renewals are spent.
    """

    _DRIFT_FACTOR = 0.01
    _DRIFT_MS = 2

    def __init__(self, clock: Clock = monotonic_ms) -> None:
        self._clock = clock
        self._holds: dict[str, _Hold] = {}
        self._tokens = itertools.count(1)

    def held(self, resource: str) -> bool:
        """Whether anyone holds a valid lease on `resource` now."""
        hold = self._holds.get(resource)
        return hold is not None and self._clock() < hold.expires_at

    async def acquire(self, resource: str, ttl_ms: int, max_extensions: int | None) -> Lease:
        if self.held(resource):
            raise LockNotAcquired(f"lock:{resource} is held elsewhere")
        if ttl_ms - ttl_ms * self._DRIFT_FACTOR - self._DRIFT_MS <= 0:
            raise LockNotAcquired(f"lock:{resource}: a TTL of {ttl_ms} ms leaves no validity")
        token = str(next(self._tokens))
        self._holds[resource] = _Hold(token, ttl_ms, self._clock() + ttl_ms, max_extensions)
        return Lease(resource, ttl_ms, token)

    async def extend(self, lease: Lease) -> None:
        hold = self._holds.get(lease.resource)
        if hold is None or hold.token != lease.token:
            raise LockLost(f"lock:{lease.resource} is not held")
        if hold.extensions_left is not None and hold.extensions_left <= 0:
            raise LockLost(f"lock:{lease.resource}: no extensions left")
        if not self.held(lease.resource):
            raise LockLost(f"lock:{lease.resource} expired")
        hold.expires_at = self._clock() + hold.ttl_ms
        if hold.extensions_left is not None:
            hold.extensions_left -= 1

    async def release(self, lease: Lease) -> None:
        hold = self._holds.get(lease.resource)
        if hold is not None and hold.token == lease.token:
            del self._holds[lease.resource]
