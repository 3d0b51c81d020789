"""EventHub: one pub/sub subscription per process, for a task's waiters and the live feeds.

When the subscription breaks, what it would have carried is lost. redis-py hides that: on a
dropped connection its PubSub reconnects and subscribes again by itself (only the repeated
subscription confirmation shows it), and when Redis stays away it raises. Either way every
feed ends then, so its reader subscribes again and reads afresh, and every waiter reads its
task again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from domain.errors import TooManyStreams
from domain.task import Task, TaskStatus
from domain.values import TaskEvent
from infrastructure.logging import get_logger
from infrastructure.redis.client import database_of
from infrastructure.redis.keys import events_pattern

Reload = Callable[[str, str], Awaitable[Task]]
_FINAL = {status.value for status in TaskStatus if status.is_terminal} | {"removed"}
FLUSH_S = 0.1  # feeds wake at most this often: a reader costs work per batch, not per event
_CONFIRM_S = 5.0


class Feed:
    """One reader of the live feed (an EventFeed): a cursor into the hub's log."""

    def __init__(self, hub: EventHub, cursor: int) -> None:
        self._hub = hub
        self.cursor = cursor
        self.ended: str | None = None

    async def next_batch(self, timeout_s: float) -> list[TaskEvent]:
        if self.ended is None and self.cursor == self._hub.appended:
            await self._hub.arrival(timeout_s)
        return self._hub.read(self)

    def close(self) -> None:
        self._hub.end(self, "closed")


