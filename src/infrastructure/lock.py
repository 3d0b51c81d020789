"""RedlockService: ILockService on pottery's AIORedlock, the one place pottery is used."""

from __future__ import annotations

import contextlib
import itertools
import sys
from collections.abc import Sequence
from typing import ClassVar

from pottery import AIORedlock
from pottery.exceptions import PrimitiveError, QuorumIsImpossible
from redis.asyncio import Redis
from redis.exceptions import RedisClusterException, RedisError

from domain.errors import LockLost, LockNotAcquired
from domain.values import Lease
from infrastructure.redis.keys import LOCK_PREFIX


class TaskRedlock(AIORedlock):
    """pottery names its keys `redlock:<key>`; Conveyor's are `lock:<key>`."""

    _KEY_PREFIX: ClassVar[str] = LOCK_PREFIX


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
            raise_on_redis_errors=True,
            auto_release_time=ttl_ms / 1000,
            num_extensions=sys.maxsize if max_extensions is None else max_extensions,
        )
        try:
            acquired = await lock.acquire(blocking=False)
        except QuorumIsImpossible as exc:
            raise LockNotAcquired(self._no_quorum(lock, exc)) from exc
        except (PrimitiveError, RedisError, RedisClusterException) as exc:
            raise LockNotAcquired(f"{lock.key}: {exc!r}") from exc
        if not acquired:
            raise LockNotAcquired(f"{lock.key} is held by another worker")
        token = str(next(self._tokens))
        self._held[token] = lock
        return Lease(resource, ttl_ms, token)

    async def extend(self, lease: Lease) -> None:
        lock = self._held.get(lease.token)
        if lock is None:
            raise LockLost(f"lock:{lease.resource} is not held")
        try:
            await lock.extend()
        except QuorumIsImpossible as exc:
            raise LockLost(self._no_quorum(lock, exc)) from exc
        except PrimitiveError as exc:  # ExtendUnlockedLock, TooManyExtensions
            raise LockLost(f"{lock.key}: {type(exc).__name__}") from exc
        except RedisClusterException as exc:  # no node of a Cluster answers
            raise LockLost(f"{lock.key}: {exc}") from exc

    async def release(self, lease: Lease) -> None:
        lock = self._held.pop(lease.token, None)
        if lock is None:
            return
        # Expired already, or its masters are down: either way it frees itself at its TTL.
        with contextlib.suppress(PrimitiveError, RedisError, RedisClusterException):
            await lock.release()

    def _no_quorum(self, lock: TaskRedlock, exc: QuorumIsImpossible) -> str:
        errors = getattr(exc, "redis_errors", [])
        return (
            f"{lock.key}: no quorum: {len(errors)} of {len(self._masters)} Redlock masters "
            f"unreachable ({errors[0]!r})"
            if errors
            else f"{lock.key}: no quorum"
        )
