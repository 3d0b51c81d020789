"""What is happening now: live workers, and a server-sent feed of task transitions."""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import threading
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Annotated, Any, Protocol, TypeVar

from litestar import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Stream

from application.watch_events import MAX_IDS, TaskChanges, WatchChanges, WatchEvents
from application.workers import ListWorkers
from domain.values import TaskEvent
from interfaces.http.errors import documented
from interfaces.http.schemas import WorkerOut, WorkersOut

KEEPALIVE_S = 15.0  # a comment this often keeps proxies from closing a quiet stream and
# makes the server write, so a client that vanished is noticed
_READY = b"event: ready\ndata: {}\n\n"
_KEEPALIVE = b": keep-alive\n\n"
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

Item = TypeVar("Item")
SummaryParam = Annotated[
    bool,
    QueryParameter(
        description="`changes` summaries, at most one a second, not a `task` event per transition"
    ),
]


class Feed(Protocol[Item]):
    """What a stream sends: an EventFeed (its events) or a ChangeFeed (its summaries)."""

    @property
    def ended(self) -> str | None: ...

    async def next_batch(self, timeout_s: float) -> list[Item]: ...

    def close(self) -> None: ...


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
        "`ready` once subscribed, then a `task` event per transition "
        "(`{id, queue, taskName, status}`); with `summary=true`, instead, at most one "
        "`changes` event a second, when anything changed: `{count, queues, ids, more}`, "
        f"the number of transitions, the queues they were in and up to {MAX_IDS} of the "
        "tasks' ids (`more`: other tasks changed too), which is what a page needs to "
        "know what to read again, whatever the rate of transitions. A `:` comment line "
        "comes after 15 s without any event. The stream ends with an `end` event "
        "(`{reason}`) when the client fell too far behind (`lagged`), when the subscription "
        "to Redis broke and events may be missing (`lost`), or when the API stops "
        "(`shutdown`): connect again, and read the tasks again."
    ),
    media_type="text/event-stream",
    responses=documented(429),
)
async def events(
    watch_events: NamedDependency[WatchEvents],
    watch_changes: NamedDependency[WatchChanges],
    summary: SummaryParam = False,
) -> Stream:
    # Subscribed, or refused (429, 503), before the response starts.
    if summary:
        messages = event_messages(await watch_changes.execute(), changes_message)
    else:
        messages = event_messages(await watch_events.execute(), task_message)
    # Started here, so that its `finally` closes the feed however the response goes, even
    # if it never starts: an async generator that never ran has no `finally` to run.
    ready = await anext(messages)
    return Stream(_then(ready, messages), media_type="text/event-stream", headers=_SSE_HEADERS)


async def event_messages(
    feed: Feed[Item], message: Callable[[Item], bytes]
) -> AsyncIterator[bytes]:
    """The stream's body: `ready`, the feed's items a batch at a time, a comment when it
    is quiet, and `end` with the feed's reason once it ends."""
    try:
        yield _READY  # subscribed: nothing from now on is missed
        while True:
            batch = await feed.next_batch(KEEPALIVE_S)
            if batch:
                yield b"".join(message(item) for item in batch)
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
def task_message(event: TaskEvent) -> bytes:
    """Formatted once, however many streams send it."""
    data = {"id": event.task_id, "queue": event.queue, "taskName": event.name,
            "status": event.status}  # fmt: skip
    return b"event: task\ndata: " + _json(data) + b"\n\n"


@functools.lru_cache(maxsize=16)
def changes_message(changes: TaskChanges) -> bytes:
    """Formatted once, for every reader of the same summary."""
    data = {"count": changes.count, "queues": changes.queues, "ids": changes.ids,
            "more": changes.more}  # fmt: skip
    return b"event: changes\ndata: " + _json(data) + b"\n\n"


def _end(reason: str) -> bytes:
    return b"event: end\ndata: " + _json({"reason": reason}) + b"\n\n"


def _json(data: dict[str, Any]) -> bytes:
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
