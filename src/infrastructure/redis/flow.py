"""RedisFlowLimits: IFlowLimits on the queue's limits hash; the claim scripts apply them
(see _lib.lua: the queue's and its task types' in every claim, a group's when the group
gets its next turn), set_limits.lua replaces them."""

from __future__ import annotations

import json
from typing import Any, cast

from redis.asyncio import Redis

from domain.limits import Limit, LimitsView, QueueLimits, Rate, Usage
from domain.task import TaskStatus
from infrastructure.redis.keys import keys_of
from infrastructure.redis.lane import ScriptLane
from infrastructure.redis.scripts import Scripts


class RedisFlowLimits:
    def __init__(self, client: Redis, lane: ScriptLane, scripts: Scripts) -> None:
        self._client = client
        self._lane = lane
        self._scripts = scripts

    async def set(self, queue: str, limits: QueueLimits) -> None:
        k = keys_of(queue)
        fields = _fields("", limits.queue)
        for name, limit in limits.task_types.items():
            fields |= _fields(f"type:{name}:", limit)
        for name, limit in limits.groups.items():
            fields |= _fields(f"group:{name}:", limit)
        keys = [k.limits, k.meta, k.marker, k.wait, k.parked_names]
        await self._lane.run(self._scripts.set_limits, keys, [k.prefix, json.dumps(fields)])

    async def get(self, queue: str, now: int) -> LimitsView:
        k = keys_of(queue)
        fields = cast(dict[str, str], await self._client.hgetall(k.limits))
        limits = _limits(fields)
        parked_names = cast(set[str], await self._client.smembers(k.parked_names))
        named = sorted(set(limits.task_types) | parked_names)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zcount(k.active, now, "+inf")
            pipe.zcount(k.starts("queue"), _since(limits.queue, now), "+inf")
            for name in named:
                pipe.zcard(k.index(TaskStatus.ACTIVE, name))
                limit = limits.task_types.get(name, Limit())
                pipe.zcount(k.starts(f"type:{name}"), _since(limit, now), "+inf")
                pipe.zcard(k.parked(name))
            counts: list[Any] = await pipe.execute()
        usage = {name: Usage(counts[2 + 3 * i], counts[3 + 3 * i]) for i, name in enumerate(named)}
        parked = {name: counts[4 + 3 * i] for i, name in enumerate(named) if counts[4 + 3 * i]}
        return LimitsView(
            limits=limits,
            queue=Usage(counts[0], counts[1]),
            task_types={name: usage[name] for name in limits.task_types},
            parked=parked,
        )


def _fields(prefix: str, limit: Limit) -> dict[str, str]:
    fields = {}
    if limit.rate is not None:
        fields[f"{prefix}rate"] = f"{limit.rate.max}:{limit.rate.window_ms}"
    if limit.concurrency is not None:
        fields[f"{prefix}concurrency"] = str(limit.concurrency)
    return fields


def _limits(fields: dict[str, str]) -> QueueLimits:
    own: dict[str, Any] = {}
    scoped: dict[str, dict[str, dict[str, Any]]] = {"type": {}, "group": {}}
    for field, value in fields.items():
        scope, _, rest = field.partition(":")
        if scope in scoped:
            name, _, kind = rest.rpartition(":")
            entry = scoped[scope].setdefault(name, {})
        else:
            kind, entry = field, own
        if kind == "rate":
            most, window = value.split(":")
            entry["rate"] = Rate(int(most), int(window))
        elif kind == "concurrency":
            entry["concurrency"] = int(value)

    def limits_of(scope: str) -> dict[str, Limit]:
        return {name: Limit(**entry) for name, entry in sorted(scoped[scope].items())}

    return QueueLimits(Limit(**own), limits_of("type"), limits_of("group"))


def _since(limit: Limit, now: int) -> int | str:
    """Where the rate's window starts (starts before it no longer count)."""
    return now - limit.rate.window_ms + 1 if limit.rate is not None else "+inf"
