"""Seed 000: `POST /tasks {taskName, payload}` answers 200 `{message, id}`."""

from __future__ import annotations

from litestar import post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from application.enqueue_task import EnqueueTask
from interfaces.http.auth import Principal
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
    responses=documented(*BODY),
)
async def seed000_enqueue(
    data: JSONBody[EnqueueBody],
    enqueue_task: NamedDependency[EnqueueTask],
    principal: NamedDependency[Principal],
) -> EnqueuedMessageOut:
    enqueued = await enqueue_task.execute(data.to_request(principal.name))
    return EnqueuedMessageOut(id=enqueued.task.id)


ROUTES = [seed000_enqueue]
