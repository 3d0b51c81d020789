"""RedisScheduleStore: ISchedules on one hash per schedule and two sorted sets.

A schedule's hash holds its definition (`def`, JSON) and its firing record (`next_at`,
`last_slot`, `last_task_id`, `fired`, `skipped`); `due` orders the active schedules by
their next slot and `names` every schedule by creation. An operator's change writes the
definition, a firing the record: each in one script, so neither overwrites the other.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from importlib import resources
from typing import Any, cast

from redis.asyncio import Redis

from domain.errors import DuplicateSchedule, ScheduleNotFound
from domain.schedule import (
    MissedPolicy,
    OverlapPolicy,
    Schedule,
    ScheduledTask,
    ScheduleState,
)
from domain.task import Backoff
from infrastructure.redis.keys import SCHEDULES

_RECORD = ("next_at", "last_slot", "last_task_id", "fired", "skipped")


def _script(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()


class RedisScheduleStore:
    """Schedules in Redis; the client must decode responses to str."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._save = client.register_script(_script("save_schedule"))
        self._advance = client.register_script(_script("advance_schedule"))

    async def add(self, schedule: Schedule) -> None:
        if await self._store(schedule, "create") == 0:
            raise DuplicateSchedule(schedule.name)

    async def replace(self, schedule: Schedule) -> None:
        if await self._store(schedule, "replace") == -1:
            raise ScheduleNotFound(schedule.name)

    async def _store(self, schedule: Schedule, mode: str) -> int:
        keys = [SCHEDULES.of(schedule.name), SCHEDULES.due, SCHEDULES.names]
        next_at = "" if schedule.next_at is None else schedule.next_at
        args: list[int | str] = [
            schedule.name, _encode(schedule), next_at, mode, schedule.created_at
        ]  # fmt: skip
        return int(await self._save(keys=keys, args=args))

    async def get(self, name: str) -> Schedule:
        fields = cast(dict[str, str], await self._client.hgetall(SCHEDULES.of(name)))
        if not fields:
            raise ScheduleNotFound(name)
        return _decode(fields)

    async def list_all(self) -> list[Schedule]:
        names = cast(list[str], await self._client.zrange(SCHEDULES.names, 0, -1))
        return await self._many(names)

    async def due(self, now: int, limit: int) -> list[Schedule]:
        names = await self._client.zrangebyscore(SCHEDULES.due, "-inf", now, start=0, num=limit)
        return await self._many(cast(list[str], names))

    async def earliest(self, skip: frozenset[str] = frozenset()) -> int | None:
        """The next slot of the active schedules, but those named in `skip`."""
        first = await self._client.zrange(SCHEDULES.due, 0, len(skip), withscores=True)
        for name, score in cast(list[tuple[str, float]], first):
            if name not in skip:
                return int(score)
        return None

    async def advance(
        self,
        name: str,
        *,
        expected: int,
        next_at: int,
        fired: list[int],
        task_id: str | None,
        skipped: int,
    ) -> bool:
        last: int | str = fired[-1] if fired else ""
        args: list[int | str] = [name, expected, next_at, last, task_id or "", len(fired), skipped]
        keys = [SCHEDULES.of(name), SCHEDULES.due]
        return bool(await self._advance(keys=keys, args=args))

    async def remove(self, name: str) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(SCHEDULES.of(name))
            pipe.zrem(SCHEDULES.due, name)
            pipe.zrem(SCHEDULES.names, name)
            removed, _, _ = await pipe.execute()
        if not removed:
            raise ScheduleNotFound(name)

    async def _many(self, names: list[str]) -> list[Schedule]:
        if not names:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(SCHEDULES.of(name))
            found = await pipe.execute()
        return [_decode(fields) for fields in found if fields]


def _encode(schedule: Schedule) -> str:
    definition = asdict(replace(schedule, next_at=None))
    for name in _RECORD:
        definition.pop(name)
    return json.dumps(definition, separators=(",", ":"))


def _decode(fields: dict[str, str]) -> Schedule:
    definition: dict[str, Any] = json.loads(fields["def"])
    task = dict(definition.pop("task"))
    backoff = task.pop("backoff")
    return Schedule(
        **definition
        | {
            "task": ScheduledTask(**task, backoff=None if backoff is None else Backoff(**backoff)),
            "missed_policy": MissedPolicy(definition["missed_policy"]),
            "overlap_policy": OverlapPolicy(definition["overlap_policy"]),
            "state": ScheduleState(definition["state"]),
            "next_at": _int(fields.get("next_at")),
            "last_slot": _int(fields.get("last_slot")),
            "last_task_id": fields.get("last_task_id") or None,
            "fired": int(fields.get("fired", 0)),
            "skipped": int(fields.get("skipped", 0)),
        }
    )


def _int(value: str | None) -> int | None:
    return None if value is None or value == "" else int(value)
