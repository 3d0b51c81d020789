"""What is happening now: live workers, and a server-sent feed of task transitions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from litestar import get
from litestar.di import NamedDependency
from litestar.response import ServerSentEvent, ServerSentEventMessage

from application.watch_events import WatchEvents
from application.workers import ListWorkers
from interfaces.http.errors import documented
from interfaces.http.schemas import WorkerOut, WorkersOut


@get(
    "/api/workers",
    tags=["queues"],
    summary="Live workers, from their heartbeats",
    responses=documented(),
)
async def workers(list_workers: NamedDependency[ListWorkers]) -> WorkersOut:
    infos = await list_workers.execute()
    return WorkersOut(workers=[WorkerOut.model_validate(info) for info in infos])


@get(
    "/api/events",
    tags=["queues"],
    summary="Server-sent events of task transitions",
    media_type="text/event-stream",
    responses=documented(),
)
async def events(watch_events: NamedDependency[WatchEvents]) -> ServerSentEvent:
    async def feed() -> AsyncIterator[ServerSentEventMessage]:
        stream = await watch_events.execute()
        yield ServerSentEventMessage(data="{}", event="ready")  # subscribed: nothing is missed
        async for event in stream:
            data = {"id": event.task_id, "queue": event.queue, "taskName": event.name,
                    "status": event.status}  # fmt: skip
            yield ServerSentEventMessage(data=_json(data), event="task")

    return ServerSentEvent(feed())


def _json(data: dict[str, str]) -> str:
    return json.dumps(data, separators=(",", ":"))
