"""A Redis that cannot be reached, as the domain's QueueUnavailable."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from domain.errors import QueueUnavailable

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)

P = ParamSpec("P")
R = TypeVar("R")


def unavailable(exc: BaseException) -> QueueUnavailable:
    return QueueUnavailable(f"Redis is unreachable: {exc}")


def reachable(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Report a Redis that cannot be reached (refused, reset, timed out) as QueueUnavailable."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except UNREACHABLE as exc:
            raise unavailable(exc) from exc

    return call
