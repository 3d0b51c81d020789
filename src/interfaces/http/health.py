"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency
from redis.asyncio import Redis
from redis.exceptions import RedisError

from interfaces.http.errors import error_response


@get("/health", tags=["health"], summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", tags=["health"], summary="Readiness: Redis answers")
async def ready(redis: NamedDependency[Redis]) -> Response[Any]:
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        return error_response(503, "unavailable", f"Redis is unreachable: {exc}")
    return Response({"status": "ready"})
