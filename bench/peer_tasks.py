"""Conveyor task types for the peers harness: `noop` and `record` on queue "bench".

Loaded by `conveyor worker` through CONVEYOR_TASK_MODULES=peer_tasks, with bench/ and the
harness's peers/ folder on PYTHONPATH, so the job bodies are the harness's own
(`jobs.shared`): the same one Redis command every peer runs.
"""

from __future__ import annotations

from jobs.shared import QUEUE, noop_async, record_async
from pydantic import BaseModel, ConfigDict

from application.tasks import TaskContext, TaskType


class NoopPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    t_ref: float


async def noop(payload: NoopPayload, ctx: TaskContext) -> None:
    await noop_async()


async def record(payload: RecordPayload, ctx: TaskContext) -> None:
    await record_async(payload.t_ref)


TASKS = [
    TaskType("noop", NoopPayload, noop, queue=QUEUE),
    TaskType("record", RecordPayload, record, queue=QUEUE),
]
