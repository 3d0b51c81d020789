"""A Redis that cannot be reached, or refuses writes, as the domain's QueueUnavailable."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import (
    ClusterDownError,
    OutOfMemoryError,
    RedisClusterUnreachableError,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from domain.errors import QueueUnavailable, StoreFull

# On a Cluster also: no master serves a slot (a failover under way, or a master lost), or
# no node answers at all.
UNREACHABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterDownError,
    SlotNotCoveredError,
    RedisClusterUnreachableError,
)

P = ParamSpec("P")
R = TypeVar("R")


def unavailable(exc: BaseException) -> QueueUnavailable:
    return QueueUnavailable(f"Redis is unreachable: {exc}")


def out_of_memory(exc: ResponseError) -> bool:
    """Redis over `maxmemory` with `noeviction`. Redis 7 answers a script's refused write
    with the OOM error itself; 6.2 wraps it in "Error running script"."""
    return isinstance(exc, OutOfMemoryError) or "-OOM command not allowed" in str(exc)


def reachable(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Report a Redis that cannot be reached (refused, reset, timed out) as QueueUnavailable,
    and one that refuses writes (out of memory) as StoreFull. A script refused for memory
    fails at its first write, so it has written nothing."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except UNREACHABLE as exc:
            raise unavailable(exc) from exc
        except ResponseError as exc:
            if out_of_memory(exc):
                raise StoreFull(f"Redis refuses writes (out of memory): {exc}") from exc
            raise

    return call
