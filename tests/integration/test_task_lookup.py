"""A task is found by its id in one lookup, whatever the number of configured queues."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from domain.errors import TaskNotFound
from domain.task import Task
from tests.stores import RedisStore

NOW = 1_700_000_000_000
QUEUES = [f"q{n:04}" for n in range(3_000)]


@contextmanager
def counted(client: Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every command `client` sends meanwhile, on its own or in a pipeline."""
    sent: list[str] = []
    single = client.execute_command

    async def one(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return await single(*args, **options)

    pipelined = Pipeline.execute

    async def many(self: Pipeline, *args: Any, **options: Any) -> Any:
        sent.extend(str(command[0][0]) for command in self.command_stack)
        return await pipelined(self, *args, **options)

    with monkeypatch.context() as patched:
        patched.setattr(client, "execute_command", one)
        patched.setattr(Pipeline, "execute", many)
        yield sent


async def test_reading_by_id_costs_two_commands_with_3000_queues(
    redis: Redis, blocking_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = RedisStore(redis, blocking_redis, 60_000, queues=QUEUES)
    task = Task(id="the-one", name="echo", payload={}, created_at=NOW, run_at=NOW, queue=QUEUES[-1])
    await queue.enqueue([task])

    with counted(redis, monkeypatch) as sent:
        found = await queue.get("the-one")
        with pytest.raises(TaskNotFound):
            await queue.get("no-such-task")

    assert found.queue == QUEUES[-1]
    assert sent == ["GET", "HGETALL", "GET"]  # the id index, then the task's hash
    await queue.aclose()
