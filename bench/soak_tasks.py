"""Task type for soak.py: `probe`, on queue "soak", which records every execution.

Loaded by the `conveyor worker` and `conveyor api` processes soak.py starts
(CONVEYOR_TASK_MODULES=soak_tasks, bench/ on PYTHONPATH). Each execution appends to two
Redis lists on its own client (the worker's REDIS_URL), so soak.py can tell how often
each task's handler started and returned, in which worker process, and when:

- <prefix>:starts  "<task id> <worker pid> <time.time() at handler start> <attempt> <fence>"
- <prefix>:ends    "<task id> <worker pid> <time.time() as the handler returns>"

<prefix> comes from CONVEYOR_SOAK_PREFIX (default bench:soak).
"""

from __future__ import annotations

import asyncio
import functools
import os
import time

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from application.tasks import TaskContext, TaskType

QUEUE = "soak"
PREFIX = os.environ.get("CONVEYOR_SOAK_PREFIX", "bench:soak")
STARTS_KEY = f"{PREFIX}:starts"
ENDS_KEY = f"{PREFIX}:ends"


@functools.cache
def _client() -> Redis:
    return Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


class ProbePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int  # the producer's sequence number: finds tasks whose POST got no answer
    t_enq: float  # time.time() as the producer sent the POST
    ms: int = Field(default=0, ge=0, le=10_000)  # how long the handler then sleeps


async def probe(payload: ProbePayload, ctx: TaskContext) -> None:
    started = time.time()
    pid = os.getpid()
    await _client().rpush(
        STARTS_KEY, f"{ctx.task_id} {pid} {started:.6f} {ctx.attempt} {ctx.fence}"
    )
    if payload.ms:
        await asyncio.sleep(payload.ms / 1000)
    await _client().rpush(ENDS_KEY, f"{ctx.task_id} {pid} {time.time():.6f}")


TASKS = [TaskType("probe", ProbePayload, probe, queue=QUEUE)]
