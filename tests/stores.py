"""The Redis task store as one object, for tests that drive every part of it at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from infrastructure.redis.events import EventHub
from infrastructure.redis.feed import RedisFeed
from infrastructure.redis.queries import RedisViews
from infrastructure.redis.transitions import RedisTransitions


class RedisStore:
    """The three Redis adapters (transitions, views, feed) over one client. Production
    wires each part where it is used; the contract suite drives them as one store."""

    def __init__(
        self,
        client: Redis,
        blocking: Redis,
        idempotency_window_ms: int,
        *,
        queues: Sequence[str] = ("default",),
        events: EventHub | None = None,
        locks_with_tasks: bool = False,
    ) -> None:
        self.transitions = RedisTransitions(
            client, idempotency_window_ms, locks_with_tasks=locks_with_tasks
        )
        self.views = RedisViews(client, queues)
        self.feed = RedisFeed(client, blocking, self.views, events or EventHub(client))

    def __getattr__(self, name: str) -> Any:
        for part in (self.transitions, self.views, self.feed):
            if hasattr(type(part), name):
                return getattr(part, name)
        raise AttributeError(name)

    async def aclose(self) -> None:
        await self.feed.aclose()
