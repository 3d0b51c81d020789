"""Admission and count retention, on the fake and the Redis store alike: a queue at its
depth limit refuses new tasks whole, never repeats; a count keeps the newest finished."""

from __future__ import annotations

from collections.abc import Callable
from random import Random

import pytest
from redis.asyncio import Redis

from application.clock import system_clock
from domain.admission import MAX_RETRY_AFTER_S, DepthLimits
from domain.errors import QueueFull, TaskNotFound
from domain.task import TaskStatus
from domain.values import EnqueueOutcome, TaskQuery
from tests.contract.queue_support import (
    CONFIGURED,
    OTHER,
    QUEUE,
    T0,
    WINDOW_MS,
    TaskStore,
    claim,
    failure,
    make_task,
)
from tests.fakes import InMemoryTaskQueue
from tests.stores import RedisStore

LIMIT = 3
MakeLimited = Callable[[DepthLimits], TaskStore]


@pytest.fixture(params=["fake", "redis"])
def make_limited(request: pytest.FixtureRequest) -> MakeLimited:
    if request.param == "fake":
        return lambda limits: InMemoryTaskQueue(WINDOW_MS, system_clock, CONFIGURED, limits)
    client: Redis = request.getfixturevalue("redis")
    blocking: Redis = request.getfixturevalue("blocking_redis")
    made: list[RedisStore] = request.getfixturevalue("redis_queues")

    def make(limits: DepthLimits) -> TaskStore:
        made.append(RedisStore(client, blocking, WINDOW_MS, queues=CONFIGURED, depth_limits=limits))
        return made[-1]

    return make


@pytest.fixture
def queue(make_limited: MakeLimited) -> TaskStore:
    """QUEUE holds at most LIMIT unfinished tasks; OTHER has no limit."""
    return make_limited(DepthLimits(0, {QUEUE: LIMIT}))


async def fill(queue: TaskStore, count: int = LIMIT, name: str = QUEUE) -> None:
    await queue.enqueue([make_task(f"{name}-t{n}", queue=name) for n in range(count)])


async def test_a_full_queue_refuses_a_new_task_and_stores_nothing(queue: TaskStore) -> None:
    await fill(queue)

    with pytest.raises(QueueFull) as refused:
        await queue.enqueue([make_task("late")])

    assert (refused.value.queue, refused.value.limit) == (QUEUE, LIMIT)
    assert refused.value.retry_after_s == MAX_RETRY_AFTER_S  # nothing finished lately
    with pytest.raises(TaskNotFound):
        await queue.get("late")
    assert (await queue.stats(T0))[0].counts[TaskStatus.WAITING] == LIMIT


async def test_a_repeat_of_a_stored_or_removed_id_is_answered_when_full(queue: TaskStore) -> None:
    await fill(queue, LIMIT - 1)
    (gone,) = await queue.enqueue([make_task("gone")])
    await queue.remove(gone.task)
    await fill(queue, 1, QUEUE)  # QUEUE-t0 again: not new
    await queue.enqueue([make_task("last")])

    again = await queue.enqueue([make_task(f"{QUEUE}-t0"), make_task("gone"), make_task("last")])

    assert [e.outcome for e in again] == [
        EnqueueOutcome.EXISTING,
        EnqueueOutcome.REMOVED,
        EnqueueOutcome.EXISTING,
    ]


async def test_a_batch_that_does_not_fit_is_refused_whole(queue: TaskStore) -> None:
    await fill(queue, 1)
    batch = [make_task(f"b{n}") for n in range(LIMIT)]  # one more than the room

    with pytest.raises(QueueFull):
        await queue.enqueue(batch)
    fits = await queue.enqueue([*batch[:-1], batch[0]])  # an id twice counts once

    assert [e.outcome for e in fits] == [*[EnqueueOutcome.CREATED] * 2, EnqueueOutcome.EXISTING]
    with pytest.raises(TaskNotFound):
        await queue.get(batch[-1].id)


