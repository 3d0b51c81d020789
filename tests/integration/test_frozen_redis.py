"""The clients against a frozen Redis (SIGSTOP): each command gives up within the timeout,
once; a late reply is never taken for the next command's; pub/sub waits through idleness;
an idle worker's block ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from domain.errors import QueueUnavailable
from domain.task import Task, TaskStatus
from infrastructure.redis.client import create_blocking_redis, create_redis
from infrastructure.redis.waiter import MarkerWaiter
from tests.freezable_redis import FreezableRedis, freezable_redis
from tests.stores import RedisStore

TIMEOUT_MS = 300
WAIT_S = 10.0  # bound on any wait, far above what a correct client takes
MARKER = "conveyor:{frozen-test}:marker"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FreezableRedis]:
    with freezable_redis(tmp_path / "redis") as started:
        yield started


@pytest.fixture
async def client(server: FreezableRedis) -> AsyncIterator[Redis]:
    redis = create_redis(server.url, TIMEOUT_MS)
    try:
        yield redis
    finally:
        server.thaw()
        await redis.aclose()


async def timed_out(call: asyncio.Future[object] | object) -> float:
    """Seconds until `call` raised redis-py's TimeoutError."""
    started = time.monotonic()
    with pytest.raises(RedisTimeoutError):
        await asyncio.wait_for(call, WAIT_S)  # type: ignore[arg-type]
    return time.monotonic() - started


async def test_a_command_gives_up_within_the_timeout_once(
    server: FreezableRedis, client: Redis
) -> None:
    await client.set("k", "v")  # a pooled connection, open before the freeze
    with server.frozen():
        elapsed = await timed_out(client.get("k"))
    # One timeout, not redis-py's default of one and three retries.
    assert TIMEOUT_MS / 1000 <= elapsed < 2 * TIMEOUT_MS / 1000


async def test_a_new_connection_gives_up_within_the_timeout_once(
    server: FreezableRedis, client: Redis
) -> None:
    with server.frozen():  # the kernel accepts the connection; Redis never greets it
        elapsed = await timed_out(client.get("k"))
    assert elapsed < 2 * TIMEOUT_MS / 1000


async def test_a_late_reply_is_never_read_as_the_next_command_s(
    server: FreezableRedis, client: Redis
) -> None:
    await client.mset({"first": "1", "second": "2", "third": "3"})
    with server.frozen():
        await timed_out(client.get("first"))
        async with client.pipeline(transaction=False) as pipe:
            pipe.get("first").get("second")
            await timed_out(pipe.execute())
    # Redis now answers the commands it had read: to connections that were dropped.
    assert await client.get("second") == "2"
    assert await client.get("third") == "3"
    async with client.pipeline(transaction=False) as pipe:
        assert await pipe.get("third").get("first").execute() == ["3", "1"]


async def test_an_idle_subscription_outlives_the_timeout(client: Redis) -> None:
    async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe("news")

        async def first_message() -> object:
            async for message in pubsub.listen():
                return message["data"]
            return None

        listening = asyncio.create_task(first_message())
        done, _ = await asyncio.wait({listening}, timeout=5 * TIMEOUT_MS / 1000)
        assert not done, "listen() ended on an idle channel"
        await client.publish("news", "hello")
        assert await asyncio.wait_for(listening, WAIT_S) == "hello"


async def test_an_idle_worker_s_block_ends_while_redis_is_frozen(
    server: FreezableRedis, client: Redis
) -> None:
    blocking = create_blocking_redis(server.url, TIMEOUT_MS, longest_block_ms=500)
    other = create_blocking_redis(server.url, TIMEOUT_MS, longest_block_ms=500)
    try:
        waiter = MarkerWaiter(client, blocking)
        await waiter.wait([MARKER], 10)  # knows its connection's id already
        with server.frozen():
            started = time.monotonic()
            await asyncio.wait_for(waiter.wait([MARKER], 200), WAIT_S)
            assert time.monotonic() - started < 0.2 + 2 * TIMEOUT_MS / 1000
            fresh = MarkerWaiter(client, other)
            with pytest.raises(RedisTimeoutError):  # it cannot even learn its connection's id
                await asyncio.wait_for(fresh.wait([MARKER], 200), WAIT_S)
        await waiter.wait([MARKER], 10)  # and works again once Redis is back
    finally:
        await blocking.aclose()
        await other.aclose()


async def test_a_claim_whose_answer_was_lost_ran_and_its_tasks_can_be_found(
    server: FreezableRedis, client: Redis
) -> None:
    """What the worker's adoption of such tasks rests on: Redis runs the claim it had
    read once it resumes, and the tasks' lease tells exactly when they were claimed."""
    now, lease_ms = 1_700_000_000_000, 60_000
    blocking = create_blocking_redis(server.url, TIMEOUT_MS)
    queue = RedisStore(client, blocking, idempotency_window_ms=60_000)
    try:
        await queue.claim("default", "w1", 1, lease_ms, now)  # the script is loaded
        task = Task(id="t1", name="echo", payload={}, created_at=now, run_at=now)
        await queue.enqueue([task])
        with server.frozen(), pytest.raises(QueueUnavailable):
            await asyncio.wait_for(queue.claim("default", "w1", 5, lease_ms, now + 1), WAIT_S)

        (found,) = await queue.expired("default", now + 1 + lease_ms + 1, 100)
        assert (found.id, found.status, found.worker_id) == ("t1", TaskStatus.ACTIVE, "w1")
        assert found.started_at == now + 1
        assert not await queue.expired("default", now + 1 + lease_ms, 100)
    finally:
        await queue.aclose()
        await blocking.aclose()
