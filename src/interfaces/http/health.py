"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi.spec import SecurityRequirement
from redis.exceptions import RedisClusterException, RedisError

from infrastructure.logging import get_logger
from infrastructure.redis.cluster import ping
from interfaces.http.errors import documented, error_response
from interfaces.http.schemas import HealthOut

OPEN: list[SecurityRequirement] = [{}]  # no key needed, even when API_KEYS is set


@get("/health", tags=["health"], summary="Liveness: the process answers", security=OPEN)
async def health() -> HealthOut:
    return HealthOut(status="ok")


@get(
    "/ready",
    tags=["health"],
    summary="Readiness: Redis answers",
    security=OPEN,
    responses=documented(503, guarded=False),
)
async def ready(redis: NamedDependency[Any]) -> Response[HealthOut]:
    """`redis` is a Redis or a RedisCluster (a union litestar cannot check: Any)."""
    try:
        await ping(redis)
    except (RedisError, RedisClusterException, OSError) as exc:
        # The reason names Redis's host and port: the operator's log may know them, an
        # anonymous caller of this open route may not.
        get_logger("conveyor.http").warning("ready.redis_unreachable", reason=str(exc))
        return error_response(503, "unavailable", "Redis is unreachable; retry shortly")
    return Response(HealthOut(status="ready"))
