"""The Redis task store as one object, for tests that drive every part of it at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.asyncio import Redis, RedisCluster

from domain.admission import DepthLimits
from infrastructure.redis.client import ClusterSeeds
from infrastructure.redis.cluster_lane import ClusterLane
from infrastructure.redis.events import EventHub
from infrastructure.redis.feed import RedisFeed
from infrastructure.redis.lane import Lane, ScriptLane
from infrastructure.redis.queries import RedisViews
from infrastructure.redis.transitions import RedisTransitions
from infrastructure.redis.waiter import ClusterMarkerWaiter, MarkerWaiter, MarkerWaits
from interfaces.container import LONGEST_BLOCK_MS
from tests.conftest import TEST_REDIS_CLUSTER_URLS


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
        depth_limits: DepthLimits | None = None,
    ) -> None:
        seeds = ClusterSeeds.parse(TEST_REDIS_CLUSTER_URLS)
        waiter: MarkerWaits
        if isinstance(client, RedisCluster) and seeds is not None:
            # A Cluster (`tests.with_redis --cluster`): as the container wires it.
            self.lane: ScriptLane = ClusterLane(seeds, timeout_ms=10_000)
            waiter = self._waiter = ClusterMarkerWaiter(
                self.lane.slots, seeds, 10_000, LONGEST_BLOCK_MS
            )
        else:
            pool = client.connection_pool.connection_kwargs
            host, port, db = (
                pool.get("host", "127.0.0.1"),
                pool.get("port", 6379),
                pool.get("db", 0),
            )
            self.lane = Lane.from_url(f"redis://{host}:{port}/{db}", timeout_ms=10_000)
            waiter = MarkerWaiter(client, blocking)
        self.transitions = RedisTransitions(
            client,
            self.lane,
            idempotency_window_ms,
            locks_with_tasks=locks_with_tasks and seeds is None,
            multi_queue_scripts=seeds is None,
            depth_limits=depth_limits or DepthLimits(),
        )
        self.views = RedisViews(client, queues)
        self.feed = RedisFeed(client, waiter, self.views, events or EventHub(client))
        OPEN.add(self)

    def __getattr__(self, name: str) -> Any:
        for part in (self.transitions, self.views, self.feed):
            if hasattr(type(part), name):
                return getattr(part, name)
        raise AttributeError(name)

    async def aclose(self) -> None:
        OPEN.discard(self)
        await self.feed.aclose()
        await self.lane.aclose()  # type: ignore[attr-defined]
        if isinstance(self.lane, ClusterLane):
            await self._waiter.aclose()


OPEN: set[RedisStore] = set()


async def closing_stores() -> AsyncIterator[None]:
    """A fixture's body: the stores a test made and left open are closed after it (a
    test that runs a loop of its own closes its stores itself)."""
    yield
    for store in list(OPEN):
        await store.aclose()
