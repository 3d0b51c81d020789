"""A task type for the reliability tests: it records each execution's start and end in Redis.

Loaded by the test workers through CONVEYOR_TASK_MODULES; PROBE_REDIS_URL names the Redis
that keeps the records (the queue's own Redis may be restarted by the test).
"""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from application.handlers import TaskContext
from application.registry import TaskType

_client: Redis | None = None


def records() -> Redis:
    global _client  # noqa: PLW0603 - one client per worker process, made on first use
    if _client is None:
        url = os.environ.get("PROBE_REDIS_URL") or os.environ["REDIS_URL"]
        _client = Redis.from_url(url, decode_responses=True)
    return _client


class Probe(BaseModel):
    key: str
    ms: int = Field(default=0, ge=0)


async def probe(payload: Probe, ctx: TaskContext) -> dict[str, int]:
    mark = f"{os.getpid()}:{ctx.fence}"
    await records().rpush(f"probe:{payload.key}:starts", mark)
    await asyncio.sleep(payload.ms / 1000)
    await records().rpush(f"probe:{payload.key}:ends", mark)
    return {"pid": os.getpid()}


TASKS = [TaskType("probe", Probe, probe, attempts=3)]
