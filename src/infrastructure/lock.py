"""RedlockService: ILockService on pottery's AIORedlock, the one place pottery is used."""

from __future__ import annotations

import contextlib
import itertools
import sys
from collections.abc import Sequence
from typing import ClassVar

from pottery import AIORedlock
from pottery.exceptions import PotteryError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from domain.errors import LockLost, LockNotAcquired
from domain.ports import Lease


class TaskRedlock(AIORedlock):
    """pottery names its keys `redlock:<key>`; Conveyor's are `lock:<key>`."""

    _KEY_PREFIX: ClassVar[str] = "lock"


class RedlockService:
    """Leases on `lock:<resource>`, by quorum of `masters` (one master: the queue's Redis).

    pottery's own defaults (10 s auto-release, 3 extensions) would let a long task lose
    its lock; each lock here gets the caller's TTL and extension budget instead. pottery
    errors never leave this class: they become LockNotAcquired or LockLost.
    """

    def __init__(self, masters: Sequence[Redis]) -> None:
        self._masters = frozenset(masters)
        self._held: dict[str, TaskRedlock] = {}
        self._tokens = itertools.count(1)

    async def acquire(self, resource: str, ttl_ms: int, max_extensions: int | None) -> Lease:
        lock = TaskRedlock(
            key=resource,
            masters=self._masters,
            auto_release_time=ttl_ms / 1000,
            num_extensions=sys.maxsize if max_extensions is None else max_extensions,
        )
        try:
            acquired = await lock.acquire(blocking=False)
        except (PotteryError, RedisError) as exc:
            raise LockNotAcquired(f"{lock.key}: {exc!r}") from exc
        if not acquired:
            raise LockNotAcquired(f"{lock.key} is held elsewhere (or no quorum answered)")
        token = str(next(self._tokens))
        self._held[token] = lock
        return Lease(resource, ttl_ms, token)

    async def extend(self, lease: Lease) -> None:
        lock = self._held.get(lease.token)
        if lock is None:
            raise LockLost(f"lock:{lease.resource} is not held")
        try:
            await lock.extend()
        except PotteryError as exc:  # ExtendUnlockedLock, TooManyExtensions, quorum errors
            raise LockLost(f"{lock.key}: {exc!r}") from exc

    async def release(self, lease: Lease) -> None:
        lock = self._held.pop(lease.token, None)
        if lock is None:
            return
        with contextlib.suppress(PotteryError):  # expired already: nothing left to give up
            await lock.release()
