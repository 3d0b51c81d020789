"""The Lane's tests run on both event loops: asyncio's own, and uvloop (the worker's)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import pytest
import uvloop
from redis.asyncio import Redis

from infrastructure.redis.lane import Lane
from tests.fakes import eventually
from tests.freezable_redis import FreezableRedis, freezable_redis


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FreezableRedis]:
    """A redis-server of the test's own, to freeze, restart or reconfigure."""
    with freezable_redis(tmp_path / "redis") as started:
        yield started


@pytest.fixture
async def lanes() -> AsyncIterator[list[Lane]]:
    """Lanes a test opens, closed at its end whatever happened."""
    opened: list[Lane] = []
    try:
        yield opened
    finally:
        for lane in opened:
            await lane.aclose()


async def wait_until_blocked(redis: Redis, client_id: int) -> None:
    """Until the connection `client_id` waits in a blocking command."""

    async def blocked() -> bool:
        return "b" in (await redis.client_list(client_id=[client_id]))[0]["flags"]

    await eventually(blocked, 10.0)
