"""A worker's outcome and its lock's release in one script, on a real Redis: when the lock's
only master is the queue's own Redis, settle deletes `lock:task:<id>` if it still holds the
worker's value, whatever the move does, and the lock service then sends nothing; with other
masters the lock is left to the lock service."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from domain.errors import LockLost, LockNotAcquired
from domain.task import Task
from domain.values import Lease
from infrastructure.lock import RedlockService
from infrastructure.redis.client import create_redis
from infrastructure.redis.queue import RedisTaskQueue
from tests.conftest import TEST_REDIS_URL

LOCK_TTL_MS = 30_000
QUEUE = "release-with-outcome"


def now_ms() -> int:
    return int(time.time() * 1000)


async def running_task(queue: RedisTaskQueue, task_id: str) -> Task:
    now = now_ms()
    await queue.enqueue([Task(task_id, "echo", {}, now, now, queue=QUEUE)])
    (task,) = (await queue.claim(QUEUE, "w1", 1, LOCK_TTL_MS, now)).tasks
    return task


async def lease_of(locks: RedlockService, task: Task) -> Lease:
    return await locks.acquire(f"task:{task.id}", LOCK_TTL_MS, None)


async def test_settle_releases_the_lock_it_was_reached_under(
    redis: Redis, blocking_redis: Redis
) -> None:
    locks = RedlockService([redis])
    queue = RedisTaskQueue(redis, blocking_redis, 60_000, locks)
    task = await running_task(queue, "t1")
    lease = await lease_of(locks, task)
    assert await redis.exists("lock:task:t1")

    await queue.settle(task.complete("ok", now_ms()), release=lease)

    assert not await redis.exists("lock:task:t1")
    assert (await queue.get("t1")).status.value == "completed"
    await locks.release(lease)  # handed over: nothing to do, and no error
    again = await locks.acquire("task:t1", LOCK_TTL_MS, None)  # free for anyone
    await locks.release(again)


async def test_a_refused_outcome_still_releases_the_lock(
    redis: Redis, blocking_redis: Redis
) -> None:
    locks = RedlockService([redis])
    queue = RedisTaskQueue(redis, blocking_redis, 60_000, locks)
    task = await running_task(queue, "t2")
    lease = await lease_of(locks, task)
    await queue.change(task.killed(now_ms()), task)  # an operator's kill: the fence moves on

    with pytest.raises(LockLost):
        await queue.settle(task.complete("late", now_ms()), release=lease)

    assert not await redis.exists("lock:task:t2")
    assert (await queue.get("t2")).status.value == "failed"  # the kill stands


async def test_a_lock_another_worker_took_meanwhile_is_left_alone(
    redis: Redis, blocking_redis: Redis
) -> None:
    locks = RedlockService([redis])
    queue = RedisTaskQueue(redis, blocking_redis, 60_000, locks)
    task = await running_task(queue, "t3")
    lease = await lease_of(locks, task)
    # Our lease expired and another worker's lock now holds the key, with its own value.
    await redis.set("lock:task:t3", "another-workers-value", px=LOCK_TTL_MS)

    await queue.settle(task.complete("ok", now_ms()), release=lease)

    assert await redis.get("lock:task:t3") == "another-workers-value"


async def test_with_other_masters_the_lock_is_left_to_the_lock_service(
    redis: Redis, blocking_redis: Redis
) -> None:
    other_master = create_redis(TEST_REDIS_URL)  # another client: not the queue's own
    try:
        locks = RedlockService([other_master])
        queue = RedisTaskQueue(redis, blocking_redis, 60_000, locks)
        task = await running_task(queue, "t4")
        lease = await lease_of(locks, task)

        await queue.settle(task.complete("ok", now_ms()), release=lease)

        assert await redis.exists("lock:task:t4")  # still held: settle left it alone
        with pytest.raises(LockNotAcquired):
            await locks.acquire("task:t4", LOCK_TTL_MS, None)
        await locks.release(lease)
        assert not await redis.exists("lock:task:t4")
    finally:
        await other_master.aclose()
