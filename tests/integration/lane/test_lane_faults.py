"""The Lane against a Redis of its own that freezes (SIGSTOP), restarts or reads slowly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from infrastructure.redis.lane import Lane
from infrastructure.redis.lane_connection import CommandNotSent
from tests.freezable_redis import FreezableRedis
from tests.integration.lane.conftest import wait_until_blocked

TIMEOUT_MS = 300
WAIT_S = 10.0  # bound on any wait, far above what a correct client takes


@pytest.fixture
async def plain(server: FreezableRedis) -> AsyncIterator[Redis]:
    """redis-py on the same server, to look at it from outside."""
    client = Redis.from_url(server.url, decode_responses=True)
    try:
        yield client
    finally:
        server.thaw()
        await client.aclose()


async def outcomes_within(*calls: object) -> tuple[list[object], float]:
    """Every call's reply or error, and the seconds until the last one."""
    started = time.monotonic()
    gathered = asyncio.gather(*calls, return_exceptions=True)  # type: ignore[call-overload]
    results = await asyncio.wait_for(gathered, WAIT_S)
    return list(results), time.monotonic() - started


async def test_a_frozen_redis_times_out_every_waiting_command_and_no_late_reply_is_misread(
    server: FreezableRedis, lanes: list[Lane]
) -> None:
    lane = Lane.from_url(server.url, timeout_ms=TIMEOUT_MS)
    lanes.append(lane)
    assert await lane.execute("ECHO", "open") == "open"
    with server.frozen():
        errors, elapsed = await outcomes_within(
            *(lane.execute("ECHO", f"lost{n}") for n in range(20))
        )
    assert all(isinstance(error, RedisTimeoutError) for error in errors), errors
    assert TIMEOUT_MS / 1000 <= elapsed < 3 * TIMEOUT_MS / 1000
    # Redis now answers the commands it had read, on the connection that was dropped.
    replies, _ = await outcomes_within(*(lane.execute("ECHO", f"new{n}") for n in range(20)))
    assert replies == [f"new{n}" for n in range(20)]


async def test_a_new_connection_to_a_frozen_redis_times_out(
    server: FreezableRedis, lanes: list[Lane]
) -> None:
    lane = Lane.from_url(server.url, timeout_ms=TIMEOUT_MS)
    lanes.append(lane)
    with server.frozen():  # the kernel accepts the connection; Redis never answers it
        errors, elapsed = await outcomes_within(lane.execute("ECHO", "x"))
    assert isinstance(errors[0], RedisTimeoutError)
    assert elapsed < 3 * TIMEOUT_MS / 1000
    assert await lane.execute("ECHO", "y") == "y"


async def test_a_loop_blocked_past_the_timeout_still_reads_the_reply_that_came(
    server: FreezableRedis, lanes: list[Lane]
) -> None:
    lane = Lane.from_url(server.url, timeout_ms=TIMEOUT_MS)
    lanes.append(lane)
    await lane.execute("ECHO", "open")
    call = asyncio.ensure_future(lane.execute("ECHO", "came"))
    for _ in range(5):  # a few loop passes: the command is written
        await asyncio.sleep(0)
    # The loop is blocked past the deadline while the reply waits in the socket.
    time.sleep(2 * TIMEOUT_MS / 1000)  # noqa: ASYNC251 - blocking the loop is the point
    assert await asyncio.wait_for(call, WAIT_S) == "came"


async def test_a_restart_fails_the_waiting_commands_and_later_ones_succeed(
    server: FreezableRedis, plain: Redis, lanes: list[Lane]
) -> None:
    lane = Lane.from_url(server.url, timeout_ms=3_000)
    lanes.append(lane)
    lane_id = await lane.execute("CLIENT", "ID")
    blocked = asyncio.ensure_future(lane.execute("BLPOP", "queue", 20))
    await wait_until_blocked(plain, lane_id)
    server.stop()
    (lost,), _ = await outcomes_within(blocked)
    assert isinstance(lost, RedisConnectionError)
    assert not isinstance(lost, CommandNotSent)
    (refused,), _ = await outcomes_within(lane.execute("ECHO", "down"))
    assert isinstance(refused, CommandNotSent)  # refused twice: it never reached a Redis
    server.start()
    replies, _ = await outcomes_within(*(lane.execute("ECHO", f"up{n}") for n in range(10)))
    assert replies == [f"up{n}" for n in range(10)]


async def test_callers_wait_while_redis_does_not_read_and_all_complete_after(
    server: FreezableRedis, plain: Redis, lanes: list[Lane]
) -> None:
    lane = Lane.from_url(server.url, timeout_ms=30_000)
    lanes.append(lane)
    await lane.execute("ECHO", "open")
    value = b"v" * 256 * 1024
    count = 200  # 50 MB: more than the socket buffers hold while Redis is frozen
    calls = []
    with server.frozen():
        for n in range(count):  # one caller per loop pass, as tasks that start over time
            calls.append(asyncio.ensure_future(lane.execute("SET", f"k{n}", value)))
            await asyncio.sleep(0)
        connection = lane._conn
        assert connection is not None
        assert connection._paused  # the transport's buffer went over its high-water mark
        assert connection._queued < count / 2  # the callers since then wait: unbuffered
    replies, _ = await outcomes_within(*calls)
    assert replies == ["OK"] * count
    assert await plain.strlen(f"k{count - 1}") == len(value)


async def test_a_master_demoted_to_a_replica_fails_the_write_and_the_connection(
    server: FreezableRedis, plain: Redis, lanes: list[Lane]
) -> None:
    """After a failover the old master may come back as a replica: a write there must not
    read as a script's error but as a lost connection, and the next connection is new."""
    lane = Lane.from_url(server.url, timeout_ms=2_000)
    lanes.append(lane)
    assert await lane.execute("SET", "before", "1") == "OK"
    await plain.execute_command("REPLICAOF", "127.0.0.1", "1")  # a master that never answers
    try:
        with pytest.raises(RedisConnectionError, match="replica"):
            await lane.execute("SET", "after", "1")
    finally:
        await plain.execute_command("REPLICAOF", "NO", "ONE")
    assert await lane.execute("SET", "after", "1") == "OK"  # on a fresh connection
