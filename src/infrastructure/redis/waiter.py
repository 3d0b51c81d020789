"""MarkerWaiter: an idle worker's block on the queue markers, ended on the millisecond."""

from __future__ import annotations

import asyncio
import contextlib
from asyncio import FIRST_COMPLETED
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import AskError, MovedError, RedisError

from infrastructure.redis.client import (
    Address,
    ClusterSeeds,
    create_blocking_redis,
    create_redis,
)
from infrastructure.redis.cluster import SlotMap, slot_of

IDLE_WAIT_MS = 5_000  # the longest an idle worker blocks; a wake-up is then a cheap claim
_BLOCK_SLACK_S = 1.0  # Redis's own timeout, a backstop behind the local timer
_ASK_PAUSE_MS = 100  # a marker whose slot is mid-migration: how long a wait pauses instead


class MarkerWaits(Protocol):
    async def wait(self, markers: Sequence[str], timeout_ms: int) -> None:
        """Until a marker gets an entry, or `timeout_ms` passed."""


class MarkerWaiter:
    """BZPOPMIN on a connection of its own, ended early by CLIENT UNBLOCK.

    Redis checks blocking timeouts on its clock tick (every 100 ms at the default hz),
    too coarse for a due time, so a local timer decides when the wait is over. Cancelling
    the command instead would drop the connection on every delayed task; CLIENT UNBLOCK,
    sent over the main client, ends it as a timeout and keeps the connection.
    """

    def __init__(self, client: Redis, blocking_client: Redis) -> None:
        self._client = client
        self._blocking = blocking_client
        self._client_id: int | None = None

    async def wait(
        self, markers: Sequence[str], timeout_ms: int, until: asyncio.Future[None] | None = None
    ) -> None:
        """Until a marker gets an entry, `timeout_ms` passed, or `until` is done (then the
        command is ended by CLIENT UNBLOCK, as at the timeout)."""
        client_id = await self._connection_id()
        block = asyncio.ensure_future(
            self._blocking.bzpopmin(list(markers), timeout=timeout_ms / 1000 + _BLOCK_SLACK_S)
        )
        try:
            ends: set[asyncio.Future[Any]] = {block} if until is None else {block, until}
            await asyncio.wait(ends, timeout=timeout_ms / 1000, return_when=FIRST_COMPLETED)
        finally:
            if not block.done():
                await self._unblock(client_id, block)
        if block.cancelled():
            return  # ended by our own fallback in _unblock: the wait is over all the same
        try:
            block.result()
        except RedisError:
            self._client_id = None  # a new connection will have a new id
            raise

    async def _connection_id(self) -> int:
        if self._client_id is None:
            self._client_id = int(await self._blocking.client_id())
        return self._client_id

    async def _unblock(self, client_id: int, block: asyncio.Future[Any]) -> None:
        unblocked = False
        with contextlib.suppress(RedisError, OSError):
            unblocked = bool(await self._client.client_unblock(client_id))
        if unblocked or block.done():
            with contextlib.suppress(RedisError, OSError):
                await block
            return
        # Not blocked under that id (the connection was replaced): drop it instead.
        self._client_id = None
        block.cancel()
        with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
            await block


class ClusterMarkerWaiter:
    """MarkerWaiter on a Redis Cluster: one blocking command cannot name keys of two hash
    slots, so each queue's marker gets a MarkerWaiter of its own, on a connection to the
    master serving it; the first to wake ends the others (CLIENT UNBLOCK on each master).
    A marker whose slot moved answers MOVED: the slot map is read again and the wait ends
    as a wake-up (the worker looks for work, then waits again where the marker is now)."""

    def __init__(
        self, slots: SlotMap, seeds: ClusterSeeds, timeout_ms: int, longest_block_ms: int
    ) -> None:
        self._slots = slots
        self._seeds = seeds
        self._timeout_ms = timeout_ms
        self._longest_block_ms = longest_block_ms
        self._placed: dict[str, _Placed] = {}  # by marker
        self._clients: dict[Address, Redis] = {}  # CLIENT UNBLOCK, by master

    async def wait(self, markers: Sequence[str], timeout_ms: int) -> None:
        first = asyncio.get_running_loop().create_future()
        waits = [
            asyncio.ensure_future(self._wait_one(marker, timeout_ms, first)) for marker in markers
        ]
        try:
            done, _ = await asyncio.wait(waits, return_when=FIRST_COMPLETED)
        finally:
            # The others end as at their timeout (CLIENT UNBLOCK), never cancelled: a wait
            # cancelled as it unblocks could leave its command blocked in Redis, holding
            # the marker's one connection until Redis's own timeout.
            if not first.done():
                first.set_result(None)
            await asyncio.shield(asyncio.gather(*waits, return_exceptions=True))
        for wait in done:
            error = None if wait.cancelled() else wait.exception()
            if error is not None:
                raise error

    async def aclose(self) -> None:
        clients = [*self._clients.values(), *(placed.blocking for placed in self._placed.values())]
        self._placed, self._clients = {}, {}
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)

    async def _wait_one(self, marker: str, timeout_ms: int, first: asyncio.Future[None]) -> None:
        placed = await self._place(marker)
        try:
            await placed.waiter.wait([marker], timeout_ms, first)
        except MovedError as exc:  # the slot is served elsewhere now: look there next time
            self._slots.moved(slot_of(marker), (exc.host, int(exc.port)))
            await self._slots.refresh()
        except AskError:
            # The slot is on its way to another master and the marker is gone from this
            # one: no blocking here until the move is done, so the wait becomes a short
            # pause (a worker then looks for work, and its claim follows the ASK itself).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(first), min(timeout_ms, _ASK_PAUSE_MS) / 1000)

    async def _place(self, marker: str) -> _Placed:
        owner = await self._slots.owner(marker)
        placed = self._placed.get(marker)
        if placed is not None and placed.owner == owner:
            return placed
        if placed is not None:
            await placed.blocking.aclose()
        url = self._seeds.url_of(owner)
        client = self._clients.get(owner)
        if client is None:
            client = self._clients[owner] = create_redis(url, self._timeout_ms)
        blocking = create_blocking_redis(url, self._timeout_ms, self._longest_block_ms)
        placed = self._placed[marker] = _Placed(owner, MarkerWaiter(client, blocking), blocking)
        return placed


@dataclass(frozen=True, slots=True)
class _Placed:
    """A marker's waiter, on the master that served its slot when it was made."""

    owner: Address
    waiter: MarkerWaiter
    blocking: Redis
