"""The Redis clients' timeouts and retry policy, as REDIS_TIMEOUT_MS sets them (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from infrastructure.redis import waiter
from infrastructure.redis.client import create_blocking_redis, create_lock_redis, create_redis
from infrastructure.settings import Settings
from interfaces.container import LONGEST_BLOCK_MS, Container, resolve
from interfaces.workers.worker import IDLE_WAIT_MS

URL = "redis://127.0.0.1:6379/0"


def options(client: Redis) -> dict[str, Any]:
    return dict(client.connection_pool.connection_kwargs)


async def attempts_on(client: Redis, error: Exception) -> int:
    """How often a connection of `client` runs a command that keeps raising `error`."""
    retry = client.connection_pool.make_connection().retry
    calls = 0

    async def command() -> None:
        nonlocal calls
        calls += 1
        raise error

    async def dropped(*_: Any) -> None:
        return None

    with pytest.raises(type(error)):
        await retry.call_with_retry(command, dropped)
    return calls


def test_every_command_answers_within_the_timeout() -> None:
    config = options(create_redis(URL, 1_500))
    assert config["socket_timeout"] == 1.5
    assert config["socket_connect_timeout"] == 1.5


async def test_a_timeout_is_not_retried_and_a_dropped_connection_is_retried_once() -> None:
    client = create_redis(URL, 1_500)
    assert await attempts_on(client, RedisTimeoutError("Timeout reading")) == 1
    assert await attempts_on(client, RedisConnectionError("Connection reset")) == 2


def test_the_blocking_client_waits_for_its_longest_block_and_the_timeout() -> None:
    client = create_blocking_redis(URL, 1_500, longest_block_ms=6_000)
    config = options(client)
    assert config["socket_timeout"] == 7.5
    assert config["socket_connect_timeout"] == 1.5
    assert client.connection_pool.max_connections == 1


async def test_the_blocking_client_never_retries() -> None:
    client = create_blocking_redis(URL, 1_500)
    assert await attempts_on(client, RedisConnectionError("Connection reset")) == 1
    assert await attempts_on(client, RedisTimeoutError("Timeout reading")) == 1


def test_the_longest_block_covers_the_worker_s_idle_wait_and_redis_s_backstop() -> None:
    # MarkerWaiter asks Redis to block its own timeout plus this slack: a block the
    # blocking client's socket timeout cut short would look like a dead Redis.
    slack_ms = waiter._BLOCK_SLACK_S * 1000
    assert IDLE_WAIT_MS + slack_ms <= LONGEST_BLOCK_MS


async def test_a_lock_master_answers_within_the_timeout_and_a_fifth_of_the_ttl() -> None:
    config = options(create_lock_redis(URL, lock_ttl_ms=30_000, timeout_ms=1_500))
    assert (config["socket_timeout"], config["socket_connect_timeout"]) == (1.5, 1.5)
    short = options(create_lock_redis(URL, lock_ttl_ms=2_000, timeout_ms=1_500))
    assert (short["socket_timeout"], short["socket_connect_timeout"]) == (0.4, 0.2)
    master = create_lock_redis(URL, lock_ttl_ms=30_000, timeout_ms=1_500)
    assert await attempts_on(master, RedisConnectionError("Connection reset")) == 1


async def test_the_container_wires_redis_timeout_ms_into_every_client() -> None:
    container = Container()
    settings = Settings(redis_url=URL, redis_timeout_ms=1_234, lock_ttl_ms=30_000, redlock_urls=URL)
    container.settings.override(settings)
    try:
        queue_client = await resolve(container.redis)
        blocking = (await resolve(container.marker_waiter))._blocking
        (master,) = await resolve(container.lock_masters)
        assert options(queue_client)["socket_timeout"] == 1.234
        assert options(blocking)["socket_timeout"] == (LONGEST_BLOCK_MS + 1_234) / 1000
        assert options(master)["socket_timeout"] == 1.234
    finally:
        await container.shutdown_resources()  # type: ignore[misc]
