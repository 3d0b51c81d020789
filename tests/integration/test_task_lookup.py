"""A task is found by its id in one lookup, whatever the number of configured queues."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from domain.errors import TaskNotFound
from domain.task import Task
from tests.round_trips import round_trips
from tests.stores import RedisStore

NOW = 1_700_000_000_000
QUEUES = [f"q{n:04}" for n in range(3_000)]


@pytest.mark.single_redis
async def test_reading_by_id_costs_two_commands_with_3000_queues(
    redis: Redis, blocking_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = RedisStore(redis, blocking_redis, 60_000, queues=QUEUES)
    task = Task(id="the-one", name="echo", payload={}, created_at=NOW, run_at=NOW, queue=QUEUES[-1])
    await queue.enqueue([task])

    with round_trips(monkeypatch, redis) as trips:
        found = await queue.get("the-one")
        with pytest.raises(TaskNotFound):
            await queue.get("no-such-task")

    assert found.queue == QUEUES[-1]
    sent = [command for trip in trips for command in trip]
    assert sent == ["GET", "HGETALL", "GET"]  # the id index, then the task's hash
    await queue.aclose()
