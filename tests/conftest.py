"""Shared fixtures: a real Redis database of the tests' own, flushed around each test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from infrastructure.redis.client import create_blocking_redis, create_redis

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Where in-process test clients send requests: a loopback Host, which an API without
# API_KEYS serves by default (the test client's own `testserver.local` it refuses).
LOCAL = "http://127.0.0.1:3000"


@pytest.fixture
def redis_url() -> str:
    return TEST_REDIS_URL


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture
async def blocking_redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_blocking_redis(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
