"""Locks taken with the tasks, on a real Redis: where `lock:task:<id>`'s one master is the
queue's Redis, the claim takes it, renewals renew it and the settle releases it, in the
scripts that move the task; and pottery can still extend and release such a lock."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from domain.errors import LockLost
from domain.task import Task
from domain.values import ClaimRequest, LeaseState
from infrastructure.lock import TaskRedlock
from tests.stores import RedisStore

LEASE_MS = 30_000
QUEUE = "locks-with-tasks"


def now_ms() -> int:
    return int(time.time() * 1000)


def store(redis: Redis, blocking: Redis) -> RedisStore:
    return RedisStore(redis, blocking, 60_000, queues=[QUEUE], locks_with_tasks=True)


async def enqueue(queue: RedisStore, *task_ids: str) -> None:
    now = now_ms()
    await queue.enqueue([Task(task_id, "echo", {}, now, now, queue=QUEUE) for task_id in task_ids])


async def test_a_claim_takes_each_task_s_lock_with_the_worker_s_token(
    redis: Redis, blocking_redis: Redis
) -> None:
    queue = store(redis, blocking_redis)
    await enqueue(queue, "t1", "t2")

    batch = await queue.claim(QUEUE, "w1", 2, LEASE_MS, now_ms())

    for task in batch.tasks:
        lease = batch.leases[task.id]
        assert (lease.resource, lease.ttl_ms, lease.with_task) == (
            f"task:{task.id}",
            LEASE_MS,
            True,
        )
        assert lease.token == f"w1:{task.fence}"
        assert await redis.get(f"lock:task:{task.id}") == lease.token
        assert LEASE_MS - 1_000 < await redis.pttl(f"lock:task:{task.id}") <= LEASE_MS


async def test_a_lock_held_by_another_is_left_alone_and_the_task_comes_without_it(
    redis: Redis, blocking_redis: Redis
) -> None:
    queue = store(redis, blocking_redis)
    await enqueue(queue, "held")
    await redis.set("lock:task:held", "someone-else", px=LEASE_MS)

    batch = await queue.claim(QUEUE, "w1", 1, LEASE_MS, now_ms())

    assert [task.id for task in batch.tasks] == ["held"]
    assert batch.leases == {}  # the worker asks the lock service, as the policy says
    assert await redis.get("lock:task:held") == "someone-else"


async def test_the_settle_releases_the_lock_and_claims_the_next_task_with_its_lock(
    redis: Redis, blocking_redis: Redis
) -> None:
    queue = store(redis, blocking_redis)
    await enqueue(queue, "first", "second")
    first_batch = await queue.claim(QUEUE, "w1", 1, LEASE_MS, now_ms())
    (first,) = first_batch.tasks

    then = ClaimRequest("w1", 1, LEASE_MS, now_ms())
    nxt = await queue.settle(
        first.complete("ok", now_ms()), lease=first_batch.leases["first"], then=then
    )

    assert not await redis.exists("lock:task:first")
    assert (await queue.get("first")).status.value == "completed"
    assert [task.id for task in nxt.tasks] == ["second"]
    assert await redis.get("lock:task:second") == nxt.leases["second"].token


async def test_a_refused_outcome_still_releases_the_lock_and_claims_nothing(
    redis: Redis, blocking_redis: Redis
) -> None:
    queue = store(redis, blocking_redis)
    await enqueue(queue, "t1", "other")
    batch = await queue.claim(QUEUE, "w1", 1, LEASE_MS, now_ms())
    (task,) = batch.tasks
    stale = replace(task, fence=task.fence - 1)  # a worker whose claim was superseded

    with pytest.raises(LockLost):
        await queue.settle(
            stale.complete("late", now_ms()),
            lease=batch.leases["t1"],
            then=ClaimRequest("w1", 1, LEASE_MS, now_ms()),
        )

    assert not await redis.exists("lock:task:t1")  # released whatever the outcome
    assert (await queue.get("t1")).status.value == "active"
    assert (await queue.get("other")).status.value == "waiting"  # nothing was claimed


async def test_a_settle_leaves_another_worker_s_lock_alone(
    redis: Redis, blocking_redis: Redis
) -> None:
    queue = store(redis, blocking_redis)
    await enqueue(queue, "t1")
    batch = await queue.claim(QUEUE, "w1", 1, LEASE_MS, now_ms())
    (task,) = batch.tasks
    await redis.set("lock:task:t1", "w2:99", px=LEASE_MS)  # expired and taken meanwhile

    await queue.settle(task.complete("ok", now_ms()), lease=batch.leases["t1"])

    assert await redis.get("lock:task:t1") == "w2:99"


async def test_a_settle_retried_after_its_answer_was_lost_is_accepted_again(
    redis: Redis, blocking_redis: Redis
) -> None:
    queue = store(redis, blocking_redis)
    await enqueue(queue, "t1")
    (task,) = (await queue.claim(QUEUE, "w1", 1, LEASE_MS, now_ms())).tasks
    outcome = task.complete("ok", now_ms())

    await queue.settle(outcome)
    await queue.settle(outcome)  # the same outcome under the same token: no LockLost

    assert (await queue.get("t1")).history == outcome.history


async def test_one_renewal_pushes_every_lease_and_lock_and_reports_a_lost_lock(
    redis: Redis, blocking_redis: Redis
) -> None:
    queue = store(redis, blocking_redis)
    await enqueue(queue, "a", "b", "c")
    now = now_ms()
    batch = await queue.claim(QUEUE, "w1", 3, 3_000, now)
    await redis.set("lock:task:c", "w2:1", px=3_000)  # c's lock expired and was taken
    held = [(task, batch.leases[task.id]) for task in batch.tasks]

    states = await queue.extend_leases(held, LEASE_MS, now + 1_000)

    assert states == [LeaseState.HELD, LeaseState.HELD, LeaseState.LOST]
    for task_id in ("a", "b"):
        assert await redis.pttl(f"lock:task:{task_id}") > 3_000
        deadline = await redis.zscore(f"conveyor:{{{QUEUE}}}:active", task_id)
        assert deadline == now + 1_000 + LEASE_MS
    assert await redis.get("lock:task:c") == "w2:1"


async def test_pottery_extends_and_releases_a_lock_the_claim_took(
    redis: Redis, blocking_redis: Redis
) -> None:
    """The claim's value is a plain string, and its key pottery's: pottery's own scripts
    work on it (a lock service could take over such a lease)."""
    queue = store(redis, blocking_redis)
    await enqueue(queue, "t1")
    batch = await queue.claim(QUEUE, "w1", 1, 3_000, now_ms())
    lock = TaskRedlock(key="task:t1", masters={redis}, auto_release_time=LEASE_MS / 1000)
    lock._uuid = batch.leases["t1"].token  # the test plays the lock service taking over

    await lock.extend()
    assert await redis.pttl("lock:task:t1") > 3_000
    await lock.release()
    assert not await redis.exists("lock:task:t1")
