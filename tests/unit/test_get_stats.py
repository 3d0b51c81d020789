"""GetStats: totals over queues, per-type counts, and percentiles of recent durations."""

from __future__ import annotations

from random import Random

import pytest

from application.get_stats import GetStats, TypeStats, percentile
from domain.task import Failure, Task, TaskError, TaskStatus
from domain.values import MinuteCount
from tests.fakes import InMemoryTaskQueue, ManualClock

NOW = 1_700_000_000_000


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([], 50, None),
        ([7], 50, 7),
        ([7], 95, 7),
        ([3, 1, 2], 50, 2),
        ([1, 2, 3, 4], 50, 2),  # nearest rank: ceil(0.5 * 4) = 2nd
        ([1, 2, 3, 4], 95, 4),
        (list(range(100, 0, -1)), 50, 50),
        (list(range(1, 101)), 95, 95),
        (list(range(1, 21)), 95, 19),
        ([5, 5, 5, 100], 95, 100),
    ],
)
def test_percentile_is_the_nearest_rank(values: list[int], pct: int, expected: int | None) -> None:
    assert percentile(values, pct) == expected


def test_percentile_does_not_reorder_its_input() -> None:
    values = [3, 1, 2]
    percentile(values, 50)
    assert values == [3, 1, 2]


async def run(queue: InMemoryTaskQueue, task: Task, started: int, finished: int) -> None:
    await queue.enqueue([task])
    (claimed,) = (await queue.claim(task.queue, "w", 1, 10_000, started)).tasks
    await queue.settle(claimed.complete(None, finished))


def task(task_id: str, name: str, queue: str) -> Task:
    return Task(id=task_id, name=name, payload={}, created_at=NOW, run_at=NOW, queue=queue)


async def test_stats_add_up_queues_and_merge_task_types() -> None:
    queue = InMemoryTaskQueue(60_000, queues=("q1", "q2", "q3"))
    for n, duration in enumerate([10, 20, 30]):
        await run(queue, task(f"a{n}", "echo", "q1"), NOW, NOW + duration)
    await run(queue, task("b0", "echo", "q2"), NOW, NOW + 1_000)
    await run(queue, task("c0", "mail", "q2"), NOW, NOW + 5)
    await queue.enqueue([task("w0", "echo", "q2"), task("w1", "mail", "q1")])
    await queue.set_paused("q3", True)

    stats = await GetStats(queue, ManualClock(NOW + 30_000)).execute()

    assert [q.queue for q in stats.queues] == ["q1", "q2", "q3"]
    assert stats.totals == {
        **dict.fromkeys(TaskStatus, 0),
        TaskStatus.COMPLETED: 5,
        TaskStatus.WAITING: 2,
    }
    assert stats.task_types == {
        "echo": TypeStats(
            {**dict.fromkeys(TaskStatus, 0), TaskStatus.COMPLETED: 4, TaskStatus.WAITING: 1},
            p50_ms=20,
            p95_ms=1_000,
        ),
        "mail": TypeStats(
            {**dict.fromkeys(TaskStatus, 0), TaskStatus.COMPLETED: 1, TaskStatus.WAITING: 1},
            p50_ms=5,
            p95_ms=5,
        ),
    }
    assert (stats.last_minute, stats.last_hour) == (5, 5)


async def test_stats_of_an_empty_store() -> None:
    stats = await GetStats(InMemoryTaskQueue(60_000, queues=()), ManualClock(NOW)).execute()

    assert stats.totals == dict.fromkeys(TaskStatus, 0)
    assert (stats.queues, stats.task_types, stats.last_minute, stats.last_hour) == ([], {}, 0, 0)
    minute = NOW - NOW % 60_000
    assert stats.per_minute == [
        MinuteCount(minute - n * 60_000, 0, 0) for n in range(60, -1, -1)
    ]  # every minute, oldest first, with no queue at all


async def test_the_per_minute_series_adds_up_queues() -> None:
    queue = InMemoryTaskQueue(60_000, queues=("q1", "q2"))
    await run(queue, task("a", "echo", "q1"), NOW, NOW + 5)
    await run(queue, task("b", "echo", "q2"), NOW, NOW + 5)
    await queue.enqueue([task("c", "echo", "q2")])
    (claimed,) = (await queue.claim("q2", "w", 1, 10_000, NOW)).tasks
    failure = Failure(TaskError("Boom", "no"), retryable=False)
    await queue.settle(claimed.fail(failure, NOW + 60_000, Random(0)))

    stats = await GetStats(queue, ManualClock(NOW + 60_000)).execute()

    assert len(stats.per_minute) == 61
    assert stats.per_minute[-2:] == [
        MinuteCount(NOW - NOW % 60_000, 2, 0),
        MinuteCount(NOW - NOW % 60_000 + 60_000, 1, 1),
    ]
    assert sum(minute.finished for minute in stats.per_minute) == 3


async def test_a_type_without_completions_has_no_percentiles() -> None:
    queue = InMemoryTaskQueue(60_000, queues=("q1",))
    await queue.enqueue([task("t1", "echo", "q1")])

    stats = await GetStats(queue, ManualClock(NOW)).execute()

    assert (stats.task_types["echo"].p50_ms, stats.task_types["echo"].p95_ms) == (None, None)
