"""In-memory fakes of the ports with the Redis adapters' semantics, kept so by tests/contract."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import inspect
import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import to_json

from application.clock import system_clock
from domain.admission import DepthLimits, finished_last_minute, retry_after_s
from domain.errors import (
    InvalidTask,
    LockLost,
    LockNotAcquired,
    QueueFull,
    TaskActive,
    TaskChanged,
    TaskNotFound,
)
from domain.ports import EventFeed
from domain.task import StopKind, Task, TaskStatus, check_configured_queue
from domain.values import (
    MINUTE_MS,
    MINUTES_KEPT,
    ClaimBatch,
    ClaimRequest,
    Enqueued,
    EnqueueOutcome,
    FencedWrite,
    Lease,
    LeaseState,
    MinuteCount,
    QueueStats,
    StopRequest,
    TaskEvent,
    TaskPage,
    TaskQuery,
)

# The search words are part of the contract (what a search finds), so the fake uses the
# very function the adapter indexes with; it is pure and does no I/O.
from infrastructure.redis.keys import effect_key
from infrastructure.redis.limits import DURATIONS_KEPT, PROMOTE_LIMIT
from infrastructure.redis.search import task_tokens, words

Clock = Callable[[], int]

_TASK = TypeAdapter(Task)
_JSON = TypeAdapter(Any)

DEFAULT_QUEUES = ("default",)
MAX_OFFSET = 10_000  # queries.py: deeper pages go by cursor
SCAN_CAP = 2_000  # scan.py: candidates a search examines per call at most
FEED_SIZE = 1_000  # EVENT_BUFFER: events a reader may fall behind before its feed ends
TERMINAL = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
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
    """codec.fingerprint: name, payload and creator make "the same request"."""
    payload = json.dumps(task.payload, sort_keys=True, separators=(",", ":"))
    return "\0".join((task.name, payload, task.created_by or ""))


# --- listing cursors, as scan.py has them -------------------------------------------------

Entry = tuple[int, str, str]  # (creation order `ix`, task id, queue): a listing's sort key
IdEntry = tuple[str, str]  # (task id, queue): an id-prefix search's sort key


@dataclass(frozen=True)
class _Bound:
    """Where a page starts: at most `score`, and below `after` (id, queue) at that score."""

    score: float
    after: IdEntry | None = None

    def admits(self, entry: Entry) -> bool:
        score, task_id, queue = entry
        if self.after is None:
            return score <= self.score
        return score < self.score or (score == self.score and (task_id, queue) < self.after)


def _encode(parts: list[Any]) -> str:
    raw = json.dumps(parts, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _encode_cursor(entry: Entry) -> str:
    return _encode(["s", float(entry[0]), entry[1], entry[2]])


def _encode_id_cursor(entry: IdEntry) -> str:
    return _encode(["i", *entry])


def _decode(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        parts = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _invalid_cursor() from None
    if not isinstance(parts, list) or not parts or parts[0] not in ("s", "i"):
        raise _invalid_cursor()
    return parts


def _invalid_cursor() -> InvalidTask:
    return InvalidTask("cursor", "not a cursor this API handed out")


def _cursor_bound(cursor: str | None, high: float) -> _Bound:
    if cursor is None:
        return _Bound(high)
    match _decode(cursor):
        case ["s", float() | int() as score, str() as task_id, str() as queue] if not isinstance(
            score, bool
        ):
            return _Bound(min(score, high), (task_id, queue)) if score <= high else _Bound(high)
    raise _invalid_cursor()


def _id_after(cursor: str | None) -> IdEntry | None:
    if cursor is None:
        return None
    match _decode(cursor):
        case ["i", str() as task_id, str() as queue]:
            return task_id, queue
    raise _invalid_cursor()


def _score_window(query: TaskQuery) -> tuple[float, float]:
    low = float("-inf") if query.created_from is None else query.created_from * 1000
    high = float("inf") if query.created_to is None else query.created_to * 1000 + 999
    return low, high


def _filtered_in(task: Task, query: TaskQuery) -> bool:
    return (
        (query.status is None or task.status is query.status)
        and (query.name is None or task.name == query.name)
        and (query.created_from is None or task.created_at >= query.created_from)
        and (query.created_to is None or task.created_at <= query.created_to)
        and (query.created_by is None or task.created_by == query.created_by)
    )


@dataclass
class _Queue:
    """One queue: task records plus one index per status, as the Redis sorted sets."""

    tasks: dict[str, Task] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    ix: dict[str, int] = field(default_factory=dict)  # creation order, the listing's score
    tokens: dict[str, list[str]] = field(default_factory=dict)
    reserved: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (fp, until)
    # waiting: (priority, seq); delayed: due time; active: lease deadline; else finish time
    index: dict[TaskStatus, dict[str, Any]] = field(
        default_factory=lambda: {status: {} for status in TaskStatus}
    )
    seq: int = 0
    last_ix: int = 0  # enqueue_tasks.lua's `last_ix` key: creation order strictly increases
    fence: int = 0
    marker: bool = False
    paused: bool = False
    cancel_requested: set[str] = field(default_factory=set)
    settled: dict[str, int] = field(default_factory=dict)  # id -> token its outcome came with
    # id -> the tasks claimed with its outcome (id, token): a retry gets them again
    then_claimed: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)  # every name the queue has seen
    finished: Counter[int] = field(default_factory=Counter)  # minute -> tasks finished
    failures: Counter[int] = field(default_factory=Counter)  # minute -> of them, failed
    durations: dict[str, list[int]] = field(default_factory=dict)  # newest first

    def store(self, task: Task) -> None:
        self.seq += 1
        # enqueue_tasks.lua: creation order, strictly increasing within the queue
        self.last_ix = max(task.created_at * 1000, self.last_ix + 1)
        self.ix[task.id] = self.last_ix
        self.tasks[task.id] = _stored(task)
        self.fingerprints[task.id] = _fingerprint(task)
        self.tokens[task.id] = task_tokens(task.name, task.payload)
        self.names.add(task.name)
        if task.status is TaskStatus.DELAYED:
            self.make_delayed(task.id, task.run_at)
        else:
            self.index[TaskStatus.WAITING][task.id] = (task.priority, self.seq)
            self.marker = True

    def make_ready(self, task_id: str, *, ahead: bool = False) -> None:
        """Waiting after the others of its priority, or `ahead` of them (sequence 0)."""
        if not ahead:
            self.seq += 1
        priority = self.tasks[task_id].priority
        self.index[TaskStatus.WAITING][task_id] = (priority, 0 if ahead else self.seq)
        self.marker = True

    def make_delayed(self, task_id: str, due: int) -> None:
        delayed = self.index[TaskStatus.DELAYED]
        if not delayed or due < min(delayed.values()):
            self.marker = True  # only a new earliest due time changes how long workers sleep
        delayed[task_id] = due

    def finish(self, task: Task) -> None:
        self.index[task.status][task.id] = task.finished_at or 0
        self.finished[(task.finished_at or 0) // 60_000] += 1
        if task.status is TaskStatus.FAILED:
            self.failures[(task.finished_at or 0) // 60_000] += 1
        last = task.history[-1] if task.history else None
        if task.status is TaskStatus.COMPLETED and last is not None:
            kept = self.durations.setdefault(task.name, [])
            kept.insert(0, last.finished_at - last.started_at)
            del kept[DURATIONS_KEPT:]

    def promote_due(self, now: int) -> list[Task]:
        """The due delayed tasks made waiting (claim_tasks.lua announces each)."""
        delayed = self.index[TaskStatus.DELAYED]
        due = sorted((at, task_id) for task_id, at in delayed.items() if at <= now)
        promoted = []
        for _, task_id in due[:PROMOTE_LIMIT]:
            del delayed[task_id]
            self.tasks[task_id] = replace(self.tasks[task_id], status=TaskStatus.WAITING)
            self.seq += 1
            self.index[TaskStatus.WAITING][task_id] = (self.tasks[task_id].priority, self.seq)
            promoted.append(self.tasks[task_id])
        return promoted

    def pop_ready(self, limit: int) -> list[str]:
        waiting = self.index[TaskStatus.WAITING]
        # ZSET order: by score, then by member (tasks that went ahead share a score)
        ids = sorted(waiting, key=lambda task_id: (waiting[task_id], task_id))[: max(limit, 0)]
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

    def forget(self, task_id: str, until: int) -> None:
        """_lib.lua's forget: drop the task and its indexes, reserve the id until `until`."""
        for members in self.index.values():
            members.pop(task_id, None)
        del self.tasks[task_id]
        del self.ix[task_id], self.tokens[task_id]
        self.reserved[task_id] = (self.fingerprints.pop(task_id), until)

    def entry(self, task_id: str, queue: str) -> Entry:
        return (self.ix[task_id], task_id, queue)

    def has_token(self, token: str) -> bool:
        return any(token in tokens for tokens in self.tokens.values())


