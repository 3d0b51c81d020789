"""ClusterLane: the Lane on a Redis Cluster, one Lane per master, each call routed by the
hash slot of its first key."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import AskError, ClusterDownError, MovedError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from infrastructure.redis.client import Address, ClusterSeeds
from infrastructure.redis.cluster import SlotMap, slot_of
from infrastructure.redis.lane import CommandArg, Endpoint, Lane, Script

_MOVES = 5  # MOVED replies one call follows at most (each one reads the slot map again)
_TRY_AGAIN_S = 0.05  # a slot mid-migration, or a failover under way: wait, then try again


class ClusterLane:
    """What a Lane does, on a Cluster: a call goes to the master serving its first key's
    slot, pipelined there with every other call to that master.

    Every key of one call must share that slot (a queue's keys do: one hash tag). A MOVED
    reply (the slot was moved) updates the slot map and sends the call where it points;
    an ASK reply (the slot is moving, this key is already there) sends it once to the
    target with ASKING first; TRYAGAIN (some of the keys are moving) and CLUSTERDOWN
    (a failover under way) are tried again shortly. None of these ran the call, so
    following them runs it once. A call lost with its connection is not sent again, as on
    a Lane; the slot map is read again so the next call finds a promoted replica.
    """

    def __init__(self, seeds: ClusterSeeds, *, timeout_ms: int) -> None:
        self.slots = SlotMap(seeds, timeout_ms)
        self._seeds = seeds
        self._timeout_ms = timeout_ms
        self._lanes: dict[Address, Lane] = {}

    async def execute(self, *args: CommandArg) -> Any:
        """One command, routed by its first key (`args[1]`): a keyless command (WAIT,
        PING) has no master of its own on a Cluster."""
        if len(args) < 2:
            raise TypeError("a command on a Cluster needs a key to route it by")
        key = str(args[1])
        return await self._routed(key, lambda lane: lane.execute(*args), asking=None)

    async def run(
        self, script: Script, keys: Sequence[CommandArg], args: Sequence[CommandArg]
    ) -> Any:
        """EVALSHA `script` on the master of `keys[0]`'s slot."""
        if not keys:
            raise TypeError("a script on a Cluster needs a key to route it by")

        def asking(lane: Lane) -> Awaitable[Any]:
            return lane.run(script, keys, args, asking=True)

        return await self._routed(
            str(keys[0]), lambda lane: lane.run(script, keys, args), asking=asking
        )

    async def masters(self) -> list[Address]:
        if not self.slots.loaded:
            await self.slots.refresh()
        return self.slots.masters()

    async def aclose(self) -> None:
        lanes, self._lanes = list(self._lanes.values()), {}
        await asyncio.gather(*(lane.aclose() for lane in lanes), return_exceptions=True)

    async def _routed(
        self,
        key: str,
        call: Callable[[Lane], Awaitable[Any]],
        asking: Callable[[Lane], Awaitable[Any]] | None,
    ) -> Any:
        """`call` on the master of `key`'s slot, following the Cluster's redirections
        for as long as the Lane's timeout: a slot that stays mid-migration (TRYAGAIN)
        or a failover that does not end (CLUSTERDOWN) is then a TimeoutError, as a
        Redis that does not answer is."""
        clock = asyncio.get_running_loop()
        deadline = clock.time() + self._timeout_ms / 1000
        moves = 0
        lane = self._lane(await self.slots.owner(key))
        while True:
            try:
                return await call(lane)
            except MovedError as exc:
                moves += 1
                if moves > _MOVES:
                    raise
                self.slots.moved(slot_of(key), (exc.host, int(exc.port)))
                await self.slots.refresh()
                lane = self._lane(await self.slots.owner(key))
                continue
            except AskError as exc:
                if asking is None:
                    raise
                with contextlib.suppress(TryAgainError):
                    return await asking(self._lane((exc.host, int(exc.port))))
            except TryAgainError:
                pass
            except ClusterDownError:
                await _quietly(self.slots.refresh(force=True))
                lane = self._lane(await self.slots.owner(key))
            except RedisConnectionError:
                # Not sent again (it may have run), but the next call should find the
                # master that replaced a failed one.
                await _quietly(self.slots.refresh())
                raise
            if clock.time() >= deadline:
                raise RedisTimeoutError(
                    f"the hash slot of {key!r} stayed unavailable (mid-migration or failing "
                    f"over) for {self._timeout_ms} ms"
                )
            await asyncio.sleep(_TRY_AGAIN_S)

    def _lane(self, address: Address) -> Lane:
        lane = self._lanes.get(address)
        if lane is None:
            host, port = address
            endpoint = Endpoint(
                host=host,
                port=port,
                tls=self._seeds.tls,
                username=self._seeds.username,
                password=self._seeds.password,
            )
            lane = self._lanes[address] = Lane(endpoint, timeout_ms=self._timeout_ms)
        return lane


async def _quietly(refresh: Awaitable[None]) -> None:
    with contextlib.suppress(RedisConnectionError, OSError):
        await refresh
