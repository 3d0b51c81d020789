"""MarkerWaiter: an idle worker's block on the queue markers, ended on the millisecond."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

IDLE_WAIT_MS = 5_000  # the longest an idle worker blocks; a wake-up is then a cheap claim
_BLOCK_SLACK_S = 1.0  # Redis's own timeout, a backstop behind the local timer


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

    async def wait(self, markers: Sequence[str], timeout_ms: int) -> None:
        client_id = await self._connection_id()
        block = asyncio.ensure_future(
            self._blocking.bzpopmin(list(markers), timeout=timeout_ms / 1000 + _BLOCK_SLACK_S)
        )
        try:
            await asyncio.wait({block}, timeout=timeout_ms / 1000)
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
