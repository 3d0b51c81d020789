"""Task type `hold` for bench_listing.py's dashboard cases: a task that stays active.

Loaded by the one `conveyor worker` bench_listing.py starts for those cases
(CONVEYOR_TASK_MODULES=infrastructure.tasks.demo,dashboard_tasks, bench/ on PYTHONPATH) and
by its enqueue client. The body only sleeps, without progress reports, so a worker holding
100 of them sends Redis no more than its heartbeats and lock renewals: the overview then
lists a live worker and 100 running tasks, as on a busy system, without the worker's own
traffic drowning the requests measured.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from application.tasks import TaskContext, TaskType

HOLD_MAX_S = 3_600


class HoldPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    s: float = Field(ge=0, le=HOLD_MAX_S)


async def hold(payload: HoldPayload, ctx: TaskContext) -> None:
    await asyncio.sleep(payload.s)


TASKS = [
    TaskType("hold", HoldPayload, hold, attempts=1, timeout_ms=(HOLD_MAX_S + 60) * 1000),
]
