"""SweepFinished: retention of finished tasks per status, on the fake queue."""

from __future__ import annotations

import contextlib
from random import Random

import pytest

from application.sweep_finished import Retention, SweepFinished
from domain.errors import TaskNotFound
from domain.task import Failure, Task, TaskError, TaskStatus
from domain.values import EnqueueOutcome
from tests.fakes import InMemoryTaskQueue, ManualClock

NOW = 1_700_000_000_000
DAY = 24 * 3600 * 1000
QUEUE = "default"


async def finish(queue: InMemoryTaskQueue, task_id: str, status: TaskStatus, at: int) -> None:
    task = Task(id=task_id, name="echo", payload={}, created_at=NOW, run_at=NOW)
    await queue.enqueue([task])
    if status is TaskStatus.CANCELLED:
        await queue.change(task.cancelled(at), task)
        return
    (running,) = (await queue.claim(QUEUE, "w", 1, 1_000, NOW)).tasks
    if status is TaskStatus.COMPLETED:
        await queue.settle(running.complete(None, at))
    else:
        failure = Failure(TaskError("RuntimeError", "boom"), retryable=False)
        await queue.settle(running.fail(failure, at, Random(0)))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
async def queue(clock: ManualClock) -> InMemoryTaskQueue:
    queue = InMemoryTaskQueue(DAY, clock)
    await finish(queue, "completed-8d", TaskStatus.COMPLETED, NOW - 8 * DAY)
    await finish(queue, "completed-6d", TaskStatus.COMPLETED, NOW - 6 * DAY)
    await finish(queue, "failed-8d", TaskStatus.FAILED, NOW - 8 * DAY)
    await finish(queue, "failed-31d", TaskStatus.FAILED, NOW - 31 * DAY)
    await finish(queue, "cancelled-8d", TaskStatus.CANCELLED, NOW - 8 * DAY)
    await queue.enqueue([Task(id="waiting", name="echo", payload={}, created_at=0, run_at=0)])
    return queue


async def remaining(queue: InMemoryTaskQueue) -> set[str]:
    ids = ["completed-8d", "completed-6d", "failed-8d", "failed-31d", "cancelled-8d", "waiting"]
    kept = set()
    for task_id in ids:
        with contextlib.suppress(TaskNotFound):
            kept.add((await queue.get(task_id)).id)
    return kept


async def test_the_default_retention_keeps_a_week_and_failures_a_month(
    queue: InMemoryTaskQueue, clock: ManualClock
) -> None:
    swept = await SweepFinished(queue, clock, Retention()).execute(QUEUE)

    assert swept == 3
    assert await remaining(queue) == {"completed-6d", "failed-8d", "waiting"}


async def test_a_zero_retention_keeps_that_status_forever(
    queue: InMemoryTaskQueue, clock: ManualClock
) -> None:
    retention = Retention(completed_ms=0, failed_ms=DAY, cancelled_ms=0)

    assert await SweepFinished(queue, clock, retention).execute(QUEUE) == 2

    assert await remaining(queue) == {"completed-8d", "completed-6d", "cancelled-8d", "waiting"}


async def test_a_sweep_removes_at_most_its_limit_per_call(
    queue: InMemoryTaskQueue, clock: ManualClock
) -> None:
    sweep = SweepFinished(queue, clock, Retention(DAY, DAY, DAY))

    assert [await sweep.execute(QUEUE, limit=2) for _ in range(4)] == [2, 2, 1, 0]
    assert await remaining(queue) == {"waiting"}


async def test_swept_ids_stay_reserved_for_the_idempotency_window(
    queue: InMemoryTaskQueue, clock: ManualClock
) -> None:
    await SweepFinished(queue, clock, Retention()).execute(QUEUE)
    same = Task(id="completed-8d", name="echo", payload={}, created_at=NOW, run_at=NOW)

    assert [r.outcome for r in await queue.enqueue([same])] == [EnqueueOutcome.REMOVED]
    clock.advance(DAY)
    assert [r.outcome for r in await queue.enqueue([same])] == [EnqueueOutcome.CREATED]


async def test_a_sweep_of_another_queue_removes_nothing(
    queue: InMemoryTaskQueue, clock: ManualClock
) -> None:
    assert await SweepFinished(queue, clock, Retention()).execute("elsewhere") == 0
    assert len(await remaining(queue)) == 6
