"""Fixtures of the queue contract: every test runs on the fake and on the Redis store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from application.clock import system_clock
from tests.contract.queue_support import CONFIGURED, WINDOW_MS, MakeQueue, TaskStore
from tests.fakes import InMemoryTaskQueue
from tests.stores import RedisStore, closing_stores

close_stores = pytest.fixture(autouse=True)(closing_stores)


@pytest.fixture
async def redis_queues() -> AsyncIterator[list[RedisStore]]:
    """The Redis adapters a test made, closed (their pub/sub listener) before the client."""
    made: list[RedisStore] = []
    yield made
    for queue in made:
        await queue.aclose()


@pytest.fixture(params=["fake", "redis"])
def make_queue(request: pytest.FixtureRequest) -> MakeQueue:
    """Adapters with a given idempotency window, all over one store."""
    if request.param == "fake":
        return lambda window_ms: InMemoryTaskQueue(window_ms, system_clock, CONFIGURED)
    client: Redis = request.getfixturevalue("redis")
    blocking: Redis = request.getfixturevalue("blocking_redis")
    made: list[RedisStore] = request.getfixturevalue("redis_queues")  # after the clients

    def make(window_ms: int) -> TaskStore:
        made.append(RedisStore(client, blocking, window_ms, queues=CONFIGURED))
        return made[-1]

    return make


@pytest.fixture
def queue(make_queue: MakeQueue) -> TaskStore:
    return make_queue(WINDOW_MS)
