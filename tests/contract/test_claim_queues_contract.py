"""A claim over several queues: quotas first, then the slots left in the same order; on the
fake, on one Redis (one script), and queue by queue as on a Redis Cluster."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from domain.values import ClaimBatch, ClaimRequest
from infrastructure.redis.transitions import RedisTransitions
from tests.contract.queue_support import (
    CONFIGURED,
    LEASE_MS,
    QA,
    QB,
    QC,
    T0,
    WAIT_S,
    WINDOW_MS,
    TaskStore,
    make_task,
)
from tests.fakes import InMemoryTaskQueue
from tests.stores import RedisStore


@pytest.fixture(params=["fake", "redis", "redis-queue-by-queue"])
def store(request: pytest.FixtureRequest) -> TaskStore:
    if request.param == "fake":
        return InMemoryTaskQueue(WINDOW_MS, queues=CONFIGURED)
    redis: Redis = request.getfixturevalue("redis")
    blocking: Redis = request.getfixturevalue("blocking_redis")
    stores: list[RedisStore] = request.getfixturevalue("redis_queues")  # closed before them
    made = RedisStore(redis, blocking, WINDOW_MS, queues=CONFIGURED)
    stores.append(made)
    if request.param == "redis-queue-by-queue":
        made.transitions = RedisTransitions(redis, made.lane, WINDOW_MS, multi_queue_scripts=False)
    return made


async def fill(store: TaskStore, queue: str, count: int, **changes: object) -> None:
    await store.enqueue([make_task(f"{queue}-{n}", queue=queue, **changes) for n in range(count)])


async def claim(
    store: TaskStore, quotas: list[tuple[str, int]], limit: int, now: int = T0
) -> ClaimBatch:
    return await store.claim_queues(quotas, ClaimRequest("w1", limit, LEASE_MS, now))


def queues_of(batch: ClaimBatch) -> list[str]:
    return [task.queue for task in batch.tasks]


async def test_strict_order_takes_a_later_queue_only_for_what_earlier_ones_lack(
    store: TaskStore,
) -> None:
    await fill(store, QA, 1)
    await fill(store, QC, 5)

    batch = await claim(store, [(QA, 4), (QB, 0), (QC, 0)], 4)

    assert queues_of(batch) == [QA, QC, QC, QC]
    assert [t.id for t in batch.tasks] == [f"{QA}-0", f"{QC}-0", f"{QC}-1", f"{QC}-2"]
    assert all(t.worker_id == "w1" and t.started_at == T0 for t in batch.tasks)


async def test_each_queue_takes_its_quota_when_all_are_busy(store: TaskStore) -> None:
    for queue in (QA, QB, QC):
        await fill(store, queue, 5)

    batch = await claim(store, [(QB, 1), (QA, 3), (QC, 0)], 4)

    assert sorted(queues_of(batch)) == [QA, QA, QA, QB]


async def test_a_quota_a_queue_cannot_fill_goes_to_the_others_in_order(store: TaskStore) -> None:
    await fill(store, QA, 5)
    await fill(store, QB, 1)
    await fill(store, QC, 5)

    batch = await claim(store, [(QB, 3), (QC, 1), (QA, 1)], 5)

    # QB gives its one, QC and QA their quotas; QB's two slots left go to QC, next in line.
    assert sorted(queues_of(batch)) == [QA, QB, QC, QC, QC]


async def test_nothing_is_claimed_beyond_the_limit(store: TaskStore) -> None:
    for queue in (QA, QB):
        await fill(store, queue, 5)

    batch = await claim(store, [(QA, 2), (QB, 2)], 3)  # quotas beyond the limit: a caller's slip

    assert len(batch.tasks) == 3
    left = await claim(store, [(QA, 10), (QB, 0)], 10)
    assert len(left.tasks) == 7


async def test_a_due_delayed_task_of_an_earlier_queue_counts_as_ready(store: TaskStore) -> None:
    await fill(store, QA, 1, run_at=T0 + 50)
    await fill(store, QB, 1)

    early = await claim(store, [(QA, 1), (QB, 0)], 1, now=T0 + 49)
    due = await claim(store, [(QA, 1), (QB, 0)], 1, now=T0 + 50)

    assert queues_of(early) == [QB]
    assert [t.id for t in due.tasks] == [f"{QA}-0"]


async def test_a_paused_queue_gives_nothing_and_no_due_time(store: TaskStore) -> None:
    await fill(store, QA, 3)
    await fill(store, QB, 1, run_at=T0 + 500)
    await fill(store, QC, 1, run_at=T0 + 900)
    await store.set_paused(QA, True)

    batch = await claim(store, [(QA, 2), (QB, 0), (QC, 0)], 2)
    await store.set_paused(QB, True)
    later = await claim(store, [(QA, 2), (QB, 0), (QC, 0)], 2)

    assert (batch.tasks, batch.next_due_at) == ([], T0 + 500)
    assert (later.tasks, later.next_due_at) == ([], T0 + 900)


async def test_no_due_time_is_told_when_something_was_claimed(store: TaskStore) -> None:
    await fill(store, QA, 1)
    await fill(store, QB, 1, run_at=T0 + 500)

    batch = await claim(store, [(QA, 2), (QB, 0)], 2)

    assert (queues_of(batch), batch.next_due_at) == ([QA], None)


async def test_one_queue_is_a_plain_claim(store: TaskStore) -> None:
    await fill(store, QA, 3)

    batch = await claim(store, [(QA, 2)], 2)
    rest = await claim(store, [(QA, 2)], 2)

    assert [t.id for t in batch.tasks + rest.tasks] == [f"{QA}-0", f"{QA}-1", f"{QA}-2"]
    assert [t.fence for t in batch.tasks + rest.tasks] == [1, 2, 3]


async def test_each_claimed_task_is_reported_with_its_queue(store: TaskStore) -> None:
    await fill(store, QA, 1)
    await fill(store, QB, 1)
    feed = await store.events()
    try:
        await claim(store, [(QA, 1), (QB, 1)], 2)
        await store.enqueue([make_task("sentinel", queue=QC)])
        seen: list[tuple[str, str, str]] = []
        while not any(task_id == "sentinel" for task_id, _, _ in seen):
            batch = await feed.next_batch(WAIT_S)
            assert batch, f"no event within {WAIT_S} s"
            seen += [(e.task_id, e.queue, e.status) for e in batch]
    finally:
        feed.close()

    assert sorted(seen[:-1]) == [(f"{QA}-0", QA, "active"), (f"{QB}-0", QB, "active")]
