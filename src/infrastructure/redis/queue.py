"""RedisTaskQueue: ITaskQueue on redis-py asyncio, every transition one Lua script."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine, Sequence
from functools import lru_cache
from typing import Any, ParamSpec, TypeVar, cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from domain.errors import QueueUnavailable, TaskNotFound
from domain.ports import ClaimBatch, Enqueued, EnqueueOutcome
from domain.task import Task, TaskStatus
from infrastructure.redis import codec
from infrastructure.redis.keys import QUEUES, QueueKeys
from infrastructure.redis.scripts import (
    Code,
    Scripts,
    raise_for,
    raise_for_enqueue,
    raise_for_remove,
)
from infrastructure.redis.waiter import MarkerWaiter

_QUEUE_REFRESH_S = 60.0  # re-announce a queue in the registry set at most this often

P = ParamSpec("P")
R = TypeVar("R")


@lru_cache(maxsize=1024)
def keys_of(queue: str) -> QueueKeys:
    return QueueKeys(queue)


def _reachable(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Report a Redis that cannot be reached as the domain's QueueUnavailable."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise QueueUnavailable(f"Redis is unreachable: {exc}") from exc

    return call


class RedisTaskQueue:
    """The queue's state in Redis: a hash per task, a sorted set per status.

    Both clients must decode responses to str; `blocking_client` holds the one connection
    idle workers block on. `idempotency_window_ms` is how long a removed task's id keeps
    answering "removed" to a repeated enqueue.
    """

    def __init__(self, client: Redis, blocking_client: Redis, idempotency_window_ms: int) -> None:
        self._redis = client
        self._waiter = MarkerWaiter(client, blocking_client)
        self._scripts = Scripts.register(client)
        self._window_ms = idempotency_window_ms
        self._announced: dict[str, float] = {}

    @_reachable
    async def enqueue(self, tasks: Sequence[Task]) -> list[Enqueued]:
        by_queue: dict[str, list[int]] = {}
        for index, task in enumerate(tasks):
            by_queue.setdefault(task.queue, []).append(index)
        batches = [[tasks[index] for index in indexes] for indexes in by_queue.values()]
        if len(batches) == 1:
            replies = [await self._enqueue_batch(batches[0], self._redis)]
        else:
            async with self._redis.pipeline(transaction=False) as pipe:
                for batch in batches:
                    await self._enqueue_batch(batch, pipe)
                replies = await pipe.execute()
        await self._announce(set(by_queue))
        outcomes: list[Enqueued | None] = [None] * len(tasks)
        for indexes, batch_replies in zip(by_queue.values(), replies, strict=True):
            for index, reply in zip(indexes, batch_replies, strict=True):
                outcomes[index] = _enqueued(tasks[index], reply)
        return [outcome for outcome in outcomes if outcome is not None]

    async def _enqueue_batch(self, tasks: Sequence[Task], client: Any) -> Any:
        """One script call stores a whole batch of one queue (its keys share a slot)."""
        keys = keys_of(tasks[0].queue)
        per_task: list[str] = []
        described = []
        for task in tasks:
            per_task += [keys.task(task.id), keys.removed(task.id)]
            fields = codec.encode(task)
            fields["fp"] = codec.fingerprint(task)
            described.append(
                {
                    "id": task.id,
                    "fp": fields["fp"],
                    "status": task.status.value,
                    "run_at": task.run_at,
                    "priority": task.priority,
                    "fields": fields,
                }
            )
        return await self._scripts.enqueue_tasks(
            keys=[keys.wait, keys.delayed, keys.marker, keys.seq, *per_task],
            args=[codec.encode_json(described)],
            client=client,
        )

    async def _announce(self, queues: set[str]) -> None:
        now = time.monotonic()
        fresh = [q for q in queues if now - self._announced.get(q, -_QUEUE_REFRESH_S) >= 60]
        if fresh:
            await self._redis.sadd(QUEUES, *fresh)
            self._announced.update(dict.fromkeys(fresh, now))

    @_reachable
    async def get(self, task_id: str, queue: str | None = None) -> Task:
        queues = [queue] if queue else sorted(await self._redis.smembers(QUEUES))
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in queues:
                pipe.hgetall(keys_of(name).task(task_id))
            found = [fields for fields in await pipe.execute() if fields]
        if not found:
            raise TaskNotFound(task_id)
        return codec.decode(found[0])

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
            args=[now, limit, now + lease_ms, worker_id, keys.task_prefix],
        )
        next_due = int(reply[0])
        tasks = [codec.decode(fields) for fields in reply[1:]]
        return ClaimBatch(tasks, None if next_due < 0 else next_due)

    @_reachable
    async def wait_for_work(self, queues: Sequence[str], timeout_ms: int) -> None:
        if timeout_ms > 0:
            await self._waiter.wait([keys_of(q).marker for q in queues], timeout_ms)

    @_reachable
    async def settle(self, task: Task, *, lease_expired_by: int | None = None) -> None:
        keys = keys_of(task.queue)
        present, absent = codec.encode_changes(task)
        score = task.run_at if task.status is TaskStatus.DELAYED else task.finished_at or 0
        code = await self._scripts.settle_task(
            keys=[
                keys.task(task.id),
                keys.active,
                keys.state(task.status),
                keys.marker,
                keys.seq,
                keys.delayed,
            ],
            args=[
                task.id,
                task.fence,
                task.status.value,
                score,
                lease_expired_by or 0,
                len(present),
                *[item for pair in present.items() for item in pair],
                *absent,
            ],
        )
        raise_for(int(code), task.id)

    @_reachable
    async def extend_lease(self, task: Task, lease_ms: int, now: int) -> None:
        keys = keys_of(task.queue)
        code = await self._scripts.extend_lease(
            keys=[keys.task(task.id), keys.active], args=[task.id, task.fence, now + lease_ms]
        )
        raise_for(int(code), task.id)

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
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hgetall(keys.task(task_id))
            found = await pipe.execute()
        return [codec.decode(fields) for fields in found if fields]

    @_reachable
    async def remove(self, task: Task) -> None:
        keys = keys_of(task.queue)
        code = await self._scripts.remove_task(
            keys=[keys.task(task.id), keys.removed(task.id), *keys.state_sets],
            args=[task.id, self._window_ms],
        )
        raise_for_remove(int(code), task.id)


def _enqueued(task: Task, reply: list[Any]) -> Enqueued:
    code = int(reply[0])
    raise_for_enqueue(code, task.id)
    if code == Code.EXISTS:
        return Enqueued(codec.decode(reply[1]), EnqueueOutcome.EXISTING)
    if code == Code.REMOVED:
        return Enqueued(task, EnqueueOutcome.REMOVED)
    return Enqueued(task, EnqueueOutcome.CREATED)
