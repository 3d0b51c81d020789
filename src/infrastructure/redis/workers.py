"""RedisWorkerRegistry: the workers' heartbeats, kept in Redis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from pydantic import TypeAdapter
from redis.asyncio import Redis

from domain.values import WorkerInfo
from infrastructure.redis.keys import WORKERS

_INFO = TypeAdapter(WorkerInfo)


class RedisWorkerRegistry:
    """A hash of worker id -> JSON, and a sorted set of ids by heartbeat expiry."""

    def __init__(self, client: Redis) -> None:
        self._redis = client

    async def heartbeat(
        self, worker: WorkerInfo, ttl_ms: int, increments: Mapping[str, float]
    ) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(WORKERS.info, worker.worker_id, _INFO.dump_json(worker).decode())
            pipe.zadd(WORKERS.expiry, {worker.worker_id: worker.seen_at + ttl_ms})
            for field, amount in increments.items():
                if float(amount).is_integer():
                    pipe.hincrby(WORKERS.metrics, field, int(amount))
                else:
                    pipe.hincrbyfloat(WORKERS.metrics, field, amount)
            await pipe.execute()

    async def metric_totals(self) -> dict[str, float]:
        found = cast(dict[str, str], await self._redis.hgetall(WORKERS.metrics))
        return {field: float(value) for field, value in found.items()}

    async def forget(self, worker_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(WORKERS.info, worker_id)
            pipe.zrem(WORKERS.expiry, worker_id)
            await pipe.execute()

    async def live(self, now: int) -> list[WorkerInfo]:
        gone = cast(list[str], await self._redis.zrangebyscore(WORKERS.expiry, "-inf", now))
        if gone:
            await self.forget_all(gone)
        found = cast(dict[str, str], await self._redis.hgetall(WORKERS.info))
        workers = [_INFO.validate_json(raw) for raw in found.values()]
        return sorted(workers, key=lambda worker: (worker.started_at, worker.worker_id))

    async def forget_all(self, worker_ids: list[str]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(WORKERS.info, *worker_ids)
            pipe.zrem(WORKERS.expiry, *worker_ids)
            await pipe.execute()
