"""Task types for bench_conveyor.py: `noop` and `record`, on queue "bench" by default.

Loaded by the `conveyor worker` processes that bench_conveyor.py starts
(CONVEYOR_TASK_MODULES=conveyor_bench_tasks, bench/ on PYTHONPATH) and by its enqueue
client. Each body runs one Redis command on its own client (the worker's REDIS_URL), the
same amount of work as the peers harness's jobs:

- noop   INCR  <prefix>:done
- record RPUSH <prefix>:lat  (time.time() at handler start - t_ref) in ms

<prefix> comes from CONVEYOR_BENCH_PREFIX, so a run on a shared Redis keeps to its own keys.
"""

from __future__ import annotations

import functools
import os
import time

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from application.tasks import TaskContext, TaskType

QUEUE = "bench"
PREFIX = os.environ.get("CONVEYOR_BENCH_PREFIX", "bench:conveyor")
DONE_KEY = f"{PREFIX}:done"
LAT_KEY = f"{PREFIX}:lat"


@functools.cache
def _client() -> Redis:
    return Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


class NoopPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    t_ref: float  # enqueue time, or the intended due time (time.time() seconds)


async def noop(payload: NoopPayload, ctx: TaskContext) -> None:
    await _client().incr(DONE_KEY)


async def record(payload: RecordPayload, ctx: TaskContext) -> None:
    started = time.time()
    await _client().rpush(LAT_KEY, (started - payload.t_ref) * 1000.0)


TASKS = [
    TaskType("noop", NoopPayload, noop, queue=QUEUE),
    TaskType("record", RecordPayload, record, queue=QUEUE),
]
