"""RedisFeed: ITaskFeed on Redis: a marker idle workers block on, and pub/sub."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from redis.asyncio import Redis

from domain.ports import EventFeed
from domain.task import StopKind, Task
from domain.values import StopRequest
from infrastructure.redis.client import database_of
from infrastructure.redis.events import EventHub
from infrastructure.redis.keys import keys_of
from infrastructure.redis.queries import RedisViews
from infrastructure.redis.reachable import UNREACHABLE, reachable, unavailable
from infrastructure.redis.waiter import MarkerWaits


class RedisFeed:
    """What Redis pushes: idle workers block on the queues' markers through `waiter` (see
    MarkerWaiter); transitions come by pub/sub through the process's EventHub, finished
    tasks are read back through `views`."""

    def __init__(
        self, client: Redis, waiter: MarkerWaits, views: RedisViews, events: EventHub
    ) -> None:
        self._redis = client
        self._db = database_of(client)
        self._waiter = waiter
        self._views = views
        self._events = events

    async def aclose(self) -> None:
        await self._events.aclose()

    @reachable
    async def wait_for_work(self, queues: Sequence[str], timeout_ms: int) -> None:
        if timeout_ms > 0:
            await self._waiter.wait([keys_of(q).marker for q in queues], timeout_ms)

    @reachable
    async def wait_finished(self, task: Task, timeout_ms: int) -> Task:
        return await self._events.wait_finished(task, timeout_ms, self._views.get)

    @reachable
    async def events(self) -> EventFeed:
        return await self._events.stream()

    async def stop_requests(self, queues: Sequence[str]) -> AsyncIterator[StopRequest]:
        channels = {keys_of(queue).control(self._db): queue for queue in queues}
        try:
            async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(*channels)
                async for message in pubsub.listen():
                    kind, _, task_id = str(message["data"]).partition(" ")
                    queue = channels.get(str(message["channel"]))
                    if queue is not None and kind in StopKind.__members__.values():
                        yield StopRequest(task_id, queue, StopKind(kind))
        except UNREACHABLE as exc:
            raise unavailable(exc) from exc
