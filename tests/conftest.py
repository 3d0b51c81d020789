"""Shared fixtures: a real Redis database of the tests' own, flushed around each test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from infrastructure.redis.client import ClusterSeeds, create_blocking_redis, create_redis
from infrastructure.redis.cluster import create_cluster_redis
from infrastructure.settings import Settings
from interfaces.container import Container
from interfaces.http.app import create_app

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Set (`python -m tests.with_redis --cluster`): the API of the HTTP suites runs on this
# Redis Cluster instead, and the `redis` fixture is a client of the cluster.
TEST_REDIS_CLUSTER_URLS = os.environ.get("TEST_REDIS_CLUSTER_URLS", "")
# Where in-process test clients send requests: a loopback Host, which an API without
# API_KEYS serves by default (the test client's own `testserver.local` it refuses).
LOCAL = "http://127.0.0.1:3000"


@pytest.fixture
def redis_url() -> str:
    return TEST_REDIS_URL


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    seeds = ClusterSeeds.parse(TEST_REDIS_CLUSTER_URLS)
    # A RedisCluster under the name of Redis: the tests call what both clients have.
    client: Any = create_redis(redis_url) if seeds is None else create_cluster_redis(seeds, 3_000)
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


@asynccontextmanager
async def api_client(
    redis_url: str, files: Path, **overrides: Any
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The whole app in process, over a container of `Settings` with `overrides`."""
    settings = Settings(redis_url=redis_url, files_base_dir=files, **overrides)
    container = Container()
    container.settings.override(providers.Object(settings))
    async with AsyncTestClient(app=create_app(container), base_url=LOCAL) as client:
        yield client


@pytest.fixture
async def client(
    redis: Redis, redis_url: str, tmp_path: Path
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The open API (no keys) on the tests' Redis; modules with other needs define their own."""
    async with api_client(redis_url, tmp_path / "files") as made:
        yield made