class _Effects:
    """The handlers' effect keys (write_fenced.lua's commands) in a dict: strings as str,
    hashes as dict, lists as list, sets as set. Not modelled: expiry (PEXPIRE and SET's PX
    are recorded, never applied)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.expiry: dict[str, int] = {}

    def run(self, key: str, command: str, args: Sequence[str]) -> Any:
        run: Callable[[str, Sequence[str]], Any] = getattr(self, f"_{command.lower()}")
        return run(key, args)

    def _set(self, key: str, args: Sequence[str]) -> None:
        self.values[key] = args[0]
        if len(args) == 3:  # value PX ms
            self.expiry[key] = int(args[2])

    def _del(self, key: str, args: Sequence[str]) -> int:
        self.expiry.pop(key, None)
        return int(self.values.pop(key, None) is not None)

    def _pexpire(self, key: str, args: Sequence[str]) -> int:
        if key in self.values:
            self.expiry[key] = int(args[0])
        return int(key in self.values)

    def _incrby(self, key: str, args: Sequence[str]) -> int:
        return _incremented(self.values, key, self._of(key, str, "0"), args[0])

    def _hset(self, key: str, args: Sequence[str]) -> int:
        fields = self._of(key, dict)
        pairs = dict(zip(args[::2], args[1::2], strict=True))
        new = len(pairs.keys() - fields.keys())
        fields.update(pairs)
        return new

    def _hincrby(self, key: str, args: Sequence[str]) -> int:
        fields = self._of(key, dict)
        return _incremented(fields, args[0], fields.get(args[0], "0"), args[1])

    def _rpush(self, key: str, args: Sequence[str]) -> int:
        items = self._of(key, list)
        items.extend(args)
        return len(items)

    def _sadd(self, key: str, args: Sequence[str]) -> int:
        members = self._of(key, set)
        before = len(members)
        members.update(args)
        return len(members) - before

    def _of(self, key: str, kind: type, empty: Any = None) -> Any:
        """The key's value, which must be of `kind`; a new one (stored, unless `empty`
        stands for it) when the key is not there."""
        value = self.values.get(key)
        if value is None:
            return empty if empty is not None else self.values.setdefault(key, kind())
        if not isinstance(value, kind):
            raise ValueError(f"WRONGTYPE {key} holds the wrong kind of value")
        return value


def _incremented(where: dict[str, Any], field: str, current: str, amount: str) -> int:
    try:
        total = int(current) + int(amount)
    except ValueError:
        raise ValueError("ERR value is not an integer or out of range") from None
    where[field] = str(total)
    return total


class MemoryFeed:
    """EventFeed of the fake: a reader FEED_SIZE events behind ends "lagged"."""

    def __init__(self, feeds: set[MemoryFeed]) -> None:
        self._feeds = feeds
        self._events: list[TaskEvent] = []
        self._arrived = asyncio.Event()
        self.ended: str | None = None

    def put(self, event: TaskEvent) -> None:
        if len(self._events) >= FEED_SIZE:
            self._end("lagged")
        else:
            self._events.append(event)
            self._arrived.set()

    async def next_batch(self, timeout_s: float) -> list[TaskEvent]:
        if not self._events and self.ended is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout_s)
        self._arrived.clear()
        batch, self._events = self._events, []
        return [] if self.ended is not None else batch

    def close(self) -> None:
        self._end("closed")

    def _end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
            self._feeds.discard(self)
            self._arrived.set()


class InMemoryTaskQueue:
    """The task ports (transitions, views, feed) in a dict, matching the Redis adapters and
    its Lua scripts step by step.

    `clock` only measures the idempotency window of removed ids; every other time is
    passed in, as with the Redis adapter. `queues` are the configured queue names that
    listings and stats cover. Events (wait_finished, events, stop_requests)
    go through asyncio primitives instead of pub/sub, with the same delivery. Not
    modelled: the batches' 7-day expiry, and pub/sub's reach across databases (see the
    xfail test in tests/contract).
    """

    def __init__(
        self,
        idempotency_window_ms: int,
        clock: Clock = system_clock,
        queues: Sequence[str] = DEFAULT_QUEUES,
        depth_limits: DepthLimits | None = None,
    ) -> None:
        self._window_ms = idempotency_window_ms
        self._depth_limits = depth_limits or DepthLimits()
        self._clock = clock
        self._queues: dict[str, _Queue] = {}
        self._configured = sorted(set(queues))
        # The id index (keys.task_owner): id -> (queue, until); until None while it exists.
        self._owners: dict[str, tuple[str, int | None]] = {}
        self._wakeup = asyncio.Event()
        self._batches: dict[str, list[tuple[str, str]]] = {}
        self._finished: dict[tuple[str, str], set[asyncio.Future[None]]] = {}
        self._subscribers: list[tuple[frozenset[str], asyncio.Queue[StopRequest]]] = []
        self._feeds: set[MemoryFeed] = set()
        self.effects = _Effects()

    def _queue(self, name: str) -> _Queue:
        return self._queues.setdefault(name, _Queue())

    def _signal(self, queue: _Queue) -> None:
        if queue.marker:
            self._wakeup.set()

    # --- writing ------------------------------------------------------------------------

    async def enqueue(self, tasks: Sequence[Task], batch_id: str | None = None) -> list[Enqueued]:
        for queue in dict.fromkeys(task.queue for task in tasks):  # all admitted, or none
            self._admit(queue, [task for task in tasks if task.queue == queue])
        results = [self._enqueue_one(task) for task in tasks]
        members = [
            (r.task.queue, r.task.id) for r in results if r.outcome is not EnqueueOutcome.CONFLICT
        ]
        if batch_id is not None and members:  # RPUSH of the tasks that are the batch's own
            self._batches.setdefault(batch_id, []).extend(members)
        return results

    def _admit(self, name: str, tasks: Sequence[Task]) -> None:
        """enqueue_tasks.lua's refusal: QueueFull if the new tasks would pass the limit."""
        limit = self._depth_limits.of(name)
        if limit <= 0:
            return
        new = len({task.id for task in tasks if self._is_new(task)})
        state = self._queue(name)
        unfinished = (TaskStatus.WAITING, TaskStatus.DELAYED, TaskStatus.ACTIVE)
        depth = sum(len(state.index[status]) for status in unfinished)
        if new and depth + new > limit:
            minute = tasks[0].created_at // 60_000
            pace = finished_last_minute(
                state.finished[minute], state.finished[minute - 1], tasks[0].created_at
            )
            raise QueueFull(name, limit, retry_after_s(depth + new - limit, pace))

    def _is_new(self, task: Task) -> bool:
        owner = self._owner(task.id)
        if owner is not None and owner != task.queue:
            return False
        queue = self._queue(task.queue)
        reserved = queue.reserved.get(task.id)
        live_reservation = reserved is not None and reserved[1] > self._clock()
        return task.id not in queue.tasks and not live_reservation

    def _owner(self, task_id: str) -> str | None:
        owner = self._owners.get(task_id)
        if owner is None or (owner[1] is not None and owner[1] <= self._clock()):
            return None
        return owner[0]

    def _enqueue_one(self, task: Task) -> Enqueued:
        owner = self._owner(task.id)
        if owner is not None and owner != task.queue:  # one id, one task, deployment-wide
            return Enqueued(task, EnqueueOutcome.CONFLICT)
        queue = self._queue(task.queue)
        fp = _fingerprint(task)
        if task.id in queue.tasks:
            if queue.fingerprints[task.id] == fp:
                return Enqueued(queue.tasks[task.id], EnqueueOutcome.EXISTING)
            return Enqueued(task, EnqueueOutcome.CONFLICT)
        reserved = queue.reserved.get(task.id)
        if reserved is not None and reserved[1] > self._clock():
            same = reserved[0] == fp
            return Enqueued(task, EnqueueOutcome.REMOVED if same else EnqueueOutcome.CONFLICT)
        queue.store(task)
        self._owners[task.id] = (task.queue, None)
        self._signal(queue)
        self._announce(TaskEvent(task.id, task.queue, task.name, task.status.value))
        return Enqueued(task, EnqueueOutcome.CREATED)

    async def claim(
        self, queue: str, worker_id: str, limit: int, lease_ms: int, now: int
    ) -> ClaimBatch:
        state = self._queue(queue)
        for task in state.promote_due(now):
            self._announce(TaskEvent(task.id, queue, task.name, TaskStatus.WAITING.value))
        if state.paused:
            return ClaimBatch([])
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
            self._announce(TaskEvent(task_id, queue, task.name, TaskStatus.ACTIVE.value))
        if not claimed:
            return ClaimBatch([], state.next_due())
        if state.index[TaskStatus.WAITING]:
            state.marker = True  # more work left: wake the next idle worker
            self._signal(state)
        return ClaimBatch(claimed)

    async def claim_queues(
        self, quotas: Sequence[tuple[str, int]], request: ClaimRequest
    ) -> ClaimBatch:
        """claim_queues.lua: the quotas, then what is left in the same order; one step
        (`claim` never awaits)."""
        left, short = request.limit, set[str]()
        tasks: list[Task] = []
        dues: list[int] = []
        for queue, wanted in [*quotas, *((queue, None) for queue, _ in quotas)]:
            limit = left if wanted is None else min(wanted, left)
            if limit <= 0 or queue in short:
                continue
            batch = await self.claim(queue, request.worker_id, limit, request.lease_ms, request.now)
            tasks += batch.tasks
            left -= len(batch.tasks)
            if len(batch.tasks) < limit:
                short.add(queue)
            if batch.next_due_at is not None:
                dues.append(batch.next_due_at)
        return ClaimBatch(tasks, None if tasks or not dues else min(dues))

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

    async def settle(
        self, task: Task, *, lease: Lease | None = None, then: ClaimRequest | None = None
    ) -> ClaimBatch:
        """settle_task.lua: the next claim, then the outcome, once per token: a retry of a
        written outcome is answered with the tasks claimed with it, and no others."""
        state = self._queue(task.queue)
        stored = state.tasks.get(task.id)
        if stored is not None and state.settled.get(task.id) == task.fence == stored.fence:
            return ClaimBatch(self._claimed_before(state, task.id))
        if stored is None or stored.status is not TaskStatus.ACTIVE or stored.fence != task.fence:
            raise LockLost(f"task {task.id!r}: fencing token is stale or the task is not active")
        batch = ClaimBatch([])
        if then is not None:
            batch = await self.claim(
                task.queue, then.worker_id, then.limit, then.lease_ms, then.now
            )
        self._move(task, TaskStatus.ACTIVE, task.fence, None, None)
        state.settled[task.id] = task.fence
        state.then_claimed[task.id] = [(claimed.id, claimed.fence) for claimed in batch.tasks]
        return batch

    @staticmethod
    def _claimed_before(state: _Queue, task_id: str) -> list[Task]:
        """The tasks claimed with an outcome, still active under their claim's token."""
        kept = state.then_claimed.get(task_id, [])
        found = [(state.tasks.get(claimed_id), fence) for claimed_id, fence in kept]
        return [
            task
            for task, fence in found
            if task is not None and task.status is TaskStatus.ACTIVE and task.fence == fence
        ]

    async def recover(self, task: Task, expired_by: int) -> None:
        if not self._move(task, TaskStatus.ACTIVE, task.fence, expired_by, None):
            raise LockLost(f"task {task.id!r}: fencing token is stale or the task is not active")

    async def change(self, task: Task, previous: Task, *, stop: StopKind | None = None) -> None:
        if task.id not in self._queue(task.queue).tasks:
            raise TaskNotFound(task.id)
        if not self._move(task, previous.status, previous.fence, None, stop):
            raise TaskChanged(f"task {task.id!r} changed meanwhile")

    def _move(
        self,
        task: Task,
        expected: TaskStatus,
        fence: int,
        lease_expired_by: int | None,
        stop: StopKind | None,
    ) -> bool:
        """apply_outcome (_lib.lua): False if the task is not as read; LockLost if the lease
        is still valid (a recovery's check)."""
        state = self._queue(task.queue)
        stored = state.tasks.get(task.id)
        if stored is None or stored.status is not expected or stored.fence != fence:
            return False
        members = state.index[expected]
        if lease_expired_by and members.get(task.id, 0) >= lease_expired_by:
            raise LockLost(f"task {task.id!r}: the lease has not expired")
        members.pop(task.id, None)
        state.cancel_requested.discard(task.id)
        changes = {name: getattr(task, name) for name in SETTLED_FIELDS}
        state.tasks[task.id] = _stored(replace(stored, **changes))
        if task.status is TaskStatus.WAITING:
            state.make_ready(task.id, ahead=lease_expired_by is not None)  # a stall: ahead
        elif task.status is TaskStatus.DELAYED:
            state.make_delayed(task.id, task.run_at)
        else:
            state.finish(task)
        self._signal(state)
        self._announce(TaskEvent(task.id, task.queue, stored.name, task.status.value))
        if stop is not None:
            self._publish_stop(StopRequest(task.id, task.queue, stop))
        return True

    async def set_progress(self, task: Task, progress: Any) -> None:
        state = self._queue(task.queue)
        stored = state.current(task)
        state.tasks[task.id] = replace(stored, progress=_JSON.dump_python(progress, mode="json"))

    async def write_fenced(self, task: Task, write: FencedWrite) -> Any:
        """write_fenced.lua: the token's check and the write, in one step."""
        self._queue(task.queue).current(task)
        return self.effects.run(self.effect_key(task.queue, write.name), write.command, write.args)

    def effect_key(self, queue: str, name: str) -> str:
        return effect_key(queue, name)

    async def extend_leases(
        self, held: Sequence[tuple[Task, Lease | None]], lease_ms: int, now: int
    ) -> list[LeaseState]:
        """extend_leases.lua (this fake takes no lock with a claim: no lease to renew)."""
        return [self._extend(task, lease_ms, now) for task, _ in held]

    def _extend(self, task: Task, lease_ms: int, now: int) -> LeaseState:
        state = self._queue(task.queue)
        try:
            state.current(task)
        except LockLost:
            return LeaseState.LOST
        state.index[TaskStatus.ACTIVE][task.id] = now + lease_ms
        if task.id in state.cancel_requested:
            return LeaseState.CANCEL_REQUESTED
        return LeaseState.HELD

    async def request_cancel(self, task: Task) -> None:
        state = self._queue(task.queue)
        stored = state.tasks.get(task.id)
        if stored is None:
            raise TaskNotFound(task.id)
        if stored.status is not TaskStatus.ACTIVE:
            raise TaskChanged(f"task {task.id!r} changed meanwhile")
        state.cancel_requested.add(task.id)
        self._publish_stop(StopRequest(task.id, task.queue, StopKind.CANCEL))

    async def remove(self, task: Task) -> None:
        state = self._queue(task.queue)
        stored = state.tasks.get(task.id)
        if stored is None:
            raise TaskNotFound(task.id)
        if stored.status is TaskStatus.ACTIVE:
            raise TaskActive(task.id)
        self._forget(state, task.queue, task.id)

    async def sweep(
        self,
        queue: str,
        finished_before: Mapping[TaskStatus, int],
        limit: int,
        keep: Mapping[TaskStatus, int] | None = None,
    ) -> int:
        state = self._queue(queue)
        budget, removed = limit, 0
        for status in TERMINAL:
            before, count = finished_before.get(status, 0), (keep or {}).get(status, 0)
            members = state.index[status]
            # ZSET order: by finish time, then by id
            ordered = sorted((at, task_id) for task_id, at in members.items())
            beyond = max(len(ordered) - count, 0) if count > 0 else 0
            old = [
                task_id
                for n, (at, task_id) in enumerate(ordered)
                if (before > 0 and at < before) or n < beyond
            ][: max(budget, 0)]
            for task_id in old:
                self._forget(state, queue, task_id)
            removed += len(old)
            budget -= len(old)
        return removed

    def _forget(self, state: _Queue, queue: str, task_id: str) -> None:
        name = state.tasks[task_id].name
        until = self._clock() + self._window_ms
        state.forget(task_id, until)
        self._owners[task_id] = (queue, until)
        self._announce(TaskEvent(task_id, queue, name, "removed"))

    async def set_paused(self, queue: str, paused: bool) -> None:
        state = self._queue(queue)
        state.paused = paused
        if not paused:
            state.marker = True  # idle workers look again at once
            self._signal(state)

    # --- events -------------------------------------------------------------------------

    def _announce(self, event: TaskEvent) -> None:
        """A transition, as the scripts PUBLISH it: to waiters and to every feed."""
        if event.status == "removed" or TaskStatus(event.status).is_terminal:
            for done in self._finished.get((event.queue, event.task_id), ()):
                if not done.done():
                    done.set_result(None)
        for feed in list(self._feeds):
            feed.put(event)

    async def events(self) -> EventFeed:
        feed = MemoryFeed(self._feeds)
        self._feeds.add(feed)
        return feed

    def _publish_stop(self, request: StopRequest) -> None:
        for queues, inbox in self._subscribers:
            if request.queue in queues:
                inbox.put_nowait(request)

    async def stop_requests(self, queues: Sequence[str]) -> AsyncIterator[StopRequest]:
        inbox: asyncio.Queue[StopRequest] = asyncio.Queue()
        subscription = (frozenset(queues), inbox)
        self._subscribers.append(subscription)
        try:
            while True:
                yield await inbox.get()
        finally:
            self._subscribers.remove(subscription)

    async def wait_finished(self, task: Task, timeout_ms: int) -> Task:
        if task.status.is_terminal or timeout_ms <= 0:
            return task
        place = (task.queue, task.id)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._finished.setdefault(place, set()).add(done)
        try:
            task = await self.get(task.id, task.queue)
            if not task.status.is_terminal:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done, timeout_ms / 1000)
                task = await self.get(task.id, task.queue)
        finally:
            waiters = self._finished[place]
            waiters.discard(done)
            if not waiters:
                del self._finished[place]
        return task

    # --- reading ------------------------------------------------------------------------

    async def get(self, task_id: str, queue: str | None = None) -> Task:
        name = queue or self._owner(task_id)
        found = self._queues.get(name, _Queue()).tasks.get(task_id) if name else None
        if found is None:
            raise TaskNotFound(task_id)
        return found

    async def expired(self, queue: str, now: int, limit: int) -> list[Task]:
        state = self._queue(queue)
        active = state.index[TaskStatus.ACTIVE]
        due = sorted((deadline, task_id) for task_id, deadline in active.items() if deadline < now)
        chosen = due if limit < 0 else due[:limit]
        return [state.tasks[task_id] for _, task_id in chosen]

    async def batch(self, batch_id: str) -> list[Task]:
        members = self._batches.get(batch_id)
        if not members:
            raise TaskNotFound(batch_id)
        return self._members(members)

    def _members(self, places: Iterable[tuple[str, str]]) -> list[Task]:
        found = (self._queues.get(queue, _Queue()).tasks.get(task_id) for queue, task_id in places)
        return [task for task in found if task is not None]

    async def stats(self, now: int) -> list[QueueStats]:
        return [self._stats(name, self._queue(name), now) for name in self._configured]

    @staticmethod
    def _stats(name: str, state: _Queue, now: int) -> QueueStats:
        minute = now // 60_000
        minutes = range(minute - MINUTES_KEPT, minute + 1)
        buckets = [state.finished[m] for m in minutes]
        fraction = (now % 60_000) / 60_000
        names = sorted(state.names)
        type_counts = {n: dict.fromkeys(TaskStatus, 0) for n in names}
        for task in state.tasks.values():
            type_counts[task.name][task.status] += 1
        return QueueStats(
            queue=name,
            paused=state.paused,
            counts={status: len(state.index[status]) for status in TaskStatus},
            type_counts=type_counts,
            durations_ms={n: list(state.durations.get(n, [])) for n in names},
            finished_last_minute=round(buckets[-1] + buckets[-2] * (1 - fraction)),
            finished_last_hour=round(sum(buckets[1:]) + buckets[0] * (1 - fraction)),
            per_minute=tuple(
                MinuteCount(m * MINUTE_MS, state.finished[m], state.failures[m]) for m in minutes
            ),
        )

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        text = (query.search or "").strip()
        if text:  # a search of only whitespace is no search
            return self._search(query, text)
        if query.created_by is not None:  # no index by creator: the capped scan
            entries = self._entries(replace(query, created_from=None, created_to=None))
            return self._scan(query, [(entry, True) for entry in entries], None)
        low, high = _score_window(query)
        bound = _cursor_bound(query.cursor, high)
        matching = [entry for entry in self._entries(query) if low <= entry[0] <= high]
        skip = min(query.offset, MAX_OFFSET)
        window = [entry for entry in matching if bound.admits(entry)][skip:][: query.limit + 1]
        page = window[: query.limit]
        items = self._members((queue, task_id) for _, task_id, queue in page)
        more = len(window) > query.limit
        cursor = _encode_cursor(page[-1]) if more and page else None
        return TaskPage(items, len(matching), cursor)

    def _queue_names(self, query: TaskQuery) -> list[str]:
        if query.queue is None:
            return self._configured
        check_configured_queue(query.queue, self._configured)
        return [query.queue]

    def _entries(self, query: TaskQuery) -> list[Entry]:
        """Newest first: every task of the queues, statuses and name the query covers."""
        entries = [
            state.entry(task.id, name)
            for name in self._queue_names(query)
            for state in [self._queue(name)]
            for task in state.tasks.values()
            if (query.status is None or task.status is query.status)
            and (query.name is None or task.name == query.name)
        ]
        return sorted(entries, reverse=True)

    def _search(self, query: TaskQuery, text: str) -> TaskPage:
        queues = self._queue_names(query)
        if query.created_by is not None:  # a producer: the scan, never the shared indexes
            entries = self._entries(replace(query, created_from=None, created_to=None))
            return self._scan(query, [(entry, True) for entry in entries], text.lower())
        if query.cursor is None or _decode(query.cursor)[0] == "i":
            by_id = self._id_prefix(queues, text, query)
            if by_id is not None:
                return by_id
        tokens = words(text)
        if tokens and all(any(self._queue(q).has_token(t) for q in queues) for t in tokens):
            rare = max(tokens, key=len)
            others = [token for token in dict.fromkeys(tokens) if token != rare]
            candidates = sorted(
                (state.entry(task_id, name), all(word in task_words for word in others))
                for name in queues
                for state in [self._queue(name)]
                for task_id, task_words in state.tokens.items()
                if rare in task_words
            )
            return self._scan(query, [(entry, ok) for entry, ok in reversed(candidates)], None)
        entries = self._entries(replace(query, created_from=None, created_to=None))
        return self._scan(query, [(entry, True) for entry in entries], text.lower())

    def _id_prefix(self, queues: Sequence[str], text: str, query: TaskQuery) -> TaskPage | None:
        """queries.py's _id_prefix: by (id, queue) descending; `total` and `offset` count
        every id match, the other filters thin the page; None when no id matches."""
        after = _id_after(query.cursor)
        matching = sorted(
            ((task_id, name) for name in queues for task_id in self._queue(name).tasks),
            reverse=True,
        )
        matching = [entry for entry in matching if entry[0].startswith(text)]
        if not matching and after is None:
            return None
        admitted = [entry for entry in matching if after is None or entry < after]
        skip = min(query.offset, MAX_OFFSET)
        window = admitted[skip:][: query.limit + 1]
        page = window[: query.limit]
        tasks = self._members((name, task_id) for task_id, name in page)
        items = [task for task in tasks if _filtered_in(task, query)]
        more = len(window) > query.limit
        return TaskPage(
            items, len(matching), _encode_id_cursor(page[-1]) if more and page else None
        )

    def _scan(
        self, query: TaskQuery, candidates: list[tuple[Entry, bool]], text: str | None
    ) -> TaskPage:
        """scan.py's Scan: at most SCAN_CAP candidates examined, newest first; `offset`
        matches are skipped first (they count against the cap)."""
        skip, limit = query.offset, query.offset + query.limit
        bound = _cursor_bound(query.cursor, float("inf"))
        found: list[tuple[Entry, Task]] = []
        examined, exhausted, last = 0, True, None
        for entry, has_words in candidates:
            if not bound.admits(entry):
                continue
            examined, last = examined + 1, entry
            task = self._queue(entry[2]).tasks[entry[1]]
            if has_words and _filtered_in(task, query) and _contains(task, text, query):
                found.append((entry, task))
            if len(found) > limit or examined >= SCAN_CAP:
                exhausted = False
                break
        items = [task for _, task in found[skip:limit]]
        if len(found) > limit:
            return TaskPage(items, None, _encode_cursor(found[limit - 1][0]))
        resume = None if exhausted or last is None else _encode_cursor(last)
        return TaskPage(items, None, resume)


def _contains(task: Task, text: str | None, query: TaskQuery) -> bool:
    if text is None:
        return True
    if query.created_by is not None and _indexed_match(task, text):
        return True
    return text in f"{task.name} {to_json(task.payload).decode()}".lower()


def _indexed_match(task: Task, text: str) -> bool:
    """queries.py: what a producer's search finds as the indexes would (an id prefix, or
    every word of the text among the task's words)."""
    if task.id.lower().startswith(text):
        return True
    wanted = set(words(text))
    return bool(wanted) and wanted <= set(task_tokens(task.name, task.payload))


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
