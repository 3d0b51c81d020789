"""Redis Cluster: where each hash slot lives, and a client on the cluster.

A queue's keys share its hash tag, so each of its scripts runs whole on the master that
serves the queue's slot; what spans queues asks each master (see ClusterLane, the Lane's
twin that routes a call by its first key, and redis-py's RedisCluster for the rest).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from infrastructure.logging import get_logger
from infrastructure.redis.client import Address, ClusterSeeds

SLOTS = 16_384


def create_cluster_redis(seeds: ClusterSeeds, timeout_ms: int) -> RedisCluster:
    """A RedisCluster client that decodes replies to str, with the same budget as
    `create_redis`: each command answers within `timeout_ms`, a dropped connection is
    retried once. It follows MOVED and ASK itself and asks each master for what spans
    slots (a pipeline, SCAN)."""
    timeout_s = timeout_ms / 1000
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in seeds.addresses],
        username=seeds.username,
        password=seeds.password,
        ssl=seeds.tls,
        decode_responses=True,
        health_check_interval=30,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        socket_keepalive=True,
        retry=Retry(NoBackoff(), retries=1),
    )


async def ping(client: Redis | RedisCluster) -> None:
    """PING the queue's Redis: on a Cluster every master, as each serves some queues."""
    if isinstance(client, RedisCluster):
        await client.ping(target_nodes=RedisCluster.PRIMARIES)
    else:
        await client.ping()


def slot_of(key: str) -> int:
    return int(key_slot(key.encode()))


class SlotMap:
    """Which master serves each hash slot, as CLUSTER SLOTS tells it.

    Read on first use and again after a reply says a slot moved (MOVED) or a node failed:
    concurrent callers share one refresh, and refreshes come at most every
    `min_interval_s`, so a storm of MOVED replies costs one CLUSTER SLOTS."""

    def __init__(self, seeds: ClusterSeeds, timeout_ms: int, min_interval_s: float = 0.1):
        self._seeds = seeds
        self._timeout_ms = timeout_ms
        self._min_interval_s = min_interval_s
        self._owners: list[Address | None] = [None] * SLOTS
        self._known: tuple[Address, ...] = seeds.addresses
        self._refreshing: asyncio.Future[None] | None = None
        self._refreshed_at = float("-inf")

    @property
    def loaded(self) -> bool:
        return self._refreshed_at > float("-inf")

    async def owner(self, key: str) -> Address:
        """The master serving `key`'s slot."""
        if not self.loaded:
            await self.refresh()
        found = self._owners[slot_of(key)]
        if found is None:
            await self.refresh(force=True)
            found = self._owners[slot_of(key)]
        if found is None:
            raise RedisConnectionError(f"no master serves the hash slot of {key!r}")
        return found

    def masters(self) -> list[Address]:
        """Every master that serves a slot, once each."""
        return list(dict.fromkeys(owner for owner in self._owners if owner is not None))

    def moved(self, slot: int, address: Address) -> None:
        """A MOVED reply: the slot is served there now (the rest is refreshed soon)."""
        if self._owners[slot] != address:
            self._changed(1)
        self._owners[slot] = address

    async def refresh(self, *, force: bool = False) -> None:
        if self._refreshing is not None:
            await asyncio.shield(self._refreshing)
            return
        if not force and time.monotonic() - self._refreshed_at < self._min_interval_s:
            return
        self._refreshing = asyncio.get_running_loop().create_future()
        try:
            self._load(await self._ask())
            self._refreshed_at = time.monotonic()
            self._refreshing.set_result(None)
        except BaseException as exc:
            self._refreshing.set_exception(exc)
            self._refreshing.exception()  # retrieved: the callers see `exc` raised below
            raise
        finally:
            self._refreshing = None

    async def _ask(self) -> tuple[Address, list[Any]]:
        """CLUSTER SLOTS from the first node that answers: the known masters, then the
        seeds."""
        failures = []
        for address in dict.fromkeys((*self.masters(), *self._known)):
            client = Redis.from_url(
                self._seeds.url_of(address),
                decode_responses=True,
                socket_timeout=self._timeout_ms / 1000,
                socket_connect_timeout=self._timeout_ms / 1000,
            )
            try:
                return address, await client.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
            except (RedisError, OSError) as exc:
                failures.append(f"{address[0]}:{address[1]}: {exc}")
            finally:
                await client.aclose()
        raise RedisConnectionError(f"no Cluster node answers: {'; '.join(failures)}")

    @staticmethod
    def _changed(slots: int) -> None:
        get_logger("conveyor.redis").info("redis.cluster_slots_moved", slots=slots)

    def _load(self, answer: tuple[Address, list[Any]]) -> None:
        asked, ranges = answer
        owners: list[Address | None] = [None] * SLOTS
        for first, last, master, *_replicas in ranges:  # [first, last, [host, port, id], ...]
            host = str(master[0]) or asked[0]  # "" : the node asked
            owners[first : last + 1] = [(host, int(master[1]))] * (last - first + 1)
        if self.loaded and owners != self._owners:
            self._changed(sum(old != new for old, new in zip(self._owners, owners, strict=True)))
        self._owners = owners
        self._known = tuple(dict.fromkeys((*self.masters(), *self._seeds.addresses)))
