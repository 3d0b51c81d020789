"""Seed 000: `POST /tasks {taskName, payload}` answers 200 `{message, id}`."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from application.enqueue_task import EnqueueTask
from interfaces.http.auth import caller
from interfaces.http.errors import BODY, documented
from interfaces.http.schemas import EnqueueBody
from interfaces.http.seeds.common import SeedModel


class EnqueuedMessageOut(SeedModel):
    message: str = "Task enqueued successfully"
    id: str


@post(
    "/tasks",
    status_code=200,
    tags=["seed 000"],
    summary="Enqueue (seed 000)",
    responses=documented(*BODY, enqueues=True),
)
async def seed000_enqueue(
    data: JSONBody[EnqueueBody],
    enqueue_task: NamedDependency[EnqueueTask],
    request: Request[Any, Any, Any],
) -> EnqueuedMessageOut:
    enqueued = await enqueue_task.execute(data.to_request(caller(request).name))
    return EnqueuedMessageOut(id=enqueued.task.id)


ROUTES = [seed000_enqueue]
