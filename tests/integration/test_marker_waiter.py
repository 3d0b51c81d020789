"""The idle worker's wait on the markers: ended on time by its own timer, never crashing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from infrastructure.redis.waiter import MarkerWaiter

MARKER = "conveyor:{waiter-test}:marker"


async def test_a_timer_that_fires_before_redis_blocks_ends_the_wait_quietly(
    redis: Redis, blocking_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load the command may reach Redis after the timer fired and CLIENT UNBLOCK
    found nothing to unblock; the wait must still just end (it once crashed the worker)."""
    send = blocking_redis.bzpopmin

    async def late(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.02)
        return await send(*args, **kwargs)

    monkeypatch.setattr(blocking_redis, "bzpopmin", late)
    waiter = MarkerWaiter(redis, blocking_redis)
    for _ in range(3):
        await waiter.wait([MARKER], 2)


async def test_a_wait_ends_at_its_timeout_not_at_redis_s_clock_tick(
    redis: Redis, blocking_redis: Redis
) -> None:
    waiter = MarkerWaiter(redis, blocking_redis)
    await waiter.wait([MARKER], 5)  # warm the connection
    started = time.perf_counter()
    await waiter.wait([MARKER], 30)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert 30 <= elapsed_ms < 90  # Redis alone would end it on a 100 ms tick at the earliest


async def test_a_marker_ends_the_wait_at_once(redis: Redis, blocking_redis: Redis) -> None:
    waiter = MarkerWaiter(redis, blocking_redis)
    waiting = asyncio.create_task(waiter.wait([MARKER], 10_000))
    await asyncio.sleep(0.05)
    await redis.zadd(MARKER, {"0": 0})
    await asyncio.wait_for(waiting, timeout=2)