class EventHub:
    """Listens to every queue's events channel of the client's database, once.

    Waiters of a task are woken when it reaches a terminal status. Feeds share one log of
    the last `buffer` events, each read at its own cursor, so an event costs the same
    whatever the number of feeds; their readers wake once per FLUSH_S (sooner when half
    the log is unread) for all that came meanwhile. A reader that falls further behind
    than the log is dropped (its feed ends "lagged") instead of costing work on every
    event. At most `max_streams` feeds are open at once.
    """

    def __init__(self, client: Redis, *, buffer: int = 1_000, max_streams: int = 100) -> None:
        self._client = client
        self._db = database_of(client)
        self._buffer = buffer
        self._max_streams = max_streams
        self._waiters: dict[tuple[str, str], set[asyncio.Future[None]]] = {}
        self._log: deque[TaskEvent] = deque(maxlen=buffer)
        self.appended = 0  # events logged so far: the sequence number of the next one
        self._unflushed = 0
        self._feeds: set[Feed] = set()
        self._sleepers: set[asyncio.Future[None]] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._closing = False
        self._closed = False
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def feeds(self) -> int:
        """How many feeds are open."""
        return len(self._feeds)

    @property
    def waiting(self) -> int:
        """How many waits for a task's end are under way."""
        return sum(len(waiters) for waiters in self._waiters.values())

    async def wait_finished(self, task: Task, timeout_ms: int, reload: Reload) -> Task:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while not task.status.is_terminal and loop.time() < deadline:
            task = await self._wait_once(task, deadline - loop.time(), reload)
        return task

    async def _wait_once(self, task: Task, timeout_s: float, reload: Reload) -> Task:
        """Woken by the task's final event or by a broken subscription; the caller then
        subscribes again if it has time left."""
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
                    await asyncio.wait_for(done, timeout_s)
                task = await reload(task.id, task.queue)
        finally:
            self._forget(place, done)
        return task

    async def stream(self) -> Feed:
        """A feed of every event from now on (subscribed once this returns)."""
        feed = Feed(self, self.appended)
        if self._closing:
            feed.ended = "shutdown"
            return feed
        await self._listen()
        if len(self._feeds) >= self._max_streams:
            raise TooManyStreams(self._max_streams)
        feed.cursor = self.appended
        self._feeds.add(feed)
        return feed

    async def arrival(self, timeout_s: float) -> None:
        """Until the next flush of the log to the feeds, or `timeout_s`."""
        # A future of its own: a timeout cancels what it awaits, and must not cancel others'.
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.add(woken)
        try:
            async with asyncio.timeout(timeout_s):
                await woken
        except TimeoutError:
            pass
        finally:
            self._sleepers.discard(woken)

    def read(self, feed: Feed) -> list[TaskEvent]:
        """The events past the feed's cursor; a feed the log has moved past ends "lagged"."""
        if feed.cursor < self.appended - len(self._log):
            self.end(feed, "lagged")
        if feed.ended is not None:
            return []
        start = len(self._log) - (self.appended - feed.cursor)
        feed.cursor = self.appended
        return [self._log[index] for index in range(start, len(self._log))]

    def end(self, feed: Feed, reason: str) -> None:
        if feed.ended is not None:
            return
        feed.ended = reason
        self._feeds.discard(feed)
        if reason == "lagged":
            get_logger("conveyor.events").warning("events.feed_dropped", reason=reason)

    def end_streams(self) -> None:
        """The process is stopping: every feed ends, and those opened from now on too."""
        self._closing = True
        self._end_feeds("shutdown")

    async def aclose(self) -> None:
        self._closed = True  # the waiters its listener's end wakes must not subscribe again
        self.end_streams()
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
            if self._closed:
                raise RedisConnectionError("the events subscription is closed")
            if self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.aclose()  # the broken one
            self._pubsub = self._client.pubsub()
            await self._pubsub.psubscribe(events_pattern(self._db))
            confirmation = await self._pubsub.get_message(timeout=_CONFIRM_S)
            if confirmation is None or confirmation.get("type") != "psubscribe":
                raise RedisTimeoutError("Redis did not confirm the events subscription")
            self._listener = asyncio.create_task(self._dispatch(self._pubsub))

    async def _dispatch(self, pubsub: PubSub) -> None:
        log = get_logger("conveyor.events")
        try:
            async for message in pubsub.listen():
                kind = message.get("type")
                if kind == "pmessage":
                    for event in _events(message["data"]):
                        if self._take(event):
                            await asyncio.sleep(0)  # a burst: feeds read before the log moves on
                elif kind == "psubscribe":  # redis-py reconnected and subscribed again
                    log.warning("events.subscription_lost", error="connection dropped")
                    self._broken()
        except (RedisError, RedisClusterException, OSError) as exc:
            log.warning("events.subscription_lost", error=str(exc))
        finally:
            self._broken()  # however the listener stops, it carries nothing more

    def _take(self, event: TaskEvent) -> bool:
        """Log an event and wake its waiters; True if the feeds were just flushed."""
        if event.status in _FINAL:
            _wake(self._waiters.get((event.queue, event.task_id), ()))
        if not self._feeds:
            return False
        self._log.append(event)
        self.appended += 1
        self._unflushed += 1
        if self._unflushed * 2 >= self._buffer:
            self._flush_feeds()
            return True
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(FLUSH_S, self._flush_feeds)
        return False

    def _flush_feeds(self) -> None:
        """Wake the readers waiting for events; drop those the log has moved past."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._unflushed = 0
        _wake(self._sleepers)
        oldest = self.appended - len(self._log)
        for feed in [feed for feed in self._feeds if feed.cursor < oldest]:
            self.end(feed, "lagged")

    def _broken(self) -> None:
        self._end_feeds("lost")
        for waiters in self._waiters.values():
            _wake(waiters)

    def _end_feeds(self, reason: str) -> None:
        for feed in list(self._feeds):
            self.end(feed, reason)
        self._flush_feeds()

    def _forget(self, place: tuple[str, str], done: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(place)
        if waiters is not None:
            waiters.discard(done)
            if not waiters:
                del self._waiters[place]


def _events(data: Any) -> list[TaskEvent]:
    """The events of one message: the JSON array of a script's transitions (a message
    that is not one reads as none)."""
    try:
        raw = json.loads(data)
    except (TypeError, ValueError):
        return []
    items = raw if isinstance(raw, list) else [raw]
    return [event for event in map(_event, items) if event is not None]


def _event(raw: Any) -> TaskEvent | None:
    try:
        return TaskEvent(str(raw["id"]), str(raw["queue"]), str(raw["name"]), str(raw["status"]))
    except (TypeError, KeyError):
        return None


def _wake(futures: Iterable[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)
