"""What is happening now: live workers, and a server-sent feed of task transitions."""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import threading
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any

from litestar import get
from litestar.di import NamedDependency
from litestar.response import Stream

from application.watch_events import WatchEvents
from application.workers import ListWorkers
from domain.ports import EventFeed
from domain.values import TaskEvent
from interfaces.http.errors import documented
from interfaces.http.schemas import WorkerOut, WorkersOut

KEEPALIVE_S = 15.0  # a comment this often keeps proxies from closing a quiet stream and
# makes the server write, so a client that vanished is noticed
_READY = b"event: ready\ndata: {}\n\n"
_KEEPALIVE = b": keep-alive\n\n"
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


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
    description=(
        "`ready` once subscribed, then `task` events (and a `:` comment line after 15 s "
        "without any). The stream ends with an `end` event "
        "(`{reason}`) when the client fell too far behind (`lagged`), when the subscription "
        "to Redis broke and events may be missing (`lost`), or when the API stops "
        "(`shutdown`): connect again, and read the tasks again."
    ),
    media_type="text/event-stream",
    responses=documented(429),
)
async def events(watch_events: NamedDependency[WatchEvents]) -> Stream:
    feed = await watch_events.execute()  # refused (429, 503) before the response starts
    messages = event_messages(feed)
    # Started here, so that its `finally` closes the feed however the response goes, even
    # if it never starts: an async generator that never ran has no `finally` to run.
    ready = await anext(messages)
    return Stream(_then(ready, messages), media_type="text/event-stream", headers=_SSE_HEADERS)


async def event_messages(feed: EventFeed) -> AsyncIterator[bytes]:
    """The stream's body: `ready`, the feed's events a batch at a time, a comment when it
    is quiet, and `end` with the feed's reason once it ends."""
    try:
        yield _READY  # subscribed: nothing from now on is missed
        while True:
            batch = await feed.next_batch(KEEPALIVE_S)
            if batch:
                yield b"".join(_message(event) for event in batch)
            elif feed.ended is None:
                yield _KEEPALIVE
            else:
                yield _end(feed.ended)
                return
    finally:
        feed.close()


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


@functools.lru_cache(maxsize=4096)
def _message(event: TaskEvent) -> bytes:
    """Formatted once, however many streams send it."""
    data = {"id": event.task_id, "queue": event.queue, "taskName": event.name,
            "status": event.status}  # fmt: skip
    return b"event: task\ndata: " + _json(data) + b"\n\n"


def _end(reason: str) -> bytes:
    return b"event: end\ndata: " + _json({"reason": reason}) + b"\n\n"


def _json(data: dict[str, str]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def end_streams_on_exit(end_streams: Callable[[], None]) -> None:
    """uvicorn answers SIGTERM or SIGINT by waiting (up to its graceful timeout) for open
    responses to finish before it shuts the app down, and an event stream never finishes
    by itself: end the streams as the signal arrives, then let uvicorn go on. uvicorn
    handles signals only on the main thread (not under a test client)."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        if callable(previous):
            handler = functools.partial(_chained, loop, end_streams, previous)
            signal.signal(signum, handler)


def _chained(
    loop: asyncio.AbstractEventLoop,
    end_streams: Callable[[], None],
    previous: Callable[[int, FrameType | None], Any],
    signum: int,
    frame: FrameType | None,
) -> None:
    loop.call_soon_threadsafe(end_streams)
    previous(signum, frame)
