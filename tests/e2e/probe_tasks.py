"""A task type for the reliability tests: it records each execution's start and end in Redis.

Loaded by the test workers through CONVEYOR_TASK_MODULES; PROBE_REDIS_URL names the Redis
that keeps the records (the queue's own Redis may be restarted by the test).
"""

from __future__ import annotations

import asyncio
import os
import time

import redis
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from application.tasks import TaskContext, TaskType

_client: Redis | None = None
_sync_client: redis.Redis | None = None


def records() -> Redis:
    global _client  # noqa: PLW0603 - one client per worker process, made on first use
    if _client is None:
        url = os.environ.get("PROBE_REDIS_URL") or os.environ["REDIS_URL"]
        _client = Redis.from_url(url, decode_responses=True)
    return _client


def sync_records() -> redis.Redis:
    global _sync_client  # noqa: PLW0603 - one client per worker process, made on first use
    if _sync_client is None:
        url = os.environ.get("PROBE_REDIS_URL") or os.environ["REDIS_URL"]
        _sync_client = redis.Redis.from_url(url, decode_responses=True)
    return _sync_client


class Probe(BaseModel):
    key: str
    ms: int = Field(default=0, ge=0)


async def probe(payload: Probe, ctx: TaskContext) -> dict[str, int]:
    mark = f"{os.getpid()}:{ctx.fence}"
    await records().rpush(f"probe:{payload.key}:starts", mark)
    await asyncio.sleep(payload.ms / 1000)
    await records().rpush(f"probe:{payload.key}:ends", mark)
    return {"pid": os.getpid()}


def stubborn(payload: Probe, ctx: TaskContext) -> int:
    """A sync handler that never checks for cancellation: it runs its full time."""
    client = sync_records()
    client.rpush(f"probe:{payload.key}:starts", f"{os.getpid()}:{ctx.fence}:{time.time()}")
    time.sleep(payload.ms / 1000)
    client.rpush(f"probe:{payload.key}:ends", f"{os.getpid()}:{ctx.fence}:{time.time()}")
    return os.getpid()


async def timed(payload: Probe, ctx: TaskContext) -> None:
    """Records its start and end times (s since the epoch) together, once it ends."""
    started = time.time()
    await asyncio.sleep(payload.ms / 1000)
    await records().rpush(f"probe:{payload.key}:spans", f"{started}:{time.time()}")


TASKS = [
    TaskType("probe", Probe, probe, attempts=3),
    TaskType("timed", Probe, timed, attempts=1),
    TaskType("stubborn", Probe, stubborn, attempts=2),
]
