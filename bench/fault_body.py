"""Task type `fault_body` for the fault harness (../shared/bench/faults), its body guarded.

`faults_fenced.py` runs the harness with this module in place of the harness's own Conveyor
body: the same records (`RPUSH fault:starts`, 300 ms, `RPUSH fault:done`), but the body's
effect is a fenced write first (`ctx.fenced.rpush("done", ...)`, which Redis refuses from an
execution that lost its task), and the harness's plain `fault:done` record only after it, so
a thawed handler that lost its task records neither.
"""

from __future__ import annotations

import asyncio
import os

from jobs.shared import DONE, QUEUE, REDIS_URL, SLEEP_S, STARTS
from pydantic import BaseModel
from redis.asyncio import Redis

from application.tasks import TaskContext, TaskType

_records: Redis | None = None


class Body(BaseModel):
    key: str


async def fault_body(payload: Body, ctx: TaskContext) -> None:
    global _records  # noqa: PLW0603 - one client per worker process, made on first use
    if _records is None:
        _records = Redis.from_url(REDIS_URL)
    tag = f"{payload.key} {os.getpid()}"
    await _records.rpush(STARTS, tag)
    await asyncio.sleep(SLEEP_S)
    await ctx.fenced.rpush("done", tag)  # the effect: applied only under the current fence
    await _records.rpush(DONE, tag)  # the harness's count


TASKS = [TaskType("fault_body", Body, fault_body, queue=QUEUE, attempts=10)]