async def test_a_request_across_queues_stores_nothing_when_one_is_full(queue: TaskStore) -> None:
    await fill(queue)

    with pytest.raises(QueueFull) as refused:
        await queue.enqueue([make_task("free", queue=OTHER), make_task("late")])

    assert refused.value.queue == QUEUE
    with pytest.raises(TaskNotFound):
        await queue.get("free")
    (stored,) = await queue.enqueue([make_task("free", queue=OTHER)])  # no limit there
    assert stored.outcome is EnqueueOutcome.CREATED


async def test_waiting_delayed_and_active_count_and_finished_ones_free_room(
    queue: TaskStore,
) -> None:
    await queue.enqueue([make_task("w1"), make_task("w2"), make_task("d", run_at=T0 + 60_000)])
    (active,) = await claim(queue)

    with pytest.raises(QueueFull):
        await queue.enqueue([make_task("late")])
    await queue.settle(active.complete({"ok": True}, T0 + 10))

    (admitted,) = await queue.enqueue([make_task("late", created_at=T0 + 20)])
    assert admitted.outcome is EnqueueOutcome.CREATED
    with pytest.raises(QueueFull) as refused:
        await queue.enqueue([make_task("later", created_at=T0 + 30)])
    # One finished within the last minute: one more to finish takes about a minute.
    assert refused.value.retry_after_s == MAX_RETRY_AFTER_S


async def test_retry_after_follows_the_recent_pace(make_limited: MakeLimited) -> None:
    queue = make_limited(DepthLimits(LIMIT))  # every queue
    await queue.enqueue([make_task(f"t{n}", created_at=T0 - 1_000) for n in range(LIMIT)])
    for n, task in enumerate(await claim(queue, LIMIT)):
        await queue.settle(task.complete(None, T0 - 500 + n))
    await fill(queue)

    with pytest.raises(QueueFull) as refused:
        await queue.enqueue([make_task("a", created_at=T0), make_task("b", created_at=T0)])

    assert refused.value.retry_after_s == 40  # 2 too many, 3 finished a minute: 40 s


async def test_a_count_keeps_the_newest_finished_and_reserves_the_ids_it_sweeps(
    queue: TaskStore,
) -> None:
    tasks = [make_task(f"f{n}", queue=OTHER) for n in range(5)]
    await queue.enqueue(tasks)
    for n, task in enumerate(await claim(queue, 5, name=OTHER)):
        await queue.settle(task.complete(None, T0 + n))
    keep = {TaskStatus.COMPLETED: 2}

    removed = await queue.sweep(OTHER, {}, 2, keep)  # at most 2 per call
    removed += await queue.sweep(OTHER, {}, 100, keep)

    assert removed == 3
    assert (await queue.get("f4")).status is TaskStatus.COMPLETED
    assert (await queue.get("f3")).status is TaskStatus.COMPLETED
    with pytest.raises(TaskNotFound):
        await queue.get("f2")
    (again,) = await queue.enqueue([make_task("f0", queue=OTHER)])
    assert again.outcome is EnqueueOutcome.REMOVED
    assert await queue.sweep(OTHER, {}, 100, keep) == 0


async def test_a_count_and_a_time_each_remove_what_they_reach(queue: TaskStore) -> None:
    await queue.enqueue([make_task(f"f{n}", queue=OTHER) for n in range(4)])
    for n, task in enumerate(await claim(queue, 4, name=OTHER)):
        done = task.complete(None, T0 + n) if n % 2 else task.fail(failure(False), T0 + n, Random())
        await queue.settle(done)
    rules = {TaskStatus.COMPLETED: T0 + 2}  # f1 is too old; f3 stays
    keep = {TaskStatus.FAILED: 1}  # f2 is the newest failed; f0 goes

    assert await queue.sweep(OTHER, rules, 100, keep) == 2
    kept = [task.id for task in (await queue.list_tasks(TaskQuery(queue=OTHER))).items]
    assert sorted(kept) == ["f2", "f3"]
