"""Task types for the child-process tests: CPU-bound handlers in a child and in a thread,
and an async one that measures how late the worker's event loop wakes it up.

Loaded by the test workers through CONVEYOR_TASK_MODULES. Each `crunch` attempt records
`<attempt>:<pid>` under `child:<key>:pids` in the tests' Redis before it spins.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time

import redis
from pydantic import BaseModel, Field

from application.handlers import NonRetryableError, RetryAfter, TaskContext
from application.registry import TaskType

TICK_S = 0.002


@functools.cache
def _records() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)


class Crunch(BaseModel):
    key: str = "crunch"
    ms: int = Field(default=0, ge=0)  # how long to spin, holding the GIL
    first_ms: int | None = None  # the first attempt's spin instead, when set
    fail: str = ""  # "", "non_retryable", "retry_after" or "exit"
    quiet: bool = False  # no progress: nothing the handler does touches the worker's pipe


class Tick(BaseModel):
    n: int = Field(default=100, ge=1)


def crunch(payload: Crunch, ctx: TaskContext) -> dict[str, object]:
    _records().rpush(f"child:{payload.key}:pids", f"{ctx.attempt}:{os.getpid()}")
    ms = payload.first_ms if payload.first_ms is not None and ctx.attempt == 1 else payload.ms
    deadline = time.monotonic() + ms / 1000
    spins = 0
    while time.monotonic() < deadline:
        spins += 1
        if spins % 100_000 == 0 and not payload.quiet:
            ctx.raise_if_cancelled()  # in a thread; a child is ended instead
            ctx.report_progress({"spins": spins})
    if payload.fail == "non_retryable":
        raise NonRetryableError(f"bad input on attempt {ctx.attempt}")
    if payload.fail == "retry_after":
        raise RetryAfter(300, "come back later")
    if payload.fail == "exit":
        os._exit(3)
    ctx.report_progress({"done": True})
    ctx.log.info("crunch.done", spins=spins)
    return {"pid": os.getpid(), "attempt": ctx.attempt, "fence": ctx.fence,
            "taskId": ctx.task_id, "queue": ctx.queue}  # fmt: skip


async def tick(payload: Tick, ctx: TaskContext) -> dict[str, float]:
    """`n` short sleeps, one after another: how late, on average, the event loop woke this
    task up (a thread that holds the GIL makes each wake-up wait for the switch interval)."""
    late_s = 0.0
    for _ in range(payload.n):
        started = time.perf_counter()
        await asyncio.sleep(TICK_S)
        late_s += time.perf_counter() - started - TICK_S
    return {"lateMs": late_s / payload.n * 1000}


TASKS = [
    TaskType("crunch", Crunch, crunch, executor="process", attempts=2),
    TaskType("crunch_inline", Crunch, crunch, attempts=2),
    TaskType("tick", Tick, tick),
]
