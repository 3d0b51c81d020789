"""Task types for the fenced-write tests: one handler per executor, each writing its record
with `ctx.fenced` / `ctx.fenced_sync` only, so whatever it wrote was written under its fence.

Loaded by the test workers through CONVEYOR_TASK_MODULES. Each handler pushes
`<attempt>:<fence>:<pid>` to its effect list `log:<key>` and marks `order:<key>`; with `ms`
it first waits that long, then pushes `after:<fence>` (the write a stale worker must not make).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from pydantic import BaseModel, Field

from application.tasks import TaskContext, TaskType


class Record(BaseModel):
    key: str
    ms: int = Field(default=0, ge=0)


async def fenced_async(payload: Record, ctx: TaskContext) -> dict[str, Any]:
    length = await ctx.fenced.rpush(f"log:{payload.key}", _mark(ctx))
    await ctx.fenced.hset(f"order:{payload.key}", {"status": "paid", "fence": ctx.fence})
    await asyncio.sleep(payload.ms / 1000)
    if payload.ms:
        await ctx.fenced.rpush(f"log:{payload.key}", f"after:{ctx.fence}")
    return {"key": ctx.fenced.key(f"log:{payload.key}"), "length": length}


def fenced_sync(payload: Record, ctx: TaskContext) -> dict[str, Any]:
    """In a thread, or in a child process: the same writes, blocking."""
    length = ctx.fenced_sync.rpush(f"log:{payload.key}", _mark(ctx))
    ctx.fenced_sync.hset(f"order:{payload.key}", {"status": "paid", "fence": ctx.fence})
    time.sleep(payload.ms / 1000)  # no check: only the fenced write can refuse what follows
    if payload.ms:
        ctx.fenced_sync.rpush(f"log:{payload.key}", f"after:{ctx.fence}")
    return {"key": ctx.fenced_sync.key(f"log:{payload.key}"), "length": length}


def _mark(ctx: TaskContext) -> str:
    return f"{ctx.attempt}:{ctx.fence}:{os.getpid()}"


TASKS = [
    TaskType("fenced_async", Record, fenced_async),
    TaskType("fenced_thread", Record, fenced_sync),
    TaskType("fenced_child", Record, fenced_sync, executor="process"),
]
