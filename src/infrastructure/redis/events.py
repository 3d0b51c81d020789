"""EventHub: one pub/sub connection per process, waking those who wait for a task."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from domain.ports import TaskEvent
from domain.task import Task, TaskStatus
from infrastructure.redis.keys import events_pattern

Reload = Callable[[str, str], Awaitable[Task]]
_FEED_SIZE = 1_000
_FINAL = {status.value for status in TaskStatus if status.is_terminal} | {"removed"}


class EventHub:
    """Listens to every queue's events channel of database `db`, once, and resolves the
    waiters of a task when it reaches a terminal status; nobody polls Redis while waiting."""

    def __init__(self, client: Redis, db: int) -> None:
        self._client = client
        self._db = db
        self._waiters: dict[tuple[str, str], set[asyncio.Future[None]]] = {}
        self._feeds: set[asyncio.Queue[TaskEvent]] = set()
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def wait_finished(self, task: Task, timeout_ms: int, reload: Reload) -> Task:
        if task.status.is_terminal or timeout_ms <= 0:
            return task
        await self._listen()
        place = (task.queue, task.id)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(place, set()).add(done)
        try:
            # Subscribed first, then read again: a transition between the caller's read
            # and the subscription is not missed.
            task = await reload(task.id, task.queue)
            if not task.status.is_terminal:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done, timeout_ms / 1000)
                task = await reload(task.id, task.queue)
        finally:
            self._forget(place, done)
        return task

    async def stream(self) -> AsyncIterator[TaskEvent]:
        """Subscribed once this returns: every event from now on; a reader that falls
        _FEED_SIZE behind skips events."""
        await self._listen()
        feed: asyncio.Queue[TaskEvent] = asyncio.Queue(maxsize=_FEED_SIZE)
        self._feeds.add(feed)
        return self._drain(feed)

    async def _drain(self, feed: asyncio.Queue[TaskEvent]) -> AsyncIterator[TaskEvent]:
        try:
            while True:
                yield await feed.get()
        finally:
            self._feeds.discard(feed)

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError):
                await self._listener
        if self._pubsub is not None:
            await self._pubsub.aclose()

    async def _listen(self) -> None:
        async with self._lock:
            if self._listener is not None and not self._listener.done():
                return
            self._pubsub = self._client.pubsub()
            await self._pubsub.psubscribe(events_pattern(self._db))
            await self._pubsub.get_message(timeout=5.0)  # the subscription's confirmation
            self._listener = asyncio.create_task(self._dispatch(self._pubsub))

    async def _dispatch(self, pubsub: PubSub) -> None:
        try:
            async for message in pubsub.listen():
                if message.get("type") == "pmessage":
                    self._resolve(message["data"])
        except RedisError:
            # The connection is gone: wake everyone so they read the task again; the next
            # waiter subscribes afresh.
            for waiters in self._waiters.values():
                for done in waiters:
                    if not done.done():
                        done.set_result(None)

    def _resolve(self, data: Any) -> None:
        try:
            raw = json.loads(data)
            event = TaskEvent(
                str(raw["id"]), str(raw["queue"]), str(raw["name"]), str(raw["status"])
            )
        except (TypeError, ValueError, KeyError):
            return
        if event.status in _FINAL:
            for done in self._waiters.get((event.queue, event.task_id), ()):
                if not done.done():
                    done.set_result(None)
        for feed in self._feeds:
            with contextlib.suppress(asyncio.QueueFull):
                feed.put_nowait(event)

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.done()

    def _forget(self, place: tuple[str, str], done: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(place)
        if waiters is not None:
            waiters.discard(done)
            if not waiters:
                del self._waiters[place]
