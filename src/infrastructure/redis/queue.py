"""RedisTaskQueue: the task ports on redis-py asyncio, every transition one Lua script."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from domain.errors import QueueUnavailable, TaskNotFound
from domain.ports import EventFeed
from domain.task import Task, TaskStatus
from domain.values import (
    ClaimBatch,
    Enqueued,
    EnqueueOutcome,
    Lease,
    QueueStats,
    StopKind,
    StopRequest,
    TaskPage,
    TaskQuery,
)
from infrastructure.lock import RedlockService
from infrastructure.redis import codec
from infrastructure.redis.client import database_of
from infrastructure.redis.events import EventHub
from infrastructure.redis.keys import batch, keys_of, task_owner
from infrastructure.redis.queries import QueueReader
from infrastructure.redis.scripts import (
    Code,
    Scripts,
    raise_for,
    raise_for_change,
    raise_for_remove,
)
from infrastructure.redis.search import task_tokens
from infrastructure.redis.waiter import MarkerWaiter

_BATCH_TTL_MS = 7 * 24 * 3600 * 1000

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)

P = ParamSpec("P")
R = TypeVar("R")


def _reachable(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Report a Redis that cannot be reached as the domain's QueueUnavailable."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except _UNREACHABLE as exc:
            raise QueueUnavailable(f"Redis is unreachable: {exc}") from exc

    return call


class RedisTaskQueue:
    """The queue's state in Redis: a hash per task, a sorted set per status, and indexes.

    Both clients must decode responses to str; `blocking_client` holds the one connection
    idle workers block on. `idempotency_window_ms` is how long a removed task's id keeps
    answering "removed" to a repeated enqueue. `queues` are the configured queue names:
    the ones listings and stats cover (storing in others is the caller's mistake). Reads
    (listing, stats) live in QueueReader, pushed events in EventHub.
    """

    def __init__(
        self,
        client: Redis,
        blocking_client: Redis,
        idempotency_window_ms: int,
        locks: RedlockService | None = None,
        *,
        queues: Sequence[str] = ("default",),
        events: EventHub | None = None,
    ) -> None:
        self._redis = client
        self._locks = locks
        self._db = database_of(client)
        self._scripts = Scripts.register(client, self._db)
        self._waiter = MarkerWaiter(client, blocking_client)
        self._reader = QueueReader(client, queues)
        self._events = events or EventHub(client)
        self._window_ms = idempotency_window_ms

    async def aclose(self) -> None:
        await self._events.aclose()

    @_reachable
    async def enqueue(self, tasks: Sequence[Task], batch_id: str | None = None) -> list[Enqueued]:
        if not tasks:
            return []
        by_queue: dict[str, list[int]] = {}
        for index, task in enumerate(tasks):
            by_queue.setdefault(task.queue, []).append(index)
        batches = [[tasks[index] for index in indexes] for indexes in by_queue.values()]
        if len(batches) == 1:
            replies = [await self._enqueue_batch(batches[0], self._redis)]
        else:
            # One transaction: a request that spans queues is stored whole or not at all.
            async with self._redis.pipeline(transaction=True) as pipe:
                for group in batches:
                    await self._enqueue_batch(group, pipe)
                replies = await pipe.execute()
        outcomes: list[Enqueued | None] = [None] * len(tasks)
        for indexes, batch_replies in zip(by_queue.values(), replies, strict=True):
            for index, reply in zip(indexes, batch_replies, strict=True):
                outcomes[index] = _enqueued(tasks[index], reply)
        results = [outcome for outcome in outcomes if outcome is not None]
        if batch_id is not None:
            await self._record_batch(batch_id, results)
        return results

    async def _record_batch(self, batch_id: str, results: Sequence[Enqueued]) -> None:
        """The batch holds the tasks of the call that are its own: not CONFLICT ones (the
        id belongs to another request's task)."""
        members = [
            f"{result.task.queue}\t{result.task.id}"
            for result in results
            if result.outcome is not EnqueueOutcome.CONFLICT
        ]
        if members:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.rpush(batch(batch_id), *members)
                pipe.pexpire(batch(batch_id), _BATCH_TTL_MS)
                await pipe.execute()

    async def _enqueue_batch(self, tasks: Sequence[Task], client: Any) -> Any:
        """One script call stores a whole batch of one queue (its keys share a slot)."""
        keys = keys_of(tasks[0].queue)
        per_task: list[str] = []
        described = []
        for task in tasks:
            per_task += [keys.task(task.id), keys.removed(task.id), task_owner(task.id)]
            fields = codec.encode(task)
            fields["fp"] = codec.fingerprint(task)
            tokens = task_tokens(task.name, task.payload)
            fields["tokens"] = " ".join(tokens)
            described.append(
                {
                    "id": task.id,
                    "name": task.name,
                    "fp": fields["fp"],
                    "status": task.status.value,
                    "run_at": task.run_at,
                    "created_at": task.created_at,
                    "priority": task.priority,
                    "tokens": tokens,
                    "fields": fields,
                }
            )
        return await self._scripts.enqueue_tasks(
            keys=[keys.wait, keys.delayed, keys.marker, keys.seq, keys.last_ix, *per_task],
            args=[codec.encode_json(described), keys.prefix, keys.queue],
            client=client,
        )

    @_reachable
    async def get(self, task_id: str, queue: str | None = None) -> Task:
        return await self._reader.get(task_id, queue)

    @_reachable
    async def claim(
        self, queue: str, worker_id: str, limit: int, lease_ms: int, now: int
    ) -> ClaimBatch:
        keys = keys_of(queue)
        reply = await self._scripts.claim_tasks(
            keys=[
                keys.wait,
                keys.delayed,
                keys.active,
                keys.marker,
                keys.meta,
                keys.fence,
                keys.seq,
            ],
            args=[now, limit, now + lease_ms, worker_id, keys.prefix, queue],
        )
        next_due = int(reply[0])
        tasks = [codec.decode(fields) for fields in reply[1:]]
        return ClaimBatch(tasks, None if next_due < 0 else next_due)

    @_reachable
    async def wait_for_work(self, queues: Sequence[str], timeout_ms: int) -> None:
        if timeout_ms > 0:
            await self._waiter.wait([keys_of(q).marker for q in queues], timeout_ms)

    @_reachable
    async def settle(
        self, task: Task, *, lease_expired_by: int | None = None, release: Lease | None = None
    ) -> None:
        lock = None
        if release is not None and self._locks is not None:
            lock = self._locks.hand_over(self._redis, release)  # one round trip fewer
        code = await self._move(
            task, TaskStatus.ACTIVE, task.fence, lease_expired_by=lease_expired_by, lock=lock
        )
        raise_for(code, task.id)

    @_reachable
    async def change(self, task: Task, previous: Task, *, stop: StopKind | None = None) -> None:
        code = await self._move(task, previous.status, previous.fence, stop=stop)
        raise_for_change(code, task.id)

    async def _move(
        self,
        task: Task,
        expected: TaskStatus,
        fence: int,
        *,
        lease_expired_by: int | None = None,
        stop: StopKind | None = None,
        lock: tuple[str, str] | None = None,
    ) -> int:
        """Run move_task.lua; `lock` (key, value) is released in the same script."""
        keys = keys_of(task.queue)
        lock_key, lock_value = lock or (None, "")
        present, absent = codec.encode_changes(task)
        score = task.run_at if task.status is TaskStatus.DELAYED else task.finished_at or 0
        last = task.history[-1] if task.history else None
        duration = last.finished_at - last.started_at if last else -1
        code = await self._scripts.move_task(
            keys=[
                keys.task(task.id),
                keys.state(expected),
                keys.state(task.status),
                keys.marker,
                keys.seq,
                keys.delayed,
                *([lock_key] if lock_key else []),
            ],
            args=[
                task.id,
                expected.value,
                fence,
                task.status.value,
                score,
                lease_expired_by or 0,
                keys.prefix,
                task.queue,
                duration,
                stop.value if stop else "",
                lock_value,
                codec.encode_json(present),
                *absent,
                "cancel_requested",
            ],
        )
        return int(code)

    @_reachable
    async def extend_lease(self, task: Task, lease_ms: int, now: int) -> bool:
        keys = keys_of(task.queue)
        code = int(
            await self._scripts.extend_lease(
                keys=[keys.task(task.id), keys.active], args=[task.id, task.fence, now + lease_ms]
            )
        )
        raise_for(code, task.id)
        return code == 1

    @_reachable
    async def request_cancel(self, task: Task) -> None:
        keys = keys_of(task.queue)
        code = await self._scripts.request_cancel(
            keys=[keys.task(task.id)], args=[task.id, keys.prefix]
        )
        raise_for_change(int(code), task.id)

    async def stop_requests(self, queues: Sequence[str]) -> AsyncIterator[StopRequest]:
        channels = {keys_of(queue).control(self._db): queue for queue in queues}
        try:
            async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(*channels)
                async for message in pubsub.listen():
                    kind, _, task_id = str(message["data"]).partition(" ")
                    queue = channels.get(str(message["channel"]))
                    if queue is not None and kind in StopKind.__members__.values():
                        yield StopRequest(task_id, queue, StopKind(kind))
        except _UNREACHABLE as exc:
            raise QueueUnavailable(f"Redis is unreachable: {exc}") from exc

    @_reachable
    async def set_progress(self, task: Task, progress: Any) -> None:
        code = await self._scripts.set_progress(
            keys=[keys_of(task.queue).task(task.id)],
            args=[task.fence, codec.encode_json(progress)],
        )
        raise_for(int(code), task.id)

    @_reachable
    async def expired(self, queue: str, now: int, limit: int) -> list[Task]:
        keys = keys_of(queue)
        ids = cast(
            list[str],
            await self._redis.zrangebyscore(keys.active, "-inf", f"({now}", start=0, num=limit),
        )
        return await self._reader.tasks(queue, ids)

    @_reachable
    async def remove(self, task: Task) -> None:
        keys = keys_of(task.queue)
        code = await self._scripts.remove_task(
            keys=[keys.task(task.id), keys.removed(task.id), task_owner(task.id)],
            args=[task.id, self._window_ms, keys.prefix, task.queue],
        )
        raise_for_remove(int(code), task.id)

    @_reachable
    async def sweep(self, queue: str, finished_before: Mapping[TaskStatus, int], limit: int) -> int:
        keys = keys_of(queue)
        terminal = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
        cutoffs = [finished_before.get(status, 0) for status in terminal]
        ids = await self._sweep_candidates(queue, dict(zip(terminal, cutoffs, strict=True)), limit)
        if not ids:
            return 0
        per_task = [
            key
            for task_id in ids
            for key in (keys.task(task_id), keys.removed(task_id), task_owner(task_id))
        ]
        removed = await self._scripts.sweep_tasks(
            keys=[*(keys.state(status) for status in terminal), *per_task],
            args=[*cutoffs, self._window_ms, keys.prefix, queue, *ids],
        )
        return int(removed)

    async def _sweep_candidates(
        self, queue: str, finished_before: Mapping[TaskStatus, int], limit: int
    ) -> list[str]:
        """The oldest finished tasks past their keeping time (0: kept forever), at most
        `limit`; the sweep script checks each again."""
        rules = [(status, before) for status, before in finished_before.items() if before > 0]
        async with self._redis.pipeline(transaction=False) as pipe:
            for status, before in rules:
                pipe.zrangebyscore(keys_of(queue).state(status), "-inf", f"({before}", 0, limit)
            found: list[list[str]] = await pipe.execute()
        return [task_id for ids in found for task_id in ids][:limit]

    @_reachable
    async def set_paused(self, queue: str, paused: bool) -> None:
        keys = keys_of(queue)
        async with self._redis.pipeline(transaction=True) as pipe:
            if paused:
                pipe.hset(keys.meta, "paused", "1")
            else:
                pipe.hdel(keys.meta, "paused")
                pipe.zadd(keys.marker, {"0": 0})  # idle workers look again at once
            await pipe.execute()

    @_reachable
    async def wait_finished(self, task: Task, timeout_ms: int) -> Task:
        return await self._events.wait_finished(task, timeout_ms, self._reader.get)

    @_reachable
    async def events(self) -> EventFeed:
        return await self._events.stream()

    @_reachable
    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        return await self._reader.list_tasks(query)

    @_reachable
    async def stats(self, now: int) -> list[QueueStats]:
        return await self._reader.stats(now)

    @_reachable
    async def batch(self, batch_id: str) -> list[Task]:
        members = cast(list[str], await self._redis.lrange(batch(batch_id), 0, -1))
        if not members:
            raise TaskNotFound(batch_id)
        return await self._reader.members(member.split("\t", 1) for member in members)


def _enqueued(task: Task, reply: list[Any]) -> Enqueued:
    code = int(reply[0])
    if code == Code.STALE:
        return Enqueued(task, EnqueueOutcome.CONFLICT)
    if code == Code.EXISTS:
        return Enqueued(codec.decode(reply[1]), EnqueueOutcome.EXISTING)
    if code == Code.REMOVED:
        return Enqueued(task, EnqueueOutcome.REMOVED)
    return Enqueued(task, EnqueueOutcome.CREATED)
